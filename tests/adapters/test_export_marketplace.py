"""The export folder marketplace: atomic listing folders, idempotency, crash recovery."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from pod_studio.adapters.marketplaces import export as export_module
from pod_studio.adapters.marketplaces.export import (
    ExportMarketplace,
    folder_name,
    readable_folder_name,
)
from pod_studio.domain.errors import APIError, ValidationError
from pod_studio.domain.marketplace import (
    ListingSpec,
    ListingStatus,
    Marketplace,
    Placement,
    VariantPrice,
)

DESIGN_BYTES = b"\x89PNG\r\n\x1a\n pretend print file"
# the listing's folder is named by its title, one per idempotency key
FOLDER = readable_folder_name("Retro Sunset T-Shirt", "job42-tee")


def _spec(tmp_path: Path, idem_key: str = "job42-tee", **changes: object) -> ListingSpec:
    design = tmp_path / "src" / "print.PNG"
    design.parent.mkdir(exist_ok=True)
    design.write_bytes(DESIGN_BYTES)
    data: dict[str, object] = {
        "idem_key": idem_key,
        "title": "Retro Sunset T-Shirt",
        "description": "retro sunset\n\nSoft tee.",
        "tags": ("t-shirt", "retro", "sunset"),
        "design_path": design,
        "design_sha256": hashlib.sha256(DESIGN_BYTES).hexdigest(),
        "blueprint_id": 12,
        "print_provider_id": 99,
        "variants": (
            VariantPrice(variant_id=18100, price=Decimal("19.99")),
            VariantPrice(variant_id=18101, price=Decimal("21.90"), enabled=False),
        ),
        "placement": Placement(x=0.5, y=0.45, scale=0.9, angle=0),
    }
    data.update(changes)
    return ListingSpec.build(**data)


def _half_written_folder(root: Path) -> Path:
    """What a crash in the middle of create_listing leaves behind."""
    leftover = root / ".tmp-job42-tee-abc123"
    leftover.mkdir(parents=True)
    (leftover / "design.png").write_bytes(DESIGN_BYTES[:5])
    (leftover / "listing.json").write_text('{"idem_k', encoding="utf-8")
    return leftover


def _visible(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "exports"


@pytest.mark.asyncio
async def test_implements_the_marketplace_port(root: Path) -> None:
    market = ExportMarketplace(root)
    assert isinstance(market, Marketplace)
    assert market.name == "export"
    await market.aclose()


@pytest.mark.asyncio
async def test_create_writes_a_complete_folder(tmp_path: Path, root: Path) -> None:
    market = ExportMarketplace(root)
    spec = _spec(tmp_path)
    listing = await market.create_listing(spec)

    assert listing.platform == "export"
    assert listing.remote_id == FOLDER
    assert listing.status is ListingStatus.DRAFT
    assert listing.title == spec.title
    assert listing.url == (root / FOLDER).resolve().as_uri()
    assert listing.external_ids == {"idem_key": "job42-tee"}
    assert listing.created_at is not None
    assert _visible(root) == [FOLDER]

    folder = root / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == ["design.png", "listing.csv", "listing.json"]
    assert (folder / "design.png").read_bytes() == DESIGN_BYTES

    data = json.loads((folder / "listing.json").read_text(encoding="utf-8"))
    assert data["idem_key"] == "job42-tee"
    assert data["status"] == "draft"
    assert data["title"] == spec.title
    assert data["description"] == spec.description
    assert data["tags"] == ["t-shirt", "retro", "sunset"]
    assert data["variants"] == [
        {"variant_id": 18100, "color": "", "size": "", "price": "19.99", "enabled": True},
        {"variant_id": 18101, "color": "", "size": "", "price": "21.90", "enabled": False},
    ]
    assert data["placement"] == {"x": 0.5, "y": 0.45, "scale": 0.9, "angle": 0}
    assert data["design"] == {"file": "design.png", "sha256": spec.design_sha256}
    assert data["currency"] == "USD"

    rows = list(csv.DictReader(io.StringIO((folder / "listing.csv").read_text(encoding="utf-8"))))
    assert [(r["variant_id"], r["price"], r["enabled"]) for r in rows] == [
        ("18100", "19.99", "true"),
        ("18101", "21.90", "false"),
    ]
    assert rows[0]["title"] == spec.title
    assert rows[0]["tags"] == "t-shirt, retro, sunset"
    assert rows[0]["description"] == spec.description  # newlines survive CSV quoting


@pytest.mark.asyncio
async def test_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path: Path, root: Path) -> None:
    market = ExportMarketplace(root)
    listing = await market.create_listing(_spec(tmp_path, title="=HYPERLINK(evil)"))
    text = (root / listing.remote_id / "listing.csv").read_text(encoding="utf-8")
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["title"] == "'=HYPERLINK(evil)"


@pytest.mark.asyncio
async def test_find_existing(tmp_path: Path, root: Path) -> None:
    market = ExportMarketplace(root)
    assert await market.find_existing("job42-tee") is None
    created = await market.create_listing(_spec(tmp_path))
    found = await market.find_existing("job42-tee")
    assert found == created
    assert await market.find_existing("another-key") is None


@pytest.mark.asyncio
async def test_second_create_returns_the_first_listing(tmp_path: Path, root: Path) -> None:
    market = ExportMarketplace(root)
    first = await market.create_listing(_spec(tmp_path))
    second = await market.create_listing(_spec(tmp_path, title="A different title"))
    assert second == first
    assert _visible(root) == [FOLDER]
    data = json.loads((root / FOLDER / "listing.json").read_text(encoding="utf-8"))
    assert data["title"] == "Retro Sunset T-Shirt"
    # A second adapter instance (an app restart) sees the same folder.
    assert await ExportMarketplace(root).create_listing(_spec(tmp_path)) == first
    assert _visible(root) == [FOLDER]


@pytest.mark.asyncio
async def test_concurrent_creates_make_one_folder(tmp_path: Path, root: Path) -> None:
    market = ExportMarketplace(root)
    spec = _spec(tmp_path)
    results = await asyncio.gather(*(market.create_listing(spec) for _ in range(5)))
    assert len({r.remote_id for r in results}) == 1
    assert _visible(root) == [FOLDER]


@pytest.mark.asyncio
async def test_crash_leftovers_are_cleaned_on_the_next_call(tmp_path: Path, root: Path) -> None:
    leftover = _half_written_folder(root)
    market = ExportMarketplace(root)

    assert await market.find_existing("job42-tee") is None
    assert not leftover.exists()

    listing = await market.create_listing(_spec(tmp_path))
    assert listing.remote_id == FOLDER
    assert _visible(root) == [FOLDER]


@pytest.mark.asyncio
async def test_damaged_listing_folder_is_moved_aside_and_recreated(
    tmp_path: Path, root: Path
) -> None:
    folder = root / FOLDER
    folder.mkdir(parents=True)
    (folder / "listing.json").write_text("{ not json", encoding="utf-8")
    market = ExportMarketplace(root)

    assert await market.find_existing("job42-tee") is None
    names = _visible(root)
    assert len(names) == 1
    assert names[0].startswith(f"{FOLDER}.corrupt-")
    assert (root / names[0] / "listing.json").read_text(encoding="utf-8") == "{ not json"

    await market.create_listing(_spec(tmp_path))
    assert (root / FOLDER / "listing.json").is_file()


@pytest.mark.asyncio
async def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = export_module._write_file

    def failing_write(path: Path, data: bytes) -> None:
        if path.name == "listing.csv":
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(export_module, "_write_file", failing_write)
    market = ExportMarketplace(root)
    with pytest.raises(APIError, match="No space left on device") as info:
        await market.create_listing(_spec(tmp_path))
    assert info.value.service == "export"
    assert _visible(root) == []
    assert await market.find_existing("job42-tee") is None


@pytest.mark.asyncio
async def test_design_that_changed_is_refused(tmp_path: Path, root: Path) -> None:
    market = ExportMarketplace(root)
    spec = _spec(tmp_path, design_sha256="ab" * 32)
    with pytest.raises(ValidationError, match="does not match its sha256"):
        await market.create_listing(spec)
    assert _visible(root) == []


@pytest.mark.asyncio
async def test_missing_design_is_refused(tmp_path: Path, root: Path) -> None:
    market = ExportMarketplace(root)
    spec = _spec(tmp_path, design_path=tmp_path / "gone.png")
    with pytest.raises(ValidationError, match="does not exist"):
        await market.create_listing(spec)
    assert _visible(root) == []


@pytest.mark.asyncio
async def test_unsafe_keys_get_distinct_portable_folders(tmp_path: Path, root: Path) -> None:
    market = ExportMarketplace(root)
    keys = ["shop/a:b", "shop_a_b", "../escape", "CON", "x" * 150]
    listings = [await market.create_listing(_spec(tmp_path, idem_key=k)) for k in keys]
    names = [listing.remote_id for listing in listings]
    assert len(set(names)) == len(keys)
    assert all(n.startswith("retro-sunset-t-shirt-") for n in names)  # named by the title
    for name in names:
        assert "/" not in name
        assert ":" not in name
        assert not name.startswith(".")
        assert len(name) <= 100
        assert (root / name / "listing.json").is_file()
    for key, listing in zip(keys, listings, strict=True):
        assert await market.find_existing(key) == listing
    assert folder_name("shop/a:b") == folder_name("shop/a:b")
    assert sorted(_visible(root)) == sorted(names)


@pytest.mark.asyncio
async def test_publish_marks_the_listing_published(tmp_path: Path, root: Path) -> None:
    market = ExportMarketplace(root)
    draft = await market.create_listing(_spec(tmp_path))
    published = await market.publish(draft)
    assert published.status is ListingStatus.PUBLISHED
    assert published.remote_id == draft.remote_id
    data = json.loads((root / draft.remote_id / "listing.json").read_text(encoding="utf-8"))
    assert data["status"] == "published"
    assert data["published_at"]
    assert (await market.get_listing(draft.remote_id)).status is ListingStatus.PUBLISHED
    again = await market.publish(published)
    assert again == published
    found = await market.find_existing("job42-tee")
    assert found is not None
    assert found.status is ListingStatus.PUBLISHED


@pytest.mark.asyncio
async def test_get_listing_unknown_and_invalid_ids(root: Path) -> None:
    market = ExportMarketplace(root)
    with pytest.raises(APIError) as info:
        await market.get_listing("nope")
    assert info.value.status_code == 404
    assert not info.value.retryable
    for bad in ("../etc", ".tmp-x", "", "a/b"):
        with pytest.raises(ValidationError, match="not an export listing id"):
            await market.get_listing(bad)


@pytest.mark.asyncio
async def test_health_check(tmp_path: Path, root: Path) -> None:
    ok, detail = await ExportMarketplace(root).health_check()
    assert ok
    assert "writable" in detail
    assert _visible(root) == []  # the probe file is removed

    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    ok, detail = await ExportMarketplace(blocker / "exports").health_check()
    assert not ok
    assert "not writable" in detail


@pytest.mark.asyncio
async def test_rows_name_colour_and_size_and_old_folders_are_still_found(
    tmp_path: Path, root: Path
) -> None:
    market = ExportMarketplace(root)
    variants = (
        VariantPrice(variant_id=1, price=Decimal("19.99"), options={"Color": "Black", "Size": "M"}),
        VariantPrice(variant_id=2, price=Decimal("21.99"), options={"Color": "Navy", "Size": "XL"}),
    )
    listing = await market.create_listing(_spec(tmp_path, variants=variants))
    text = (root / listing.remote_id / "listing.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["color"], r["size"], r["price"]) for r in rows] == [
        ("Black", "M", "19.99"),
        ("Navy", "XL", "21.99"),
    ]
    # a folder an earlier version named by the key alone is still this key's listing
    (root / listing.remote_id).rename(root / folder_name("job42-tee"))
    found = await market.find_existing("job42-tee")
    assert found is not None and found.remote_id == folder_name("job42-tee")
    again = await market.create_listing(_spec(tmp_path, variants=variants))
    assert again.remote_id == found.remote_id and len(_visible(root)) == 1
