"""Domain layer: the marketplace port and the values it speaks in.

Every platform POD Studio publishes to (Printify now; Shopify, Etsy and a local export folder
later) implements ``Marketplace``. The models here are pure values: frozen pydantic models,
money as ``Decimal`` plus an ISO currency code (never float), catalog ids as the platform gives
them. Structural rules (tag count and length, price precision, placement ranges) are checked
when a model is built; platform limits (a shorter title, a price ceiling, catalog membership,
image resolution) are checked by each adapter before it sends anything.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from pod_studio.domain.errors import ValidationError

MAX_TAGS = 13
MAX_TAG_CHARS = 20
MAX_TITLE_CHARS = 255  # hard ceiling; platforms may be stricter (Etsy: 140)
MAX_DESCRIPTION_CHARS = 50_000
MAX_PRICE = Decimal("100000")  # hard ceiling; adapters apply a tighter sanity limit

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ListingStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"


class VariantPrice(_Value):
    """The retail price of one catalog variant, and whether it is offered."""

    variant_id: int
    price: Decimal = Field(gt=Decimal(0), le=MAX_PRICE)
    enabled: bool = True
    # Option name -> value, e.g. {"Color": "Black", "Size": "M"}, for platforms that build
    # their own variants from options (Shopify); catalog-based platforms use ``variant_id``.
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("price")
    @classmethod
    def _two_decimals(cls, price: Decimal) -> Decimal:
        if not price.is_finite():
            raise ValueError("price must be a finite number")
        exponent = price.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -2:
            raise ValueError(f"price {price} has more than two decimal places")
        return price

    @property
    def cents(self) -> int:
        """The price in minor units (cents)."""
        return int((self.price * 100).to_integral_value())


class Placement(_Value):
    """Where the design sits in the print area, normalised to the placeholder.

    ``x``/``y`` place the centre of the image (0..1, 0.5 = centre); ``scale`` is the rendered
    image width divided by the placeholder width; ``angle`` is whole degrees.
    """

    x: float = Field(default=0.5, ge=0.0, le=1.0)
    y: float = Field(default=0.5, ge=0.0, le=1.0)
    scale: float = Field(default=1.0, gt=0.0, le=10.0)
    angle: StrictInt = Field(default=0, ge=0, le=360)


class ListingSpec(_Value):
    """Everything a marketplace needs to create one product listing from one design.

    ``idem_key`` is stable for one (design, product) pair: creating twice with the same key
    must yield one remote listing. ``placement`` ``None`` means "fit the design into the print
    area, centred, as large as possible without overflow".
    """

    idem_key: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    tags: tuple[str, ...] = ()
    design_path: Path
    design_sha256: str
    blueprint_id: int = Field(gt=0)
    print_provider_id: int = Field(gt=0)
    variants: tuple[VariantPrice, ...] = Field(min_length=1)
    currency: str = "USD"
    placement: Placement | None = None
    print_position: Literal["front"] = "front"
    mockups: tuple[Path, ...] = ()  # product photos to show before the print file, if any

    @field_validator("title")
    @classmethod
    def _clean_title(cls, title: str) -> str:
        title = " ".join(title.split())
        if not title:
            raise ValueError("title is empty")
        return title

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        cleaned: list[str] = []
        seen: set[str] = set()
        for raw in tags:
            tag = " ".join(raw.split())
            if not tag:
                raise ValueError("tags must not be empty")
            if len(tag) > MAX_TAG_CHARS:
                raise ValueError(f"tag {tag!r} is longer than {MAX_TAG_CHARS} characters")
            if tag.casefold() in seen:
                continue
            seen.add(tag.casefold())
            cleaned.append(tag)
        if len(cleaned) > MAX_TAGS:
            raise ValueError(f"{len(cleaned)} tags; at most {MAX_TAGS} are allowed")
        return tuple(cleaned)

    @field_validator("design_sha256")
    @classmethod
    def _check_sha(cls, digest: str) -> str:
        digest = digest.lower()
        if not _SHA256_RE.match(digest):
            raise ValueError("design_sha256 must be 64 hex characters")
        return digest

    @field_validator("currency")
    @classmethod
    def _check_currency(cls, currency: str) -> str:
        currency = currency.upper()
        if not _CURRENCY_RE.match(currency):
            raise ValueError(f"currency {currency!r} is not an ISO 4217 code")
        return currency

    @model_validator(mode="after")
    def _check_variants(self) -> ListingSpec:
        ids = [v.variant_id for v in self.variants]
        if len(ids) != len(set(ids)):
            raise ValueError("a variant appears twice")
        if not any(v.enabled for v in self.variants):
            raise ValueError("enable at least one variant")
        return self

    @property
    def enabled_variants(self) -> tuple[VariantPrice, ...]:
        return tuple(v for v in self.variants if v.enabled)

    @classmethod
    def build(cls, **data: Any) -> ListingSpec:
        """Build a spec from user input, raising the domain ``ValidationError`` on bad input."""
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            details = [
                f"{'.'.join(str(p) for p in err['loc']) or 'listing'}: {err['msg']}"
                for err in exc.errors()
            ]
            raise ValidationError(
                "invalid listing: " + "; ".join(details),
                details=details,
                service="marketplace",
            ) from None


class RemoteListing(_Value):
    """A listing as the platform holds it."""

    platform: str
    remote_id: str
    status: ListingStatus
    title: str = ""
    url: str | None = None
    external_ids: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = None
    images: tuple[str, ...] = ()  # the platform's own mockup URLs (default first), if it has any


class Placeholder(_Value):
    """A printable area of one variant, in pixels."""

    position: str
    width: int
    height: int


class CatalogVariant(_Value):
    id: int
    title: str
    options: dict[str, str] = Field(default_factory=dict)
    placeholders: tuple[Placeholder, ...] = ()
    cost: Decimal | None = None
    currency: str = "USD"

    def placeholder(self, position: str) -> Placeholder | None:
        return next((p for p in self.placeholders if p.position == position), None)

    def option(self, name: str) -> str | None:
        """The value of option ``name`` (e.g. "color", "size"), matched case-insensitively."""
        wanted = name.casefold()
        return next((v for k, v in self.options.items() if k.casefold() == wanted), None)


class Blueprint(_Value):
    id: int
    title: str
    brand: str = ""
    model: str = ""
    description: str = ""
    images: tuple[str, ...] = ()


class PrintProvider(_Value):
    id: int
    title: str


class ShippingProfile(_Value):
    variant_ids: tuple[int, ...]
    first_item: Decimal
    additional_items: Decimal
    currency: str = "USD"
    countries: tuple[str, ...] = ()


class Shop(_Value):
    id: str
    title: str
    sales_channel: str = ""


@runtime_checkable
class Marketplace(Protocol):
    """A platform that holds product listings (Printify, Shopify, Etsy, an export folder)."""

    name: str

    async def find_existing(self, idem_key: str) -> RemoteListing | None:
        """The listing created earlier for ``idem_key``, if the platform holds one."""

    async def create_listing(self, spec: ListingSpec) -> RemoteListing:
        """Create a draft listing. Not idempotent by itself: the publish executor looks the
        listing up by its key after an ambiguous failure before sending it again."""

    async def publish(self, listing: RemoteListing) -> RemoteListing:
        """Make the draft live (or start doing so); returns the state read back."""

    async def get_listing(self, remote_id: str) -> RemoteListing: ...

    async def health_check(self) -> tuple[bool, str]:
        """Reachable and authorised? Never raises; ``detail`` is fit for the seller."""

    async def aclose(self) -> None: ...
