"""App layer: retry causes and waits in the seller's words.

The resilience events carry ``cause`` as "<ErrorClass>: <detail>" (our error kinds or a
network library's exception class); the retry log shows what happened in words and keeps the
technical text for the tooltip and the CSV export.
"""

from __future__ import annotations

# Error class name -> what happened, in words. Our kinds (domain/errors.py) and the exception
# classes of the network and OS layers that reach the retry log.
_CAUSES: dict[str, str] = {
    "RateLimitError": "the service asked us to slow down",
    "TimeoutError": "the service took too long to answer",
    "ServiceError": "the service had a problem on its side",
    "UpstreamDataError": "the service sent an answer we could not read",
    "ServiceUnavailableError": "the service is busy or down for a moment",
    "CircuitOpenError": "paused after repeated failures",
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
