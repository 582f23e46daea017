"""Tests for adapters/storage/images.py: gallery store, folder store, thumbnails."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from pod_studio.adapters.storage.images import (
    FolderImageStore,
    GalleryImageStore,
    inspect_image,
    make_thumbnail,
)
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.models import ImageRef, JobSpec
from pod_studio.domain.ports import ImageStore


def png_bytes(w: int = 64, h: int = 48, fmt: str = "PNG", color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, fmt)
    return buf.getvalue()


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def unlink(path: Path) -> None:
    path.unlink()


def glob(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


JOB = JobSpec(job_id="job/../1", prompt="a cat", negative="blurry", seed=7)
EVIL_REF = ImageRef(filename="../../etc/passwd.png", subfolder="..")


def test_stores_satisfy_the_port(tmp_path: Path) -> None:
    stores: list[ImageStore] = [GalleryImageStore(tmp_path), FolderImageStore(tmp_path)]
    assert len(stores) == 2


def test_inspect_image() -> None:
    data = png_bytes(30, 20)
    facts = inspect_image(data)
    assert (facts.format, facts.extension, facts.width, facts.height) == ("PNG", "png", 30, 20)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert inspect_image(png_bytes(fmt="JPEG")).extension == "jpg"
    for bad in (b"", b"not an image", data[: len(data) // 2], png_bytes(fmt="GIF")):
        with pytest.raises(ValidationError):
            inspect_image(bad)


@pytest.mark.asyncio
async def test_gallery_save_list_approve(tmp_path: Path) -> None:
    store = GalleryImageStore(tmp_path / "images", thumbnails_dir=tmp_path / "thumbs")
    data = png_bytes(64, 48)
    first = await store.save(
        JOB, data, ref=EVIL_REF, server="http://s", prompt_id="p1", seconds=1.5
    )
    second = await store.save(
        JOB, png_bytes(fmt="JPEG"), ref=EVIL_REF, server="http://s", prompt_id="p2", seconds=2.0
    )
    path = Path(first.file)
    assert path.parent == (tmp_path / "images").resolve()
    assert path.name == f"{first.image_id}.png" and "passwd" not in path.name
    assert read_bytes(path) == data
    assert Path(second.file).suffix == ".jpg"
    assert (first.width, first.height, first.seed, first.prompt) == (64, 48, 7, "a cat")
    assert first.sha256 == hashlib.sha256(data).hexdigest()

    listed = await store.list_images()
    assert [i.image_id for i in listed] == [second.image_id, first.image_id]
    assert listed[1] == first

    approved = await store.set_approved(first.image_id, True)
    assert approved.approved is True
    assert {i.image_id: i.approved for i in await store.list_images()} == {
        first.image_id: True,
        second.image_id: None,
    }
    with pytest.raises(ValidationError):
        await store.set_approved("../../x", True)
    with pytest.raises(ValidationError):
        await store.set_approved("0" * 32, True)

    thumb = await store.thumbnail(first, 32)
    with Image.open(io.BytesIO(thumb)) as im:
        assert im.format == "PNG" and max(im.size) == 32
    assert (tmp_path / "thumbs" / f"{first.sha256}-32.png").read_bytes() == thumb


@pytest.mark.asyncio
async def test_gallery_rejects_garbage_and_writes_nothing(tmp_path: Path) -> None:
    store = GalleryImageStore(tmp_path / "images")
    with pytest.raises(ValidationError):
        await store.save(JOB, b"<html>", ref=EVIL_REF, server="s", prompt_id="p", seconds=0)
    assert not (tmp_path / "images").exists() or not list((tmp_path / "images").iterdir())


@pytest.mark.asyncio
async def test_gallery_list_skips_unreadable_sidecars(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images = tmp_path / "images"
    store = GalleryImageStore(images)
    good = await store.save(JOB, png_bytes(), ref=EVIL_REF, server="s", prompt_id="p", seconds=0)
    (images / ("a" * 32 + ".json")).write_text("{broken")
    orphan = await store.save(JOB, png_bytes(), ref=EVIL_REF, server="s", prompt_id="p", seconds=0)
    unlink(Path(orphan.file))
    (images / "notes.json").write_text("ignored: not an image id")
    listed = await store.list_images()
    assert [i.image_id for i in listed] == [good.image_id]
    assert "skipping" in caplog.text


@pytest.mark.asyncio
async def test_gallery_follows_a_moved_folder(tmp_path: Path) -> None:
    store = GalleryImageStore(tmp_path / "old")
    img = await store.save(JOB, png_bytes(), ref=EVIL_REF, server="s", prompt_id="p", seconds=0)
    (tmp_path / "old").rename(tmp_path / "new")
    [moved] = await GalleryImageStore(tmp_path / "new").list_images()
    assert moved.image_id == img.image_id
    assert Path(moved.file) == (tmp_path / "new" / Path(img.file).name).resolve()


@pytest.mark.asyncio
async def test_folder_store_names_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    store = FolderImageStore(out, server_label="gpu-1")
    jobs = [JobSpec(job_id="b1-0", prompt=f"p{i}", seed=i % 2) for i in range(6)]
    results = await asyncio.gather(
        *(
            store.save(
                j,
                png_bytes(8 + i, 8),
                ref=EVIL_REF,
                server="http://x",
                prompt_id=f"id{i}",
                seconds=0.5,
            )
            for i, j in enumerate(jobs)
        )
    )
    names = sorted(Path(r.file).name for r in results)
    assert len(set(names)) == 6
    assert all(n.startswith("b1-0-") and n.endswith(".png") for n in names)
    manifest = json.loads((out / "manifest.json").read_text())
    assert isinstance(manifest, list) and len(manifest) == 6
    entry = next(e for e in manifest if e["prompt_id"] == "id3")
    assert entry["prompt"] == "p3" and entry["seed"] == 1 and entry["server"] == "gpu-1"
    assert (entry["width"], entry["height"]) == (11, 8)
    assert entry["sha256"] == hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest()
    assert set(entry) >= {
        "prompt",
        "seed",
        "file",
        "width",
        "height",
        "sha256",
        "server",
        "prompt_id",
        "seconds",
    }
    assert not list(out.glob(".*.tmp"))

    first = results[0]
    await store.set_approved(first.image_id, False)
    # A new store over the same folder keeps the entries and appends to them.
    again = FolderImageStore(out)
    listed = await again.list_images()
    assert len(listed) == 6
    assert next(i for i in listed if i.image_id == first.image_id).approved is False
    await again.save(
        jobs[0], png_bytes(), ref=EVIL_REF, server="http://x", prompt_id="z", seconds=0
    )
    assert len(json.loads((out / "manifest.json").read_text())) == 7
    with pytest.raises(ValidationError):
        await again.set_approved("missing", True)


@pytest.mark.asyncio
async def test_folder_store_moves_a_corrupt_manifest_aside(tmp_path: Path) -> None:
    tmp_path.joinpath("manifest.json").write_text("{oops")
    store = FolderImageStore(tmp_path)
    await store.save(JOB, png_bytes(), ref=EVIL_REF, server="s", prompt_id="p", seconds=0)
    assert len(json.loads((tmp_path / "manifest.json").read_text())) == 1
    assert glob(tmp_path, "manifest.json.corrupt-*")
    assert store.warnings and "unreadable" in store.warnings[0]
    [img] = await store.list_images()
    assert Path(img.file).name.startswith("job-1-7")


def test_make_thumbnail_caches_by_hash(tmp_path: Path) -> None:
    src = tmp_path / "big.png"
    Image.new("RGBA", (600, 300), (0, 0, 255, 128)).save(src)
    cache = tmp_path / "thumbs"
    thumb = make_thumbnail(src, 100, cache_dir=cache)
    with Image.open(io.BytesIO(thumb)) as im:
        assert im.size == (100, 50)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    cached = cache / f"{digest}-100.png"
    assert cached.read_bytes() == thumb
    cached.write_bytes(b"from-cache")
    assert make_thumbnail(src, 100, cache_dir=cache) == b"from-cache"
    with pytest.raises(ValidationError):
        make_thumbnail(tmp_path / "missing.png")
