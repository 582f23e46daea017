"""Sandbox layer: the small, realistic Printify catalog the Printify sandbox serves.

Two blueprints (12: Bella+Canvas 3001 tee, 77: Gildan 18500 hoodie), a few print providers
each, variants as colour x size with integer ids, per-size front/back placeholders in pixels,
fulfilment costs in cents (only shown on products, as Printify does), one out-of-stock variant
per provider and shipping profiles in cents. Not every provider offers every blueprint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SIZE_OPTION_IDS = {"XS": 13, "S": 14, "M": 15, "L": 16, "XL": 17, "2XL": 18}
COLOR_OPTIONS: dict[str, tuple[int, str]] = {
    "White": (521, "#FFFFFF"),
    "Black": (418, "#000000"),
    "Heather Grey": (602, "#A2A5A9"),
    "Navy": (511, "#1A2237"),
    "Red": (537, "#C2111D"),
    "Sport Grey": (358, "#9B969C"),
}


@dataclass(frozen=True)
class SandboxVariant:
    id: int
    color: str
    size: str
    placeholders: tuple[tuple[str, int, int], ...]
    cost_cents: int
    in_stock: bool = True

    @property
    def title(self) -> str:
        return f"{self.color} / {self.size}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "options": {"color": self.color, "size": self.size},
            "placeholders": [
                {"position": pos, "width": w, "height": h} for pos, w, h in self.placeholders
            ],
        }

    def placeholder(self, position: str) -> tuple[int, int] | None:
        for pos, w, h in self.placeholders:
            if pos == position:
                return w, h
        return None


@dataclass(frozen=True)
class SandboxProvider:
    id: int
    title: str
    location: dict[str, str]
    variants: dict[int, tuple[SandboxVariant, ...]] = field(default_factory=dict)
    shipping: tuple[tuple[str, int, int], ...] = (
        ("US", 475, 240),
        ("REST_OF_THE_WORLD", 1000, 400),
    )


@dataclass(frozen=True)
class SandboxBlueprint:
    id: int
    title: str
    brand: str
    model: str
    description: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "brand": self.brand,
            "model": self.model,
            "images": [f"https://images.printify.com/api/catalog/{self.id:08x}.jpg"],
        }


_TEE_FRONT_BY_SIZE = {
    "XS": (3153, 3995),
    "S": (3602, 4563),
    "M": (4051, 5131),
    "L": (4500, 5700),
    "XL": (4500, 5700),
    "2XL": (4500, 5700),
}


def _grid(
    base_id: int,
    colors: list[str],
    sizes: list[str],
    *,
    front: dict[str, tuple[int, int]] | tuple[int, int],
    back: tuple[int, int] | None,
    cost: int,
    big_size_extra: int,
    out_of_stock: tuple[str, str] | None,
) -> tuple[SandboxVariant, ...]:
    out: list[SandboxVariant] = []
    for ci, color in enumerate(colors):
        for si, size in enumerate(sizes):
            fw, fh = front[size] if isinstance(front, dict) else front
            holders: list[tuple[str, int, int]] = [("front", fw, fh)]
            if back is not None:
                holders.append(("back", back[0], back[1]))
            out.append(
                SandboxVariant(
                    id=base_id + ci * 10 + si,
                    color=color,
                    size=size,
                    placeholders=tuple(holders),
                    cost_cents=cost + (big_size_extra if size == "2XL" else 0),
                    in_stock=(color, size) != out_of_stock,
                )
            )
    return tuple(out)


BLUEPRINTS: dict[int, SandboxBlueprint] = {
    12: SandboxBlueprint(
        12,
        "Unisex Jersey Short Sleeve Tee",
        "Bella+Canvas",
        "3001",
        "Soft, lightweight retail-fit tee. 100% Airlume combed and ring-spun cotton.",
    ),
    77: SandboxBlueprint(
        77,
        "Unisex Heavy Blend\u2122 Hooded Sweatshirt",
        "Gildan",
        "18500",
        "Heavy blend hoodie with a kangaroo pouch pocket. 50% cotton, 50% polyester.",
    ),
}


def build_providers() -> dict[int, SandboxProvider]:
    """Fresh provider table (each sandbox gets its own, so tests cannot leak into each other)."""
    return {
        99: SandboxProvider(
            99,
            "Printify Choice",
            {"country": "US", "region": "", "city": "", "zip": ""},
            {
                12: _grid(
                    18100,
                    ["White", "Black", "Heather Grey", "Navy"],
                    ["XS", "S", "M", "L", "XL", "2XL"],
                    front=_TEE_FRONT_BY_SIZE,
                    back=(4500, 5700),
                    cost=1134,
                    big_size_extra=300,
                    out_of_stock=("Navy", "XS"),
                ),
                77: _grid(
                    32900,
                    ["Black", "Navy", "Sport Grey"],
                    ["S", "M", "L", "XL", "2XL"],
                    front=(3852, 3852),
                    back=(4500, 5400),
                    cost=2140,
                    big_size_extra=300,
                    out_of_stock=("Sport Grey", "2XL"),
                ),
            },
        ),
        29: SandboxProvider(
            29,
            "Monster Digital",
            {"country": "US", "region": "CA", "city": "Vista", "zip": "92081"},
            {
                12: _grid(
                    24000,
                    ["White", "Black"],
                    ["S", "M", "L", "XL", "2XL"],
                    front=(4500, 5100),
                    back=None,
                    cost=1050,
                    big_size_extra=250,
                    out_of_stock=None,
                ),
            },
        ),
        50: SandboxProvider(
            50,
            "Underground Threads",
            {"country": "US", "region": "AZ", "city": "Tempe", "zip": "85281"},
            {
                12: _grid(
                    30100,
                    ["White", "Black", "Red"],
                    ["S", "M", "L", "XL"],
                    front=(4200, 4800),
                    back=(4200, 4800),
                    cost=1190,
                    big_size_extra=0,
                    out_of_stock=("Red", "S"),
                ),
                77: _grid(
                    42000,
                    ["Black", "White"],
                    ["S", "M", "L", "XL"],
                    front=(4200, 4200),
                    back=(4500, 5400),
                    cost=2290,
                    big_size_extra=0,
                    out_of_stock=None,
                ),
            },
        ),
    }
