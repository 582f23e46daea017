"""Tests for adapters/storage/images.py: gallery store, output folder, thumbnails."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from pod_studio.adapters.storage.images import (
    GalleryImageStore,
    OutputFolder,
    inspect_image,
    make_thumbnail,
)
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.models import GeneratedImage, ImageRef, JobSpec, ListingCopy
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
    stores: list[ImageStore] = [GalleryImageStore(tmp_path)]
    assert len(stores) == 1


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

    words = ListingCopy(name="Sunset Ride", tags=("retro", "sunset"))
    named = await store.set_listing(first.image_id, words)
    assert named.listing == words and named.approved is True  # the review is kept
    reopened = GalleryImageStore(tmp_path / "images")
    assert {i.image_id: i.listing for i in await reopened.list_images()}[first.image_id] == words
    cleared = await store.set_listing(first.image_id, ListingCopy())
    assert cleared.listing is None  # empty words: from the prompt again

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


async def _gallery_images(tmp_path: Path, n: int) -> list[GeneratedImage]:
    store = GalleryImageStore(tmp_path / "gallery")
    jobs = [JobSpec(job_id=f"b1-{i}", prompt=f"p{i % 2}", seed=i % 2) for i in range(n)]
    return [
        await store.save(
            j, png_bytes(8 + i, 8), ref=EVIL_REF, server="http://x", prompt_id=f"id{i}", seconds=0.5
        )
        for i, j in enumerate(jobs)
    ]


@pytest.mark.asyncio
async def test_output_folder_names_and_manifest(tmp_path: Path) -> None:
    images = await _gallery_images(tmp_path, 6)
    out = tmp_path / "out"
    folder = OutputFolder(out)
    entries = folder.write(images)
    names = sorted(e["file"] for e in entries)
    assert len(set(names)) == 6  # same prompt and seed twice: still distinct names
    assert all(n.startswith(("p0-0", "p1-1")) and n.endswith(".png") for n in names)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == entries
    entry = next(e for e in manifest if e["prompt_id"] == "id3")
    assert entry["prompt"] == "p1" and entry["seed"] == 1 and entry["server"] == "http://x"
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


@pytest.mark.asyncio
async def test_output_folder_written_again_lists_each_image_once(tmp_path: Path) -> None:
    images = await _gallery_images(tmp_path, 3)
    out = tmp_path / "out"
    OutputFolder(out).write(images[:2])
    # the next run of the same batch: what is listed stays, only the new image is added
    entries = OutputFolder(out).write(images)
    assert [e["image_id"] for e in entries] == [i.image_id for i in images]
    assert len(list(out.glob("*.png"))) == 3


@pytest.mark.asyncio
async def test_output_folder_reuses_a_copy_its_manifest_missed(tmp_path: Path) -> None:
    """A run killed after copying an image but before writing the manifest: the next run
    lists that copy instead of writing a second one."""
    [image] = await _gallery_images(tmp_path, 1)
    out = tmp_path / "out"
    [entry] = OutputFolder(out).write([image])
    (out / "manifest.json").unlink()
    [again] = OutputFolder(out).write([image])
    assert again["file"] == entry["file"]
    assert [p.name for p in out.glob("*.png")] == [entry["file"]]


@pytest.mark.asyncio
async def test_output_folder_moves_a_corrupt_manifest_aside(tmp_path: Path) -> None:
    [image] = await _gallery_images(tmp_path, 1)
    tmp_path.joinpath("manifest.json").write_text("{oops")
    folder = OutputFolder(tmp_path)
    folder.write([image])
    assert len(json.loads((tmp_path / "manifest.json").read_text())) == 1
    assert glob(tmp_path, "manifest.json.corrupt-*")
    assert folder.warnings and "unreadable" in folder.warnings[0]


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


@pytest.mark.asyncio
async def test_output_folder_appends_to_its_manifest(tmp_path: Path) -> None:
    """A run that adds an image to a folder leaves what is listed byte for byte as it was and
    writes only the new entry before the closing bracket; the file stays a JSON list."""
    images = await _gallery_images(tmp_path, 4)
    out = tmp_path / "out"
    OutputFolder(out).write(images[:3])
    before = (out / "manifest.json").read_bytes()
    entries = OutputFolder(out).write(images)
    after = (out / "manifest.json").read_bytes()
    assert after.startswith(before.rstrip(b"\n]"))
    assert json.loads(after) == entries and len(entries) == 4
    OutputFolder(out).write(images)  # nothing new: not written at all
    assert (out / "manifest.json").read_bytes() == after


@pytest.mark.asyncio
async def test_output_folder_keeps_the_whole_entries_of_a_manifest_cut_short(
    tmp_path: Path,
) -> None:
    images = await _gallery_images(tmp_path, 3)
    out = tmp_path / "out"
    OutputFolder(out).write(images[:2])
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text[: text.rfind("]")] + ',\n  {\n    "image_id": "x')
    folder = OutputFolder(out)
    entries = folder.write(images)
    assert [e["image_id"] for e in entries] == [i.image_id for i in images]
    assert json.loads((out / "manifest.json").read_text()) == entries
    assert folder.warnings and "cut short" in folder.warnings[0]
