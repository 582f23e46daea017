"""App layer: connection states, retry causes and waits in the seller's words (no Qt, so the
core's tests can check the words the window shows).

The resilience events carry ``cause`` as "<ErrorClass>: <detail>" (our error kinds or a
network library's exception class); the retry log shows what happened in words and keeps the
technical text for the tooltip and the CSV export.
"""

from __future__ import annotations

from datetime import datetime

from pod_studio.domain.events import ConnectionChanged
from pod_studio.domain.models import ConnectionState, ServerProblem

# Error class name -> what happened, in words. Our kinds (domain/errors.py) and the exception
# classes of the network and OS layers that reach the retry log.
_CAUSES: dict[str, str] = {
    "RateLimitError": "the service asked us to slow down",
    "TimeoutError": "the service took too long to answer",
    "ServiceError": "the service had a problem on its side",
    "UpstreamDataError": "the service sent an answer we could not read",
    "ServiceUnavailableError": "the service is busy or down for a moment",
    "CircuitOpenError": "paused after repeated failures",
    "CircuitTrippedError": "failed repeatedly; calls are paused for a moment",
    "AuthenticationError": "the sign-in was refused",
    "APIError": "the service refused the request",
    "ExecutionError": "the workflow failed on the server",
    "PromptLostError": "the server lost the job",
    "JobInterruptedError": "the job was interrupted",
    "ValidationError": "the request was not valid",
    "ReadTimeout": "the service took too long to answer",
    "WriteTimeout": "the connection was too slow to send",
    "ConnectTimeout": "could not reach the service in time",
    "PoolTimeout": "too many requests at once",
    "ConnectError": "could not connect to the service",
    "RemoteProtocolError": "the connection dropped mid-answer",
    "ReadError": "the connection dropped mid-answer",
    "ConnectionRefusedError": "the service refused the connection",
    "ConnectionResetError": "the connection was reset",
    "ConnectionClosed": "the live connection closed",
    "ConnectionClosedError": "the live connection closed",
    "OSError": "a network error",
}

_WAITS = {
    "Retry-After header": "as the service asked",
    "exponential backoff": "growing pause",
}


def cause_in_words(cause: str) -> str:
    """``"ReadTimeout: timed out"`` -> ``"the service took too long to answer"``; a cause
    whose class is unknown keeps its detail without the class name."""
    if not cause:
        return ""
    name, sep, detail = cause.partition(":")
    name = name.strip()
    words = _CAUSES.get(name)
    if words is not None:
        text = words
    elif sep and name.isidentifier():
        text = detail.strip() or name
    else:
        text = cause.strip()
    return text[:1].upper() + text[1:]


def wait_in_words(seconds: float, reason: str) -> str:
    """``30.0, "Retry-After header"`` -> ``"30 s, as the service asked"``."""
    shown = f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    words = _WAITS.get(reason, reason)
    return f"{shown}, {words}" if words else shown


def _clock_text(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S")


def _gb(n: int) -> str:
    return f"{n / 1024**3:.1f} GB"


def describe_connection(event: ConnectionChanged) -> str:
    """One line for one server, fit for the status bar."""
    server = event.server
    match event.state:
        case ConnectionState.CONNECTED:
            parts = [f"Connected to {server}"]
            if event.device:
                parts.append(event.device)
            if event.vram_free is not None:
                parts.append(f"{_gb(event.vram_free)} VRAM free")
            return " · ".join(parts)
        case ConnectionState.CONNECTING:
            return f"Connecting to {server}…"
        case ConnectionState.RECONNECTING:
            text = f"Lost {server}; reconnecting"
            if event.next_attempt_at is not None:
                text += f" (next attempt at {_clock_text(event.next_attempt_at)})"
            if event.detail:
                text += f" — {event.detail}"
            return text
        case _ if event.problem == ServerProblem.NOT_COMFYUI:
            return f"{event.detail} — check the address and port in Settings…"
        case _ if event.problem == ServerProblem.WRONG_VERSION:
            return f"{event.detail} — update ComfyUI"
        case _ if event.problem == ServerProblem.BUSY:
            return f"{event.detail} — waiting for it"
        case _:
            text = f"ComfyUI at {server} is offline"

            if event.detail:
                text += f" ({friendly_reason(event.detail)})"
            return text + " — start ComfyUI, check the URL in Settings…, or try demo mode"


def friendly_reason(detail: str) -> str:
    """A seller-readable reason for a connection problem (the technical one goes to the log)."""
    low = detail.lower()
    if "refused" in low or "connect call failed" in low or "all connection attempts" in low:
        return "nothing answers at that address"
    if "timed out" in low or "timeout" in low:
        return "no answer in time"
    if "name or service not known" in low or "nodename nor servname" in low:
        return "unknown host name"
    if "no close frame" in low or "connection lost" in low:
        return "the connection dropped"
    return detail if len(detail) <= 80 else detail[:77] + "…"
