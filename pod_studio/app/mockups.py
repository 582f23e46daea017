"""App layer: what the publish panel's preview draws for a design on a product.

:func:`mockup_spec` is pure and cheap (no file IO): the design's pixel size comes with the
``GeneratedImage`` (the upscaled print file's, when it has one), the print area is the
product's usual front area (:func:`pod_studio.domain.preflight.typical_print_area`), and
the effective DPI and its level come from the same preflight rules that badge the gallery cards.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.preflight import (
    FAIL_DPI,
    SOFT_DPI,
    WARN_DPI,
    PreflightBadge,
    dpi_badge,
    effective_dpi,
    typical_print_area,
)
from pod_studio.domain.products import PrintPlacement, ProductTemplate


class MockupShape(StrEnum):
    TEE = "tee"
    HOODIE = "hoodie"
    MUG = "mug"
    OTHER = "other"


def shape_for(product_type: str) -> MockupShape:
    key = product_type.casefold()
    if "mug" in key or "cup" in key:
        return MockupShape.MUG
    if "hood" in key:
        return MockupShape.HOODIE
    if any(w in key for w in ("shirt", "tee", "sweat", "tank", "top")):
        return MockupShape.TEE
    return MockupShape.OTHER


@dataclass(frozen=True)
class MockupSpec:
    """One design on one product, as the preview draws it."""

    template: str
    product_label: str
    shape: MockupShape
    colour: str  # the template's first colour, as the seller named it
    area: tuple[int, int]  # print area, px at 300 DPI
    placement: PrintPlacement
    design_size: tuple[int, int]
    dpi: float
    level: PreflightBadge

    @property
    def low_resolution(self) -> bool:
        """Below the level where the print looks soft: publishing asks first."""
        return self.level is not PreflightBadge.PASS

    def dpi_text(self) -> str:
        """ "68 DPI — soft, upscale for 300" """
        dpi = f"{self.dpi:.0f} DPI"
        if self.level is PreflightBadge.FAIL:
            return f"{dpi} — too low to print (needs {FAIL_DPI}+)"
        if self.level is PreflightBadge.WARN:
            return f"{dpi} — will print soft (upscale for {WARN_DPI})"
        if self.dpi < WARN_DPI:
            return f"{dpi} — good ({WARN_DPI} is sharpest)"
        return f"{dpi} — sharp"

    def detail_text(self) -> str:
        """The numbers behind the DPI, for a tooltip."""
        w, h = self.area
        inches = self.placement.scale * w / 300
        return (
            f"Design {self.design_size[0]}×{self.design_size[1]} px printed "
            f"{inches:.1f} in wide on a {w}×{h} px print area (usual {self.product_label} "
            f"front, 300 DPI) at scale {self.placement.scale:g}. Below {SOFT_DPI} DPI a print "
            f"looks soft, below {FAIL_DPI} blurred."
        )


def mockup_spec(image: GeneratedImage, template: ProductTemplate) -> MockupSpec:
    area = typical_print_area(template.product_type)
    size = image.print_size  # an upscaled print file, when the design has one
    dpi = effective_dpi(size[0], area[0], template.placement.scale)
    return MockupSpec(
        template=template.name,
        product_label=template.product_label,
        shape=shape_for(template.product_type),
        colour=template.colors[0],
        area=area,
        placement=template.placement,
        design_size=size,
        dpi=round(dpi, 1),
        level=dpi_badge(dpi),
    )
