"""The gallery's design library: SQLite index over the JSON records, rebuilt when missing or
corrupt, kept current by every save and approval."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from pod_studio.adapters.storage.images import GalleryImageStore
from pod_studio.domain.models import ImageRef, JobSpec


def _png(n: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (n * 20 % 255, 80, 120)).save(buf, "PNG")
    return buf.getvalue()


async def _save(store: GalleryImageStore, n: int) -> str:
    spec = JobSpec(job_id=f"job{n:04d}", prompt=f"design {n}", seed=n)
    ref = ImageRef(filename=f"x{n}.png")
    image = await store.save(spec, _png(n), ref=ref, server="s", prompt_id="p", seconds=0.1)
    return image.image_id


@pytest.mark.asyncio
async def test_listing_reads_the_index_not_the_records(tmp_path: Path) -> None:
    store = GalleryImageStore(tmp_path)
    ids = [await _save(store, n) for n in range(5)]
    listed = [i.image_id for i in await store.list_images()]
    assert listed == list(reversed(ids))  # newest first
    # the index is the listing: a record file removed behind our back does not hide a design
    (tmp_path / f"{ids[0]}.json").unlink()
    assert len(await store.list_images()) == 5


def _replace_index(index: Path, content: bytes | None) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    index.unlink()
    if content is not None:
        index.write_bytes(content)


def _corrupt_copies(index: Path) -> list[str]:
    return [p.name for p in index.parent.iterdir() if p.name.startswith(f"{index.name}.corrupt-")]


@pytest.mark.asyncio
async def test_a_missing_or_corrupt_index_is_rebuilt_from_the_records(tmp_path: Path) -> None:
    store = GalleryImageStore(tmp_path)
    ids = {await _save(store, n) for n in range(3)}
    index = tmp_path / GalleryImageStore.INDEX_NAME
    _replace_index(index, None)
    assert {i.image_id for i in await GalleryImageStore(tmp_path).list_images()} == ids
    _replace_index(index, b"this is not a database" * 100)
    assert {i.image_id for i in await GalleryImageStore(tmp_path).list_images()} == ids
    assert _corrupt_copies(index)


@pytest.mark.asyncio
async def test_approval_reaches_the_index(tmp_path: Path) -> None:
    store = GalleryImageStore(tmp_path)
    image_id = await _save(store, 1)
    await store.set_approved(image_id, True)
    (image,) = await GalleryImageStore(tmp_path).list_images()
    assert image.approved is True
