"""Domain layer: masking credentials in text (pure; no I/O).

One ``SecretMask`` holds the secret values a component knows (tokens, API keys, shared
secrets) and masks them, plus the values of credential headers (``Authorization``,
``X-Shopify-Access-Token``, ``x-api-key``) and token-like query or JSON fields, and the
user-info of URLs. The log filter (``adapters.storage.secrets.Redactor``) and the marketplace
HTTP edge (``adapters.http_edge``) both mask through it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from pod_studio.domain.urls import mask_url

__all__ = ["MASK", "MIN_SECRET_CHARS", "SecretMask"]

MASK = "***"
MIN_SECRET_CHARS = 6  # shorter values would mask ordinary words

_HEADER_RE = re.compile(
    r"(?i)\b(authorization|x-shopify-access-token|x-api-key|x-printify-token)"
    r"(\s*[\"']?\s*[:=]\s*[\"']?\s*)"
    r"(?:(bearer|basic|token)\s+)?"
    r"([^\s\"',;}\]]+)"
)
_QUERY_RE = re.compile(
    r"(?i)\b(access_token|refresh_token|client_secret|api_key|apikey|keystring|password|token)"
    r"(\s*[\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;}\]]+)"
)


class SecretMask:
    """The secret values to mask, and ``redact`` (thread-safe; values are only ever added)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *values: str | None) -> None:
        """Mask these values from now on (empty or very short ones are ignored)."""
        fresh = {v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET_CHARS}
        if fresh <= self._secrets:
            return
        with self._lock:
            self._secrets |= fresh
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        """``text`` with every known secret, credential header value, token-like field and
        URL user-info replaced by ``***``."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        text = _HEADER_RE.sub(
            lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) + ' ' if m.group(3) else ''}{MASK}",
            text,
        )
        text = _QUERY_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        return mask_url(text)  # http://user:pass@host -> http://***@host
