"""Domain layer: the one error tree of POD Studio.

Every library exception is mapped once, at the adapter edge, into one of these
(``raise ... from exc``). Each error knows the ``service`` it came from, whether it
is ``retryable``, a ``user_message`` a seller can act on and its ``exit_class``: what a
command that ends on it exits with (the CLI's exit code comes from the type, never from the
words). Messages never contain secrets: adapters build them from status codes and response
excerpts only.
"""

from __future__ import annotations

import builtins
from enum import IntEnum


class ExitClass(IntEnum):
    """What kind of ending an error is, as the ``pod-studio`` exit status says it."""

    WORK_FAILED = 1  # the work was tried and failed (it stays in the queue)
    BAD_INPUT = 2  # the seller's input (arguments, files, settings, a token) is wrong
    UNREACHABLE = 3  # a needed server cannot be reached, is failing, or is not what we expect


class PodStudioError(Exception):
    """Root of every error POD Studio raises on purpose."""

    default_retryable: bool = False
    exit_class: ExitClass = ExitClass.WORK_FAILED

    def __init__(
        self,
        message: str,
        *,
        service: str = "app",
        user_message: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.user_message = user_message or message
        self.retryable = self.default_retryable if retryable is None else retryable

    @property
    def kind(self) -> str:
        """Short, stable name of the error class (for logs, the ledger and the retry log)."""
        return type(self).__name__

    def __str__(self) -> str:
        return f"[{self.service}] {self.message}"


class _StatusCodeError(PodStudioError):
    """An error that may carry the HTTP ``status_code`` the remote answered with."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        service: str = "app",
        user_message: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, service=service, user_message=user_message, retryable=retryable)
        self.status_code = status_code


class APIError(_StatusCodeError):
    """The remote answered, but not with what we asked for (4xx other than the specific ones)."""


class AuthenticationError(APIError):
    """401/403 or a missing/invalid secret. Never retried; the seller must fix the token."""

    exit_class = ExitClass.BAD_INPUT

    default_retryable = False


class RateLimitError(APIError):
    """429 or a throttle reply. ``retry_after`` is the server's hint in seconds, if any."""

    exit_class = ExitClass.UNREACHABLE

    default_retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = 429,
        service: str = "app",
        user_message: str | None = None,
    ) -> None:
        super().__init__(
            message, status_code=status_code, service=service, user_message=user_message
        )
        self.retry_after = retry_after


class TimeoutError(PodStudioError):
    """The remote did not answer in time (connect, read, write or pool timeout)."""

    exit_class = ExitClass.UNREACHABLE

    default_retryable = True


# An alias that does not shadow the builtin, for modules that need both.
PodTimeoutError = TimeoutError
BuiltinTimeoutError = builtins.TimeoutError


class ValidationError(PodStudioError):
    """Our input is wrong (bad workflow, bad price, rejected payload). Never retried."""

    exit_class = ExitClass.BAD_INPUT

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        details: list[str] | None = None,
        service: str = "app",
        user_message: str | None = None,
    ) -> None:
        super().__init__(message, service=service, user_message=user_message)
        self.details: list[str] = list(details or [])


class ServiceError(_StatusCodeError):
    """The remote is unreachable or failing (5xx, connection refused/reset). Retryable."""

    exit_class = ExitClass.UNREACHABLE

    default_retryable = True


class UpstreamDataError(ServiceError):
    """The remote answered 2xx with a body we cannot understand (garbage, truncated, HTML)."""


class CircuitOpenError(PodStudioError):
    """The breaker for ``service`` is open: failing fast without touching the network."""

    exit_class = ExitClass.UNREACHABLE

    default_retryable = False

    def __init__(self, service: str, retry_in: float, *, last_error: str | None = None) -> None:
        retry_in = max(0.0, retry_in)
        msg = f"circuit open, next attempt in {retry_in:.1f} s"
        if last_error:
            msg += f" (last error: {last_error})"
        super().__init__(
            msg,
            service=service,
            user_message=f"{service} is failing; POD Studio pauses calls to it and will "
            f"try again in {retry_in:.0f} s.",
        )
        self.retry_in = retry_in


class CircuitTrippedError(CircuitOpenError):
    """The breaker opened on this call's own failures. Unlike a call that meets a breaker
    already open, the call failed: its job is charged an attempt (so a server that keeps
    answering wrongly ends in the dead-letter queue), and it runs again once the breaker lets
    calls through. ``cause`` is the call's last failure, which the seller is told."""

    default_retryable = True

    def __init__(self, service: str, retry_in: float, *, cause: PodStudioError) -> None:
        super().__init__(service, retry_in, last_error=cause.message)
        self.user_message = cause.user_message
        self.retryable = True
        self.cause = cause


class ServiceUnavailableError(PodStudioError):
    """A service the job needs is not usable yet through no fault of the job: not set up, no
    token, the keyring locked. The queue waits for it (``retry_in`` seconds, or its own
    schedule when None) without charging an attempt."""

    exit_class = ExitClass.UNREACHABLE

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        service: str = "app",
        user_message: str | None = None,
        retry_in: float | None = None,
    ) -> None:
        super().__init__(message, service=service, user_message=user_message)
        self.retry_in = retry_in


def wait_seconds(exc: BaseException) -> float | None:
    """How long a job should wait, uncharged, when ``exc`` is a reason to wait rather than a
    failure of the job (an open breaker, a service not set up); None for a real failure."""
    if isinstance(exc, CircuitOpenError) and not isinstance(exc, CircuitTrippedError):
        return exc.retry_in
    if isinstance(exc, ServiceUnavailableError):
        return exc.retry_in if exc.retry_in is not None else 60.0
    return None


# --- generation-specific errors -------------------------------------------------------------


class WorkflowError(ValidationError):
    """A workflow file that is not JSON, not an API-format workflow, or cannot be mapped."""


class ExecutionError(PodStudioError):
    """ComfyUI ran the prompt and a node raised (``execution_error``). Not retried."""

    default_retryable = False

    def __init__(
        self,
        *,
        node_id: str,
        node_type: str,
        exception_message: str,
        exception_type: str = "",
        service: str = "comfyui",
    ) -> None:
        short = exception_message.strip().splitlines()[0] if exception_message.strip() else ""
        short = short[:300]
        kind = f"{exception_type}: " if exception_type else ""
        msg = f"node {node_id} ({node_type}) failed: {kind}{short}"
        super().__init__(msg, service=service, user_message=f"ComfyUI failed in {msg}")
        self.node_id = node_id
        self.node_type = node_type
        self.exception_message = exception_message
        self.exception_type = exception_type


class JobInterruptedError(PodStudioError):
    """The prompt was interrupted (by us, or by someone else on the server)."""

    default_retryable = False


class PromptLostError(ServiceError):
    """The server forgot a prompt (restart): it is neither queued nor in history. Resubmit it."""

    exit_class = ExitClass.WORK_FAILED


def exit_class(exc: BaseException) -> ExitClass:
    """The exit class of any exception: an error of ours says it; anything else is a failure
    of the work."""
    if isinstance(exc, PodStudioError):
        return exc.exit_class
    return ExitClass.WORK_FAILED


def is_retryable(exc: BaseException) -> bool:
    """True when trying the same operation again may succeed."""
    if isinstance(exc, PodStudioError):
        return exc.retryable
    return False


def user_message(exc: BaseException) -> str:
    """A message fit for the seller, for any exception.

    The text of an exception that is not ours is never shown: it may quote a request, a path
    or a token. The log (redacted) keeps it."""
    if isinstance(exc, PodStudioError):
        return exc.user_message
    return (
        "Something unexpected went wrong; your work is saved. "
        "The details are in the log (Help → Open log folder)."
    )
