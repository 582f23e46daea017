"""Domain layer: print-file preflight (pure rules, no image decoding).

``ImageInfo`` describes a decoded image (the imaging adapter reads it); ``PrintFileInfo``
describes a print file the adapter wrote, including the source it was made from.
:func:`preflight` turns either into a badge (pass / warn / fail) with reasons a seller can act
on. Placeholder pixels are taken to be meant at 300 DPI (Printify's print areas), so the
effective DPI of a design is ``300 * image width / (scale * placeholder width)``. Upscaling
adds pixels, not detail: a print file is judged by the source it was made from.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

PRINT_DPI = 300
# Printify's own threshold (error 8203) is not published; the contract's inferred check warns
# below ~150. Below 60 DPI a print is visibly blurred, so that fails; 1024 px designs on a
# tee (~68 DPI) pass with a warning to upscale them.
SOFT_DPI = 150
FAIL_DPI = 60
WARN_DPI = 300
ASPECT_WARN_DELTA = 0.10

# A product's usual front print area in pixels at 300 DPI, for when the catalog's placeholders
# are not at hand (the publish panel's preview): Printify's common tee and hoodie fronts, an
# 11 oz mug's wrap. The publish itself uses the variant's own placeholder.
TYPICAL_PRINT_AREAS: dict[str, tuple[int, int]] = {
    "t-shirt": (4500, 5400),
    "sweatshirt": (4500, 5400),
    "tank top": (4500, 5400),
    "hoodie": (4500, 5700),
    "mug": (2475, 1155),
}
DEFAULT_PRINT_AREA = TYPICAL_PRINT_AREAS["t-shirt"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageInfo(_Frozen):
    """What a decoded image looks like."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    mode: str
    has_alpha: bool  # the image has an alpha channel (or a transparent palette entry)
    has_transparency: bool  # some pixel is not fully opaque
    file_size: int = Field(ge=0)
    dpi: tuple[float, float] | None = None
    # Fully opaque, with near-white corners: prints as a white box on a coloured garment.
    opaque_white_background: bool = False


class PrintFileInfo(_Frozen):
    """A print file written by the imaging adapter, and the source it was made from."""

    path: str
    width: int
    height: int
    dpi: int
    file_size: int
    sha256: str
    has_transparency: bool
    icc_converted: bool  # an embedded colour profile was converted to sRGB
    content_box: tuple[int, int, int, int]  # left, top, width, height of the design
    source: ImageInfo


class PreflightBadge(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class PreflightResult(_Frozen):
    badge: PreflightBadge
    reasons: list[str]
    effective_dpi: float
    aspect_ratio_delta: float  # |image aspect - placeholder aspect| / placeholder aspect
    has_transparency: bool
    file_size: int


def effective_dpi(image_width: int, placeholder_width: int, scale: float = 1.0) -> float:
    """DPI of an image ``image_width`` px wide printed ``scale`` x the placeholder's width."""
    if placeholder_width <= 0 or scale <= 0:
        raise ValueError("placeholder width and scale must be positive")
    printed_inches = scale * placeholder_width / PRINT_DPI
    return image_width / printed_inches


def typical_print_area(product_type: str) -> tuple[int, int]:
    """The usual front print area (px) of ``product_type`` ("t-shirt", "hoodie", "mug", ...)."""
    key = product_type.strip().casefold()
    if key in TYPICAL_PRINT_AREAS:
        return TYPICAL_PRINT_AREAS[key]
    if "mug" in key:
        return TYPICAL_PRINT_AREAS["mug"]
    if "hood" in key:
        return TYPICAL_PRINT_AREAS["hoodie"]
    return DEFAULT_PRINT_AREA


def dpi_badge(dpi: float) -> PreflightBadge:
    """How a print at ``dpi`` will look: FAIL below 60 (blurred), WARN below 150 (soft),
    PASS otherwise (300 prints sharpest, 150 is fine for garments)."""
    if dpi < FAIL_DPI:
        return PreflightBadge.FAIL
    if dpi < SOFT_DPI:
        return PreflightBadge.WARN
    return PreflightBadge.PASS


def preflight(
    image_info: ImageInfo | PrintFileInfo,
    placeholder: tuple[int, int],
    max_file_bytes: int,
    *,
    scale: float = 1.0,
    garment: bool = True,
) -> PreflightResult:
    """Judge a design (or a prepared print file) against a print area.

    Rules: effective DPI below 60 fails, below 300 warns; an aspect ratio more than 10 % off
    the placeholder's warns; a file larger than ``max_file_bytes`` fails; an opaque white
    background on a garment warns.
    """
    pw, ph = placeholder
    if pw <= 0 or ph <= 0:
        raise ValueError(f"placeholder must be positive pixels, got {placeholder}")
    if isinstance(image_info, PrintFileInfo):
        design = image_info.source
        file_size = image_info.file_size
        transparent = image_info.has_transparency
    else:
        design = image_info
        file_size = image_info.file_size
        transparent = image_info.has_transparency

    fails: list[str] = []
    warns: list[str] = []

    dpi = effective_dpi(design.width, pw, scale)
    level = dpi_badge(dpi)
    if level is PreflightBadge.FAIL:
        fails.append(
            f"Resolution too low: {dpi:.0f} DPI at this size (needs at least {FAIL_DPI}, "
            f"ideally {WARN_DPI}). Use a larger design or upscale it in ComfyUI."
        )
    elif level is PreflightBadge.WARN:
        warns.append(
            f"Resolution is {dpi:.0f} DPI at this size: the print will look soft. Upscale the "
            f"design in ComfyUI (an upscale-model node) for {WARN_DPI} DPI."
        )
    elif dpi < WARN_DPI:
        warns.append(f"Resolution is {dpi:.0f} DPI at this size; {WARN_DPI} DPI prints sharpest.")

    image_aspect = design.width / design.height
    area_aspect = pw / ph
    delta = abs(image_aspect - area_aspect) / area_aspect
    if delta > ASPECT_WARN_DELTA:
        warns.append(
            f"The design's shape ({design.width}x{design.height}) differs from the print area "
            f"({pw}x{ph}) by {delta:.0%}: it will leave empty bands or be scaled down."
        )

    if file_size > max_file_bytes:
        fails.append(f"The file is {_size(file_size)}, above the {_size(max_file_bytes)} limit.")

    if garment and design.opaque_white_background:
        warns.append(
            "The design has an opaque white background: on a coloured garment it prints "
            "as a white box. Remove the background if that is not intended."
        )

    badge = PreflightBadge.FAIL if fails else PreflightBadge.WARN if warns else PreflightBadge.PASS
    return PreflightResult(
        badge=badge,
        reasons=fails + warns,
        effective_dpi=round(dpi, 1),
        aspect_ratio_delta=round(delta, 4),
        has_transparency=transparent,
        file_size=file_size,
    )


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


def upscale_target(
    size: tuple[int, int], print_widths: list[float], max_pixels: int, max_side: int = 16384
) -> tuple[int, int]:
    """The pixel size that prints ``size`` at 300 DPI on the widest of ``print_widths``
    (print-area width x placement scale, px at 300 DPI), aspect kept, within ``max_pixels``
    and ``max_side``. Never smaller than ``size``."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive pixels, got {size}")
    wanted = max([width, *(math.ceil(w) for w in print_widths)])
    factor = wanted / width
    limit = min(math.sqrt(max_pixels / (width * height)), max_side / width, max_side / height)
    factor = max(1.0, min(factor, limit))
    target_w = max(width, math.floor(width * factor))
    target_h = max(height, math.floor(height * factor))
    while target_w * target_h > max_pixels and target_w > width:
        target_w -= 1
        target_h = max(height, math.floor(target_w * height / width))
    return target_w, target_h
