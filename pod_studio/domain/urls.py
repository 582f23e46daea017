"""Domain layer: the one parser of the http(s) URLs a seller gives (command line, window,
settings file, environment): ComfyUI servers and every platform's API address.

``parse_http_url`` refuses, with one message naming the problem, what ``urlsplit`` and httpx
would otherwise accept or turn into a traceback: spaces and control characters (a pasted
``\\r\\n``), unbalanced IPv6 brackets, a port that is not a number or out of range, another
scheme, no host. A URL that embeds a user name or password is refused everywhere it can enter:
it would otherwise reach breaker names, manifests, statistics and messages. ``mask_url`` hides
any user-info that still reaches a message or a log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from pod_studio.domain.errors import ValidationError

EXAMPLE_URL = "http://127.0.0.1:8188"

_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]+@")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")


def mask_url(text: str) -> str:
    """``text`` with the user-info of every URL in it replaced by ``***``."""
    return _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}***@", text)


def parse_http_url(value: str, *, service: str = "settings") -> str:
    """``value`` as an http(s) URL with a host, stripped, without a trailing slash; else a
    ``ValidationError`` whose ``user_message`` names the problem (never the password)."""
    text = value.strip()
    shown = repr(mask_url(text))  # repr: a control character shows as \r, not as a line break

    def refuse(problem: str) -> ValidationError:
        return ValidationError(
            f"invalid URL: {problem}", service=service, user_message=f"{shown} {problem}"
        )

    if not text:
        raise ValidationError(
            "invalid URL: empty", service=service, user_message=f"the URL is empty ({EXAMPLE_URL})"
        )
    if _SPACE_OR_CONTROL.search(text):
        raise refuse("contains a space or a control character; a URL has neither")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        if "[" in text or "]" in text:
            raise refuse(
                "is not a valid URL: an IPv6 address goes in brackets, as in http://[::1]:8188"
            ) from None
        raise refuse("has a port that is not a number from 1 to 65535") from None
    if "@" in parts.netloc or parts.username or parts.password:
        raise ValidationError(
            "URL with user-info refused",
            service=service,
            user_message=f"{mask_url(text)}: a server URL must not contain a user name or "
            "password (put credentials in Settings, which keeps them in the OS keyring).",
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refuse(f"is not an http(s) URL (expected e.g. {EXAMPLE_URL})")
    if port == 0:
        raise refuse("has port 0; the port is a number from 1 to 65535")
    return text.rstrip("/")


def check_server_url(url: str) -> str:
    """A server URL from the seller, normalised (``parse_http_url``)."""
    return parse_http_url(url)


def check_server_urls(urls: Iterable[str]) -> list[str]:
    """Each URL checked and normalised, duplicates dropped, order kept."""
    out: list[str] = []
    for url in urls:
        checked = check_server_url(url)
        if checked not in out:
            out.append(checked)
    return out
