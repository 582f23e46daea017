"""Domain layer: server URLs given by the seller (command line, window, settings).

A URL that embeds a user name or password is refused everywhere it can enter: it would
otherwise reach breaker names, manifests, statistics and messages. ``mask_url`` hides any
user-info that still reaches a message or a log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from pod_studio.domain.errors import ValidationError
from pod_studio.domain.settings import normalise_http_url

_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]+@")


def mask_url(text: str) -> str:
    """``text`` with the user-info of every URL in it replaced by ``***``."""
    return _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}***@", text)


def check_server_url(url: str) -> str:
    """The URL, normalised; a ``ValidationError`` naming the problem (never the password)."""
    parts = urlsplit(url.strip())
    if "@" in parts.netloc or parts.username or parts.password:
        raise ValidationError(
            "server URL with user-info refused",
            service="settings",
            user_message=f"{mask_url(url.strip())}: a server URL must not contain a user name "
            "or password (put credentials in Settings, which keeps them in the OS keyring).",
        )
    try:
        return normalise_http_url(url)
    except ValueError as exc:
        raise ValidationError(str(exc), service="settings", user_message=str(exc)) from None


def check_server_urls(urls: Iterable[str]) -> list[str]:
    """Each URL checked and normalised, duplicates dropped, order kept."""
    out: list[str] = []
    for url in urls:
        checked = check_server_url(url)
        if checked not in out:
            out.append(checked)
    return out
