"""Adapters layer: print-file preparation and image inspection with Pillow.

Everything here is synchronous and CPU-bound: callers run it with ``asyncio.to_thread``.
Inputs are untrusted (files from a server or from the seller's disk): the pixel count is
checked against an explicit limit before decoding (Pillow only warns between 1x and 2x its
limit; here that range is an error too), and empty, non-image and truncated files raise the
domain ``ValidationError`` with a message a seller can act on.

The pipeline: decode -> 16-bit grayscale scaled to 8 bits (never clipped) -> embedded ICC
profile converted to sRGB (alpha kept) -> RGBA -> LANCZOS fit into the canvas (Pillow
premultiplies alpha while resampling, so transparent colour does not bleed into edges) ->
fully transparent pixels cleared to (0, 0, 0, 0) -> centred on a transparent canvas -> PNG with
DPI, sRGB profile and compress_level 6, written atomically.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from PIL import Image, ImageCms, UnidentifiedImageError

from pod_studio.adapters.storage.atomic import atomic_write_bytes
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.preflight import ImageInfo, PrintFileInfo

log = logging.getLogger(__name__)

# 8000 x 8000; a 4500 x 5400 print canvas is 24.3 MP. Pillow's global is set explicitly so
# that its own bomb check (an error above 2x) matches ours.
MAX_IMAGE_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
MAX_CANVAS_SIDE = 20_000
PNG_COMPRESS_LEVEL = 6
WHITE_THRESHOLD = 240

_SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
SRGB_ICC: bytes = _SRGB_PROFILE.tobytes()

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
)


@contextmanager
def _decoded(path: Path) -> Iterator[tuple[Image.Image, int]]:
    """The decoded image at ``path`` and its size in bytes; decode problems -> ValidationError."""
    try:
        file_size = path.stat().st_size
    except FileNotFoundError:
        raise ValidationError(
            f"image {path} does not exist", user_message=f"The image {path.name} is missing."
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"cannot read image {path}: {exc.strerror or exc}",
            user_message=f"The image {path.name} cannot be read.",
        ) from exc
    if file_size == 0:
        raise ValidationError(
            f"image {path} is empty (0 bytes)",
            user_message=f"The image {path.name} is empty (0 bytes); generate or export it again.",
        )
    try:
        with Image.open(path) as im:
            pixels = im.width * im.height
            if pixels > MAX_IMAGE_PIXELS:
                raise ValidationError(
                    f"image {path.name} is {im.width}x{im.height} ({pixels:,} pixels), above "
                    f"the {MAX_IMAGE_PIXELS:,} pixel limit",
                    user_message=f"The image {path.name} is too large "
                    f"({im.width}x{im.height}); the limit is {MAX_IMAGE_PIXELS:,} pixels.",
                )
            im.load()
            yield im, file_size
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives as an exception when a caller turned warnings into errors.
        raise ValidationError(
            f"image {path.name} is above the {MAX_IMAGE_PIXELS:,} pixel limit: {exc}",
            user_message=f"The image {path.name} is too large; the limit is "
            f"{MAX_IMAGE_PIXELS:,} pixels.",
        ) from None
    except UnidentifiedImageError:
        raise ValidationError(
            f"{path.name} is not an image Pillow can read",
            user_message=f"{path.name} is not an image (PNG, JPEG, WebP or TIFF expected).",
        ) from None
    except _DECODE_ERRORS as exc:
        raise ValidationError(
            f"image {path.name} is damaged, truncated or of an unsupported kind: {exc}",
            user_message=f"The image {path.name} is damaged or incomplete; "
            "generate or export it again.",
        ) from exc


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale scaled into 0..255 (``convert`` would clip them)."""
    if im.mode in _SIXTEEN_BIT_MODES or im.mode == "I":
        wide = im.convert("I")
        _low, high = cast(tuple[float, float], wide.getextrema())
        factor = 1 / 257 if im.mode in _SIXTEEN_BIT_MODES or high > 255 else 1.0
        return wide.point(lambda v: v * factor + 0.5).convert("L")
    if im.mode == "F":
        _low, high = cast(tuple[float, float], im.getextrema())
        factor = 255.0 if high <= 1.0 else 1.0
        return im.point(lambda v: v * factor + 0.5).convert("L")
    return im


def _to_srgb_rgba(im: Image.Image) -> tuple[Image.Image, bool]:
    """RGBA in sRGB; returns (image, whether an embedded profile was converted)."""
    icc = im.info.get("icc_profile")
    im = _to_8bit(im)
    if im.mode == "P" or "transparency" in im.info:
        im = im.convert("RGBA")
    alpha = im.getchannel("A") if "A" in im.getbands() else None
    converted = False
    if icc:
        base_mode = "CMYK" if im.mode == "CMYK" else "L" if im.mode in ("1", "L", "LA") else "RGB"
        base = im.convert(base_mode) if im.mode != base_mode else im
        try:
            src_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            rgb = ImageCms.profileToProfile(base, src_profile, _SRGB_PROFILE, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            log.warning("ignoring an unusable embedded colour profile: %s", exc)
        else:
            if rgb is not None:
                im = rgb
                converted = True
    if alpha is not None:
        rgba = im.convert("RGB")
        rgba.putalpha(alpha)
        return rgba, converted
    return im.convert("RGBA"), converted


def _clear_transparent(im: Image.Image) -> None:
    """Set the colour of fully transparent pixels to black, in place (no hidden colour)."""
    mask = im.getchannel("A").point(lambda a: 255 if a == 0 else 0)
    im.paste((0, 0, 0, 0), mask=mask)


def _has_transparency(rgba: Image.Image) -> bool:
    low, _high = cast(tuple[int, int], rgba.getchannel("A").getextrema())
    return low < 255


def _white_background(rgba: Image.Image, transparent: bool) -> bool:
    if transparent:
        return False
    w, h = rgba.size
    corners = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)]
    for xy in corners:
        pixel = rgba.getpixel(xy)
        assert isinstance(pixel, tuple)
        if min(int(c) for c in pixel[:3]) < WHITE_THRESHOLD:
            return False
    return True


def _info_of(original: Image.Image, rgba: Image.Image, file_size: int) -> ImageInfo:
    transparent = _has_transparency(rgba)
    raw_dpi = original.info.get("dpi")
    dpi: tuple[float, float] | None = None
    if isinstance(raw_dpi, tuple) and len(raw_dpi) == 2:
        dpi = (float(raw_dpi[0]), float(raw_dpi[1]))
    return ImageInfo(
        width=original.width,
        height=original.height,
        mode=original.mode,
        has_alpha="A" in original.getbands() or "transparency" in original.info,
        has_transparency=transparent,
        file_size=file_size,
        dpi=dpi,
        opaque_white_background=_white_background(rgba, transparent),
    )


def read_image_info(path: Path) -> ImageInfo:
    """Size, mode, alpha, transparency, bytes and DPI of the image at ``path`` (decodes it)."""
    with _decoded(path) as (im, file_size):
        rgba, _ = _to_srgb_rgba(im)
        return _info_of(im, rgba, file_size)


def _check_canvas(width_px: int, height_px: int, dpi: int) -> None:
    for name, value in (("width_px", width_px), ("height_px", height_px)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{name} must be an integer, got {value!r}")
        if not 1 <= value <= MAX_CANVAS_SIDE:
            raise ValidationError(f"{name} must be between 1 and {MAX_CANVAS_SIDE}, got {value}")
    if width_px * height_px > MAX_IMAGE_PIXELS:
        raise ValidationError(
            f"a {width_px}x{height_px} canvas is above the {MAX_IMAGE_PIXELS:,} pixel limit"
        )
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 72 <= dpi <= 1200:
        raise ValidationError(f"dpi must be an integer between 72 and 1200, got {dpi!r}")


def prepare_print_file(
    src: Path, dst: Path, width_px: int, height_px: int, dpi: int = 300
) -> PrintFileInfo:
    """Fit ``src`` into a transparent ``width_px`` x ``height_px`` canvas and write a PNG to
    ``dst`` atomically (sRGB, ``dpi`` metadata). The design keeps its aspect ratio, centred.

    Raises ``ValidationError`` for a missing, empty, non-image, truncated or oversized source.
    """
    _check_canvas(width_px, height_px, dpi)
    with _decoded(src) as (im, file_size):
        rgba, icc_converted = _to_srgb_rgba(im)
        source_info = _info_of(im, rgba, file_size)

    scale = min(width_px / rgba.width, height_px / rgba.height)
    fit_w = min(width_px, max(1, round(rgba.width * scale)))
    fit_h = min(height_px, max(1, round(rgba.height * scale)))
    if (fit_w, fit_h) == rgba.size:
        fitted = rgba
        _clear_transparent(fitted)
    else:
        # Resampling works on premultiplied alpha: fully transparent results come out as
        # (0, 0, 0, 0) already, and no hidden colour bleeds into the edges.
        fitted = rgba.resize((fit_w, fit_h), Image.Resampling.LANCZOS)
    del rgba
    left, top = (width_px - fit_w) // 2, (height_px - fit_h) // 2
    if (fit_w, fit_h) == (width_px, height_px):
        canvas = fitted
    else:
        canvas = Image.new("RGBA", (width_px, height_px), (0, 0, 0, 0))
        canvas.paste(fitted, (left, top))
    del fitted

    buffer = io.BytesIO()
    canvas.save(
        buffer,
        "PNG",
        dpi=(dpi, dpi),
        icc_profile=SRGB_ICC,
        compress_level=PNG_COMPRESS_LEVEL,
    )
    data = buffer.getvalue()
    atomic_write_bytes(dst, data)
    return PrintFileInfo(
        path=str(dst),
        width=width_px,
        height=height_px,
        dpi=dpi,
        file_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        has_transparency=_has_transparency(canvas),
        icc_converted=icc_converted,
        content_box=(left, top, fit_w, fit_h),
        source=source_info,
    )


# --- upload re-encoding (a platform's size limit) ---------------------------------------------

_ACCEPTED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}


@dataclass(frozen=True)
class PreparedImage:
    """Image bytes ready to upload, with their type and size."""

    data: bytes
    mime: str
    width: int
    height: int


def open_checked_image(data: bytes, name: str, *, service: str, decode: bool = False) -> Any:
    """Open and check an image: a structural ``verify()`` always, a full decode on request."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        img = Image.open(io.BytesIO(data))
        if decode:
            img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ValidationError(
            f"{name} is not an image POD Studio can read",
            service=service,
            user_message=f"The design file {name} is not a readable image (PNG or JPEG).",
        ) from None
    return img


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def fit_for_upload(data: bytes, name: str, limit: int, *, service: str) -> PreparedImage:
    """PNG/JPEG bytes whose base64 form fits ``limit``: as is, recompressed or downscaled."""
    with open_checked_image(data, name, service=service) as img:
        width, height = img.size
        fmt = img.format or ""
        if fmt in _ACCEPTED_FORMATS and _b64_len(len(data)) <= limit:
            return PreparedImage(data=data, mime=_ACCEPTED_FORMATS[fmt], width=width, height=height)
        has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
        try:
            work = img.convert("RGBA" if has_alpha else "RGB")
        except (OSError, ValueError) as exc:
            raise ValidationError(
                f"{name} is damaged ({type(exc).__name__})",
                service=service,
                user_message=f"The design file {name} is damaged and cannot be read.",
            ) from None
    current = work
    while True:
        buf = io.BytesIO()
        current.save(buf, "PNG", optimize=True)
        if _b64_len(buf.tell()) <= limit:
            return PreparedImage(
                data=buf.getvalue(), mime="image/png", width=current.width, height=current.height
            )
        if not has_alpha:
            for quality in (95, 90, 85):
                buf = io.BytesIO()
                current.save(buf, "JPEG", quality=quality, optimize=True)
                if _b64_len(buf.tell()) <= limit:
                    return PreparedImage(
                        data=buf.getvalue(),
                        mime="image/jpeg",
                        width=current.width,
                        height=current.height,
                    )
        if min(current.size) < 256:
            raise ValidationError(
                f"{name} cannot be made small enough to upload",
                service=service,
                user_message=f"The design file {name} is too large to upload.",
            )
        size = (int(current.width * 0.85), int(current.height * 0.85))
        current = current.resize(size, Image.Resampling.LANCZOS)
