"""Adapter layer (ComfyUI): checking the file names a server reports for its outputs.

ComfyUI names outputs ``{"filename", "subfolder", "type"}``. A faulty or hostile server could
send ``../../etc/passwd``, an absolute path, a drive letter or a NUL byte; such a name must
never reach ``/view`` nor a local path. ``sanitize_ref`` rejects a bad filename and normalises
the subfolder; ``safe_local_name`` turns a reference into one flat, portable file name.
"""

from __future__ import annotations

import re
from typing import Any

from pod_studio.adapters.comfyui.errors import SERVICE
from pod_studio.domain.errors import UpstreamDataError
from pod_studio.domain.models import ImageRef

OUTPUT_TYPES = frozenset({"output", "temp", "input"})
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 180


def _unsafe(reason: str, value: str) -> UpstreamDataError:
    return UpstreamDataError(
        f"ComfyUI reported an unsafe output name {value[:120]!r} ({reason}); it was not fetched",
        service=SERVICE,
        retryable=False,
    )


def _check_part(part: str, what: str, original: str) -> None:
    if "\x00" in part:
        raise _unsafe(f"NUL byte in {what}", original)
    if part in ("..", "."):
        raise _unsafe(f"'{part}' in {what}", original)
    if _DRIVE.match(part):
        raise _unsafe(f"drive letter in {what}", original)
    if any(ord(ch) < 32 for ch in part):
        raise _unsafe(f"control character in {what}", original)


def sanitize_ref(
    filename: Any, subfolder: Any = "", type_: Any = "output", *, node_id: str = ""
) -> ImageRef:
    """A safe ``ImageRef``, or ``UpstreamDataError`` when the name could escape a folder."""
    if not isinstance(filename, str) or not filename.strip():
        raise _unsafe("missing filename", str(filename))
    if not isinstance(subfolder, str):
        subfolder = "" if subfolder is None else str(subfolder)
    kind = type_ if isinstance(type_, str) and type_ else "output"
    if kind not in OUTPUT_TYPES:
        raise _unsafe(f"unknown type {kind!r}", filename)
    if "/" in filename or "\\" in filename:
        raise _unsafe("path separator in filename", filename)
    _check_part(filename, "filename", filename)
    if subfolder.startswith(("/", "\\")) or _DRIVE.match(subfolder):
        raise _unsafe("absolute subfolder", subfolder)
    parts = [p for p in re.split(r"[/\\]+", subfolder) if p not in ("", ".")]
    for part in parts:
        _check_part(part, "subfolder", subfolder)
    return ImageRef(filename=filename, subfolder="/".join(parts), type=kind, node_id=node_id)


def safe_local_name(ref: ImageRef) -> str:
    """One flat file name for ``ref`` (subfolder folded in), safe on every OS."""
    stem = "_".join([*ref.subfolder.replace("\\", "/").split("/"), ref.filename])
    name = _UNSAFE_CHARS.sub("_", stem).strip("._-") or "image"
    if len(name) > _MAX_NAME:
        head, dot, ext = name.rpartition(".")
        name = (
            (head[: _MAX_NAME - len(ext) - 1] + "." + ext)
            if dot and len(ext) <= 8
            else name[:_MAX_NAME]
        )
    reserved = {
        "CON",
        "PRN",
        "AUX",
        "NUL",
        *(f"COM{i}" for i in range(1, 10)),
        *(f"LPT{i}" for i in range(1, 10)),
    }
    if name.split(".", 1)[0].upper() in reserved:
        name = "_" + name
    return name
