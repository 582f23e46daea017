"""Adapter layer (ComfyUI): the one place where httpx failures and server replies become
POD Studio errors (``pod_studio.domain.errors``).

- connection refused / DNS / reset → ``ServiceError`` ("cannot reach ComfyUI at URL: is it
  running?"), timeouts → ``TimeoutError``; both retryable;
- 5xx → retryable ``ServiceError``; 401/403 → ``AuthenticationError``; 404 on a core endpoint →
  ``APIError`` ("not a ComfyUI server?"); a 2xx body we cannot read → ``UpstreamDataError``;
- ``POST /prompt`` 400 → ``ValidationError`` with one readable line per node error;
- ``execution_error`` / ``execution_interrupted`` → ``ExecutionError`` / ``JobInterruptedError``.

Messages carry the server URL, status codes and short body excerpts, never request bodies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from pod_studio.domain.errors import (
    APIError,
    AuthenticationError,
    ExecutionError,
    JobInterruptedError,
    PodStudioError,
    RateLimitError,
    ServiceError,
    TimeoutError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.retry_after import parse_retry_after

SERVICE = "comfyui"
_EXCERPT = 200
_MAX_EXCEPTION_MESSAGE = 2000
_MAX_LINE = 400


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """A one-line, bounded excerpt of a response body for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def map_transport_error(exc: httpx.HTTPError, *, url: str, operation: str) -> PodStudioError:
    """Map an httpx exception raised while talking to ``url`` (never raises)."""
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__
        return TimeoutError(
            f"{operation}: ComfyUI at {url} did not answer in time ({kind})",
            service=SERVICE,
            user_message=f"ComfyUI at {url} is not answering in time; is it busy or stuck?",
        )
    if isinstance(exc, httpx.ConnectError | httpx.NetworkError | httpx.RemoteProtocolError):
        return ServiceError(
            f"{operation}: cannot reach ComfyUI at {url}: is it running? ({excerpt(str(exc))})",
            service=SERVICE,
            user_message=f"Cannot reach ComfyUI at {url}: is it running?",
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return APIError(
            f"{operation}: '{url}' is not a usable ComfyUI address ({excerpt(str(exc))})",
            service=SERVICE,
            retryable=False,
        )
    return ServiceError(
        f"{operation}: request to ComfyUI at {url} failed: {type(exc).__name__}: "
        f"{excerpt(str(exc))}",
        service=SERVICE,
    )


def error_for_status(
    response: httpx.Response, *, url: str, operation: str, core: bool = True
) -> PodStudioError | None:
    """The error for a non-2xx ``response``; ``None`` for 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    body = excerpt(response.text) if response.content else "empty body"
    if status in (401, 403):
        hint = (
            " (ComfyUI answers 403 to a request whose Origin differs from its host; "
            "start it with --enable-cors-header or check the proxy's credentials)"
            if status == 403
            else ""
        )
        return AuthenticationError(
            f"{operation}: ComfyUI at {url} refused access (HTTP {status}){hint}",
            status_code=status,
            service=SERVICE,
        )
    if status == 404 and core:
        return APIError(
            f"{operation}: {url} answered 404 for a core ComfyUI endpoint: not a ComfyUI server?",
            status_code=status,
            service=SERVICE,
            user_message=f"{url} does not look like a ComfyUI server (HTTP 404).",
            retryable=False,
        )
    if status == 429:
        # Stock ComfyUI never says 429, but a proxy or a hosted GPU in front of it may.
        return RateLimitError(
            f"{operation}: ComfyUI at {url} is throttling requests (HTTP 429)",
            retry_after=parse_retry_after(
                response.headers.get("Retry-After"), now=time.time(), cap=86400.0
            ),
            status_code=status,
            service=SERVICE,
        )
    if status >= 500:
        return ServiceError(
            f"{operation}: ComfyUI at {url} failed with HTTP {status}: {body}",
            status_code=status,
            service=SERVICE,
            user_message=f"ComfyUI at {url} had an internal error (HTTP {status}).",
        )
    return APIError(
        f"{operation}: ComfyUI at {url} answered HTTP {status}: {body}",
        status_code=status,
        service=SERVICE,
        retryable=False,
    )


def json_body(response: httpx.Response, *, url: str, operation: str) -> Any:
    """The decoded JSON body of a 2xx ``response``, or ``UpstreamDataError``."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        ctype = response.headers.get("content-type", "?")
        raise UpstreamDataError(
            f"{operation}: {url} answered {response.status_code} with a body that is not JSON "
            f"({ctype}: {excerpt(response.text, 80)}): is this a ComfyUI server?",
            status_code=response.status_code,
            service=SERVICE,
            user_message=f"{url} answered, but not like a ComfyUI server does.",
        ) from exc


def not_comfyui(url: str, operation: str, what: str) -> UpstreamDataError:
    return UpstreamDataError(
        f"{operation}: {url} answered, but {what}: is this a ComfyUI server?",
        service=SERVICE,
        user_message=f"{url} answered, but not like a ComfyUI server does.",
    )


# --- validation errors (POST /prompt) ------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _describe_node_error(err: Mapping[str, Any]) -> str:
    message = _text(err.get("message"))
    details = _text(err.get("details"))
    extra = err.get("extra_info") if isinstance(err.get("extra_info"), dict) else {}
    assert isinstance(extra, dict)
    input_name = _text(extra.get("input_name"))
    if input_name and details.startswith(f"{input_name}:"):
        return details  # value_not_in_list: "sampler_name: 'x' not in [...]"
    if input_name:
        line = f"{input_name}: {message}" if message else input_name
        reason = _text(extra.get("exception_message"))
        if reason:
            line += f" ({reason})"
        elif details and details != input_name and not details.startswith(f"{input_name},"):
            line += f" ({details})"
        return line
    if message and details:
        return f"{message}: {details}"
    return message or details or _text(err.get("type")) or "invalid"


def format_node_errors(node_errors: Any, graph: Mapping[str, Any] | None = None) -> list[str]:
    """One readable line per node error: ``node 3 (KSampler): sampler_name: 'x' not in [...]``."""
    lines: list[str] = []
    if not isinstance(node_errors, dict):
        return lines
    for node_id, entry in node_errors.items():
        if not isinstance(entry, dict):
            continue
        class_type = _text(entry.get("class_type"))
        if not class_type and graph is not None:
            node = graph.get(str(node_id))
            if isinstance(node, dict):
                class_type = _text(node.get("class_type"))
        label = f"node {node_id} ({class_type})" if class_type else f"node {node_id}"
        errors = entry.get("errors")
        for err in errors if isinstance(errors, list) else []:
            if isinstance(err, dict):
                lines.append(excerpt(f"{label}: {_describe_node_error(err)}", _MAX_LINE))
    return lines


def failed_outputs(node_errors: Any) -> set[str]:
    """Output node ids that the server will not run because of ``node_errors``."""
    failed: set[str] = set()
    if isinstance(node_errors, dict):
        for entry in node_errors.values():
            outputs = entry.get("dependent_outputs") if isinstance(entry, dict) else None
            if isinstance(outputs, list):
                failed.update(str(o) for o in outputs)
    return failed


def validation_error(body: Any, graph: Mapping[str, Any] | None = None) -> ValidationError:
    """``POST /prompt`` answered 400: name ``error.message`` and list every node error."""
    error = body.get("error") if isinstance(body, dict) else None
    node_errors = body.get("node_errors") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = _text(error.get("message")) or _text(error.get("type")) or "invalid workflow"
        top_details = _text(error.get("details"))
    elif isinstance(error, str):
        message, top_details = error, ""
    else:
        message, top_details = "invalid workflow", ""
    details = format_node_errors(node_errors, graph)
    if not details and top_details:
        details = [excerpt(top_details, _MAX_LINE)]
    summary = f"ComfyUI rejected the workflow: {message}"
    if details:
        summary += f" ({details[0]}{'; …' if len(details) > 1 else ''})"
    return ValidationError(
        summary,
        details=details,
        service=SERVICE,
        user_message=summary,
    )


# --- execution errors ----------------------------------------------------------------------


def execution_error(
    data: Mapping[str, Any], graph: Mapping[str, Any] | None = None
) -> ExecutionError:
    """From an ``execution_error`` payload (websocket or history). ``current_inputs``,
    ``current_outputs`` and ``traceback`` are never carried over."""
    node_id = _text(data.get("node_id")) or "?"
    node_type = _text(data.get("node_type"))
    if not node_type and graph is not None:
        node = graph.get(node_id)
        if isinstance(node, dict):
            node_type = _text(node.get("class_type"))
    message = _text(data.get("exception_message")).strip()
    if len(message) > _MAX_EXCEPTION_MESSAGE:
        message = message[: _MAX_EXCEPTION_MESSAGE - 1] + "…"
    return ExecutionError(
        node_id=node_id,
        node_type=node_type or "?",
        exception_message=message,
        exception_type=_text(data.get("exception_type"))[:200],
        service=SERVICE,
    )


def interrupted_error(prompt_id: str, data: Mapping[str, Any]) -> JobInterruptedError:
    node_id = _text(data.get("node_id"))
    node_type = _text(data.get("node_type"))
    where = f" at node {node_id} ({node_type})" if node_id else ""
    return JobInterruptedError(
        f"prompt {prompt_id} was interrupted{where}",
        service=SERVICE,
        user_message=f"The generation was interrupted{where}.",
    )
