"""Adapter layer (ComfyUI): pure parser of the websocket's binary frames.

Every binary frame starts with a 4-byte big-endian event type:

- 1 ``PREVIEW_IMAGE``: 4-byte image format (1 = JPEG, 2 = PNG), then the image bytes;
- 4 ``PREVIEW_IMAGE_WITH_METADATA``: 4-byte metadata length L, L bytes of JSON, then the image;
- 3 ``TEXT``: 4-byte node-id length N, N bytes of node id, then UTF-8 text.

Anything else, or a frame that is cut short or malformed, parses to ``None`` (logged at debug
level): a bad frame never stops the listener.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

_IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}
_MAX_METADATA = 64 * 1024


@dataclass(frozen=True)
class PreviewImageFrame:
    """A preview image. ``prompt_id``/``node_id`` are known only for type 4 frames."""

    mime: str
    data: bytes
    event: int
    prompt_id: str | None = None
    node_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProgressTextFrame:
    """Progress text sent by a node (broadcast to every socket by the server)."""

    node_id: str
    text: str


Frame = PreviewImageFrame | ProgressTextFrame


def _sniff_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""


def parse_frame(frame: bytes | bytearray | memoryview) -> Frame | None:
    """Parse one binary websocket frame; ``None`` for unknown or malformed frames."""
    raw = bytes(frame)
    if len(raw) < 8:
        log.debug("ignoring a binary frame of %d bytes (too short)", len(raw))
        return None
    event, word = struct.unpack_from(">II", raw, 0)
    try:
        if event == PREVIEW_IMAGE:
            image = raw[8:]
            mime = _IMAGE_FORMATS.get(word) or _sniff_mime(image)
            if not image or not mime:
                log.debug("ignoring a preview frame with format %d and %d bytes", word, len(image))
                return None
            return PreviewImageFrame(mime=mime, data=image, event=event)
        if event == PREVIEW_IMAGE_WITH_METADATA:
            if word > _MAX_METADATA or 8 + word > len(raw):
                log.debug("ignoring a preview frame whose metadata length %d is invalid", word)
                return None
            meta = json.loads(raw[8 : 8 + word].decode("utf-8"))
            if not isinstance(meta, dict):
                log.debug("ignoring a preview frame whose metadata is not an object")
                return None
            image = raw[8 + word :]
            declared = meta.get("image_type")
            mime = declared if isinstance(declared, str) and declared else _sniff_mime(image)
            if not image or not mime:
                log.debug("ignoring an empty preview frame")
                return None
            prompt_id = meta.get("prompt_id")
            node_id = meta.get("node_id")
            return PreviewImageFrame(
                mime=mime,
                data=image,
                event=event,
                prompt_id=str(prompt_id) if prompt_id else None,
                node_id=str(node_id) if node_id else None,
                metadata=meta,
            )
        if event == TEXT:
            if 8 + word > len(raw):
                log.debug("ignoring a text frame whose node-id length %d is invalid", word)
                return None
            node_id = raw[8 : 8 + word].decode("utf-8")
            text = raw[8 + word :].decode("utf-8")
            return ProgressTextFrame(node_id=node_id, text=text)
    except (UnicodeDecodeError, ValueError) as exc:
        log.debug("ignoring a malformed binary frame of type %d: %s", event, exc)
        return None
    log.debug("ignoring a binary frame of unknown type %d", event)
    return None
