"""Adapters layer: image stores (implement ``domain.ports.ImageStore``) and thumbnails.

- ``GalleryImageStore``: the app's gallery. Each image is ``<image_id>.<ext>`` plus an
  ``<image_id>.json`` sidecar (a ``GeneratedImage``), both written atomically, image first (the
  sidecar is the commit marker).
- ``OutputFolder``: ``pod-studio generate --out DIR``: copies of a batch's finished images
  under readable names and their ``manifest.json``, a view written once per run.

Bytes from ComfyUI are untrusted: they are verified with Pillow (with a pixel limit) before
anything is written, and local file names never derive from the server's file names.
Decoding, hashing and writing run in worker threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import re
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
from PIL import Image, UnidentifiedImageError

from pod_studio.adapters.storage.atomic import atomic_write_bytes, atomic_write_text, move_aside
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.models import (
    MAX_PROMPT_CHARS,
    GeneratedImage,
    ImageRef,
    JobSpec,
    ListingCopy,
)

log = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 40_000_000
# An imported design must also fit as a print file (services.publishing.MAX_PRINT_FILE_BYTES).
MAX_IMPORT_BYTES = 200 * 1024 * 1024
IMPORT_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
FORMAT_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MANIFEST_NAME = "manifest.json"
_IMAGE_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ImageFacts:
    format: str
    extension: str
    width: int
    height: int
    sha256: str


def inspect_image(data: bytes) -> ImageFacts:
    """Verify that ``data`` is a whole PNG/JPEG/WebP image of sane size. Blocking (CPU)."""
    if not data:
        raise ValidationError("empty image data", service="images")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or ""
            width, height = im.size
            if fmt not in FORMAT_EXTENSIONS:
                raise ValidationError(
                    f"unsupported image format {fmt or 'unknown'}", service="images"
                )
            # Checked on the header, before any pixel is decoded.
            if width * height > MAX_IMAGE_PIXELS:
                raise ValidationError(f"image too large ({width}x{height})", service="images")
            im.verify()
        # verify() checks the structure; decoding catches truncated pixel data.
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except ValidationError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow refused it from the header
        raise ValidationError(
            f"image too large (a decompression bomb: {exc})", service="images"
        ) from exc
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        raise ValidationError(
            f"not a readable image ({type(exc).__name__}: {exc})", service="images"
        ) from exc
    return ImageFacts(
        format=fmt,
        extension=FORMAT_EXTENSIONS[fmt],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_thumbnail(
    path: Path | str,
    size: int = 256,
    *,
    cache_dir: Path | str | None = None,
    sha256: str | None = None,
) -> bytes:
    """PNG bytes of a thumbnail that fits ``size``×``size``. Blocking: run it in a thread.

    With ``cache_dir``, thumbnails are cached as ``<sha256>-<size>.png`` (the source's hash,
    computed if not given) and reused.
    """
    src = Path(path)
    cached: Path | None = None
    if cache_dir is not None:
        digest = sha256 or _sha256_file(src)
        cached = Path(cache_dir) / f"{digest}-{int(size)}.png"
        try:
            return cached.read_bytes()
        except FileNotFoundError:
            pass
    try:
        with Image.open(src) as opened:
            opened.draft("RGB", (size, size))
            opened.thumbnail((size, size), reducing_gap=2.0)
            im: Image.Image = opened
            if im.mode not in ("RGB", "RGBA"):
                im = im.convert("RGBA")
            out = io.BytesIO()
            im.save(out, "PNG")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValidationError(
            f"cannot make a thumbnail of {src.name}: {exc}", service="images"
        ) from exc
    data = out.getvalue()
    if cached is not None:
        atomic_write_bytes(cached, data, fsync=False)
    return data


class GalleryImageStore:
    """The gallery: ``<image_id>.<ext>`` + ``<image_id>.json`` in ``images_dir``, indexed in
    ``images_dir/library.sqlite3``.

    The JSON sidecars are the record (portable, readable); the SQLite index lets the window
    list 10,000 designs without opening 10,000 files, and adding a design costs one row. A
    missing or corrupt index is rebuilt from the sidecars (a corrupt one is moved aside).
    """

    INDEX_NAME = "library.sqlite3"

    def __init__(self, images_dir: Path | str, *, thumbnails_dir: Path | str | None = None) -> None:
        self.images_dir = Path(images_dir)
        self.thumbnails_dir = Path(thumbnails_dir) if thumbnails_dir else None
        self._lock = asyncio.Lock()
        self._index_ready = False

    # --- the index (blocking: called from worker threads) ----------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.images_dir.mkdir(parents=True, exist_ok=True)
        path = self.images_dir / self.INDEX_NAME
        db = sqlite3.connect(path, timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS image (id TEXT PRIMARY KEY, created_at TEXT NOT "
                "NULL, record TEXT NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS image_created ON image(created_at)")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        except sqlite3.DatabaseError:
            db.close()
            move_aside(path, "unreadable design index")
            log.warning("the design index was unreadable; rebuilding it from the records")
            return self._connect()
        if not self._index_ready:
            built = db.execute("SELECT value FROM meta WHERE key='built'").fetchone()
            if built is None:
                self._rebuild(db)
            self._index_ready = True
        return db

    def _rebuild(self, db: sqlite3.Connection) -> None:
        rows = [
            (img.image_id, img.created_at.isoformat(), img.model_dump_json())
            for sidecar in self.images_dir.glob("*.json")
            if _IMAGE_ID_RE.match(sidecar.stem)
            if (img := self._read_sidecar(sidecar)) is not None
        ]
        with db:
            db.execute("DELETE FROM image")
            db.executemany("INSERT OR REPLACE INTO image VALUES (?, ?, ?)", rows)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('built', '1')")

    def _index_put(self, image: GeneratedImage) -> None:
        db = self._connect()
        try:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO image VALUES (?, ?, ?)",
                    (image.image_id, image.created_at.isoformat(), image.model_dump_json()),
                )
        finally:
            db.close()

    def _sidecar(self, image_id: str) -> Path:
        if not _IMAGE_ID_RE.match(image_id):
            raise ValidationError(f"invalid image id {image_id!r}", service="images")
        return self.images_dir / f"{image_id}.json"

    async def save(
        self,
        job: JobSpec,
        data: bytes,
        *,
        ref: ImageRef,
        server: str,
        prompt_id: str,
        seconds: float,
    ) -> GeneratedImage:
        del ref  # the server's file name is untrusted and never used locally
        return await asyncio.to_thread(self._save_sync, job, data, server, prompt_id, seconds)

    def _save_sync(
        self, job: JobSpec, data: bytes, server: str, prompt_id: str, seconds: float
    ) -> GeneratedImage:
        facts = inspect_image(data)
        image_id = uuid.uuid4().hex
        path = self.images_dir / f"{image_id}.{facts.extension}"
        image = GeneratedImage(
            image_id=image_id,
            job_id=job.job_id,
            prompt=job.prompt,
            negative=job.negative,
            seed=job.seed,
            width=facts.width,
            height=facts.height,
            file=str(path.resolve()),
            sha256=facts.sha256,
            server=server,
            prompt_id=prompt_id,
            seconds=seconds,
        )
        atomic_write_bytes(path, data)
        atomic_write_text(self._sidecar(image_id), image.model_dump_json(indent=2))
        self._index_put(image)
        return image

    async def import_file(self, path: str, *, prompt: str) -> GeneratedImage:
        """Add a PNG/JPEG/WebP file from this machine as a design (``prompt`` names it; no
        seed, no server). The file is checked like an image from ComfyUI (format, pixel
        limit, whole pixel data) and copied; the original is left where it is. Raises a
        ``ValidationError`` naming the problem."""
        return await asyncio.to_thread(self._import_sync, Path(path), prompt)

    def _import_sync(self, path: Path, prompt: str) -> GeneratedImage:
        if path.suffix.lower() not in IMPORT_SUFFIXES:
            raise ValidationError("not a PNG, JPEG or WebP image", service="images")
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise ValidationError("not a file", service="images")
            if size > MAX_IMPORT_BYTES:
                raise ValidationError(
                    f"too large ({_size(size)}; the limit is {_size(MAX_IMPORT_BYTES)})",
                    service="images",
                )
            with open(path, "rb") as fh:
                data = fh.read(MAX_IMPORT_BYTES + 1)
        except OSError as exc:
            raise ValidationError(
                f"cannot be read ({exc.strerror or type(exc).__name__})", service="images"
            ) from exc
        try:
            facts = inspect_image(data)
        except ValidationError as exc:
            raise ValidationError(
                exc.message, service="images", user_message=_import_problem(exc.message)
            ) from exc
        image_id = uuid.uuid4().hex
        target = self.images_dir / f"{image_id}.{facts.extension}"
        image = GeneratedImage(
            image_id=image_id,
            job_id="",
            prompt=prompt.strip()[:MAX_PROMPT_CHARS] or "imported design",
            seed=0,
            width=facts.width,
            height=facts.height,
            file=str(target.resolve()),
            sha256=facts.sha256,
            server="",
            prompt_id="",
            seconds=0.0,
        )
        self.images_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        atomic_write_text(self._sidecar(image_id), image.model_dump_json(indent=2))
        self._index_put(image)
        return image

    async def list_images(self) -> list[GeneratedImage]:
        return await asyncio.to_thread(self._list_sync)

    async def get_many(self, image_ids: list[str]) -> list[GeneratedImage]:
        """The images with these ids, in that order (unknown ids are left out)."""

        def read() -> list[GeneratedImage]:
            found = (self._read_sidecar(self._sidecar(i)) for i in image_ids)
            return [image for image in found if image is not None]

        return await asyncio.to_thread(read)

    def _read_sidecar(self, sidecar: Path) -> GeneratedImage | None:
        try:
            image = GeneratedImage.model_validate_json(sidecar.read_bytes())
        except (OSError, pydantic.ValidationError, ValueError) as exc:
            log.warning("skipping unreadable image record %s: %s", sidecar.name, exc)
            return None
        file = Path(image.file)
        if not file.exists():
            local = self.images_dir / file.name
            if not local.exists():
                log.warning("skipping %s: its image file %s is missing", sidecar.name, file.name)
                return None
            image = image.model_copy(update={"file": str(local.resolve())})
        return self._located_print_file(image)

    def _located_print_file(self, image: GeneratedImage) -> GeneratedImage:
        """The record with its print file found beside it (a moved folder), or without one
        when the file is gone (the design prints from its own file again)."""
        if not image.print_file or Path(image.print_file).exists():
            return image
        local = self.images_dir / Path(image.print_file).name
        if local.exists():
            return image.model_copy(update={"print_file": str(local.resolve())})
        log.warning("design %s: its print file is missing; printing the design", image.image_id)
        return image.model_copy(
            update={"print_file": None, "print_width": None, "print_height": None}
        )

    def _list_sync(self) -> list[GeneratedImage]:
        if not self.images_dir.is_dir():
            return []
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT record FROM image ORDER BY created_at DESC, id DESC"
            ).fetchall()
        finally:
            db.close()
        images = []
        for (record,) in rows:
            try:
                image = GeneratedImage.model_validate_json(record)
            except (pydantic.ValidationError, ValueError):
                continue
            if not Path(image.file).exists():
                local = self.images_dir / Path(image.file).name
                if not local.exists():
                    log.warning("skipping design %s: its image file is missing", image.image_id)
                    continue
                image = image.model_copy(update={"file": str(local.resolve())})
            images.append(self._located_print_file(image))
        return images

    async def set_approved(self, image_id: str, approved: bool | None) -> GeneratedImage:
        async with self._lock:
            return await asyncio.to_thread(self._approve_sync, image_id, approved)

    async def set_listing(self, image_id: str, listing: ListingCopy | None) -> GeneratedImage:
        """Keep the seller's words for the design's listings (``None`` or empty: from the
        prompt again)."""
        value = None if listing is None or listing.is_empty else listing
        async with self._lock:
            return await asyncio.to_thread(self._update_sync, image_id, {"listing": value})

    def _approve_sync(self, image_id: str, approved: bool | None) -> GeneratedImage:
        return self._update_sync(image_id, {"approved": approved})

    def _update_sync(self, image_id: str, update: dict[str, Any]) -> GeneratedImage:
        sidecar = self._sidecar(image_id)
        if not sidecar.exists():
            raise ValidationError(f"no image {image_id}", service="images")
        image = self._read_sidecar(sidecar)
        if image is None:
            raise ValidationError(f"the record of image {image_id} is unreadable", service="images")
        image = image.model_copy(update=update)
        atomic_write_text(sidecar, image.model_dump_json(indent=2))
        self._index_put(image)
        return image

    async def set_print_file(self, image_id: str, data: bytes) -> GeneratedImage:
        """Keep ``data`` (verified PNG/JPEG/WebP bytes, written as they are: no DPI tag is
        added) as the design's print file ``<image_id>.print-<hash>.<ext>`` beside it; the
        design keeps its id, file and hash. A previous print file is removed."""
        async with self._lock:
            return await asyncio.to_thread(self._print_file_sync, image_id, data)

    def _print_file_sync(self, image_id: str, data: bytes) -> GeneratedImage:
        sidecar = self._sidecar(image_id)
        image = self._read_sidecar(sidecar) if sidecar.exists() else None
        if image is None:
            raise ValidationError(f"no image {image_id}", service="images")
        facts = inspect_image(data)
        path = self.images_dir / f"{image_id}.print-{facts.sha256[:12]}.{facts.extension}"
        atomic_write_bytes(path, data)
        old = image.print_file
        updated = self._update_sync(
            image_id,
            {
                "print_file": str(path.resolve()),
                "print_width": facts.width,
                "print_height": facts.height,
            },
        )
        if old and Path(old).resolve() != path.resolve():
            try:
                Path(old).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove the old print file %s: %s", Path(old).name, exc)
        return updated

    TRASH_NAME = "trash"

    async def move_to_trash(self, image_id: str) -> None:
        """Move a design (image file and record) into ``images_dir/trash`` and drop it from
        the index; the seller can still get it back by hand from that folder."""
        async with self._lock:
            await asyncio.to_thread(self._trash_sync, image_id)

    def _trash_sync(self, image_id: str) -> None:
        sidecar = self._sidecar(image_id)
        image = self._read_sidecar(sidecar) if sidecar.exists() else None
        trash = self.images_dir / self.TRASH_NAME
        trash.mkdir(parents=True, exist_ok=True)
        if image is not None:
            for name in (image.file, image.print_file):
                file = Path(name) if name else None
                if file is not None and file.exists():
                    file.replace(trash / file.name)
        if sidecar.exists():
            sidecar.replace(trash / sidecar.name)
        db = self._connect()
        try:
            with db:
                db.execute("DELETE FROM image WHERE id = ?", (image_id,))
        finally:
            db.close()

    async def thumbnail(self, image: GeneratedImage, size: int = 256) -> bytes:
        """PNG thumbnail bytes (cached by sha256 when a thumbnails dir is set)."""
        return await asyncio.to_thread(
            make_thumbnail,
            image.file,
            size,
            cache_dir=self.thumbnails_dir,
            sha256=image.sha256,
        )


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{max(1, round(n / 1024))} KB"


def _import_problem(message: str) -> str:
    """What ``inspect_image`` refused, in the seller's words."""
    if message.startswith("image too large"):
        return f"too many pixels (the limit is {MAX_IMAGE_PIXELS / 1e6:g} megapixels)"
    if message.startswith("unsupported image format"):
        return message.replace("unsupported image format", "not a PNG, JPEG or WebP image:")
    if message == "empty image data":
        return "the file is empty"
    return "damaged or not an image (it cannot be decoded)"


def _safe_part(text: str, limit: int = 40) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")
    return cleaned[:limit].strip("-_") or "image"


class OutputFolder:
    """A headless run's output folder: copies of its finished images under readable names,
    listed in ``out_dir/manifest.json``.

    It is a view of the job ledger, not a store: ``pod-studio generate`` writes it once per
    run from the batch's finished jobs. Entries already listed are kept (so a run killed and
    started again adds only what is new, never a second copy of an image), and new entries
    are appended in place before the closing ``]`` (a folder of 10,000 images is not
    rewritten for one more); a manifest cut short by a crash keeps its whole entries, a
    corrupt one is moved aside. Each entry: ``prompt, seed, file, width, height, sha256, server,
    prompt_id, seconds`` plus ``image_id, job_id, negative, created_at, approved``.
    """

    def __init__(self, out_dir: Path | str) -> None:
        self.out_dir = Path(out_dir)
        self.manifest_path = self.out_dir / MANIFEST_NAME
        self.warnings: list[str] = []
        self._append_ok = True

    def check(self) -> None:
        """Make sure the folder can be written before any work starts: it is a folder (made
        when missing), writable, and its manifest is not a link to somewhere else (nothing is
        written through a link out of the folder). Raises ``ValidationError`` naming the
        problem."""
        where = str(self.out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ValidationError(
                f"output path is not a folder: {where}",
                service="cli",
                user_message=f"--out {where} is a file, not a folder: name a folder (it is "
                "made when missing)",
            )
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValidationError(
                f"cannot make output folder {where}: {exc.strerror}",
                service="cli",
                user_message=f"--out {where} cannot be made: {exc.strerror}",
            ) from None
        if not os.access(self.out_dir, os.W_OK | os.X_OK):
            raise ValidationError(
                f"output folder not writable: {where}",
                service="cli",
                user_message=f"--out {where} is not writable: choose a folder you can write to",
            )
        if self.manifest_path.is_symlink():
            raise ValidationError(
                f"{MANIFEST_NAME} in {where} is a link",
                service="cli",
                user_message=f"{self.manifest_path} is a link to another place; POD Studio "
                "writes nothing through a link out of --out. Remove the link or choose "
                "another folder.",
            )

    def _load(self) -> list[dict[str, Any]]:
        if not self.manifest_path.exists():
            return []
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
            try:
                data = json.loads(text)
            except ValueError:
                data = _whole_entries(text)  # an append cut short
                if data is None:
                    raise
                self._append_ok = False  # written whole again, without the torn tail
                self.warnings.append(
                    f"{MANIFEST_NAME} was cut short; its {len(data)} whole entries are kept"
                )
            if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
                raise ValueError("not a list of entries")
        except (OSError, ValueError) as exc:
            backup = move_aside(self.manifest_path, f"unreadable manifest: {exc}")
            self.warnings.append(f"{MANIFEST_NAME} was unreadable; kept as {backup.name}")
            return []
        return list(data)

    def _target(self, stem: str, ext: str, taken: set[str], sha256: str) -> tuple[Path, bool]:
        """(path, already there): a free name, or an unlisted file that holds these very
        bytes (copied by a run that stopped before writing the manifest)."""
        name = f"{stem}.{ext}"
        n = 1
        while True:
            if name not in taken:
                path = self.out_dir / name
                if path.is_symlink():
                    pass  # never written or read through: the name is taken
                elif not path.exists():
                    return path, False
                elif path.is_file() and _sha256_file(path) == sha256:
                    return path, True
            name = f"{stem}-{n}.{ext}"
            n += 1

    @staticmethod
    def _entry(image: GeneratedImage, file_name: str) -> dict[str, Any]:
        return {
            "image_id": image.image_id,
            "job_id": image.job_id,
            "prompt": image.prompt,
            "negative": image.negative,
            "seed": image.seed,
            "file": file_name,
            "width": image.width,
            "height": image.height,
            "sha256": image.sha256,
            "server": image.server,
            "prompt_id": image.prompt_id,
            "seconds": image.seconds,
            "created_at": image.created_at.isoformat(),
            "approved": image.approved,
        }

    def write(self, images: list[GeneratedImage]) -> list[dict[str, Any]]:
        """Copy the images not listed yet and write the manifest once (blocking: run it in a
        worker thread). Returns the manifest's entries."""
        self.check()
        self._append_ok = True
        entries = self._load()
        known = len(entries)
        listed = {str(e.get("image_id")) for e in entries}
        taken = {str(e.get("file")) for e in entries}
        for image in images:
            if image.image_id in listed:
                continue
            source = Path(image.file)
            ext = source.suffix.lstrip(".") or "png"
            stem = f"{_safe_part(image.prompt)}-{image.seed}"
            path, present = self._target(stem, ext, taken, image.sha256)
            if not present:
                atomic_write_bytes(path, source.read_bytes())
            entries.append(self._entry(image, path.name))
            listed.add(image.image_id)
            taken.add(path.name)
        new = entries[known:]
        if known and self._append_ok and self.manifest_path.exists():
            if new:
                self._append(new)
        elif new or not self.manifest_path.exists() or not self._append_ok:
            atomic_write_text(self.manifest_path, json.dumps(entries, indent=2) + "\n")
        return entries

    def _append(self, new: list[dict[str, Any]]) -> None:
        """Write ``new`` before the manifest's closing ``]`` (in place, fsynced); the file
        stays a JSON list. A failed write puts the ``]`` back."""
        body = json.dumps(new, indent=2)[1:-1].strip("\n")  # the entries, indented by 2
        # O_NOFOLLOW: a link planted after the check is refused by the OS, not followed
        flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(self.manifest_path, flags), "r+b") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - 64))
            tail = fh.read()
            close = tail.rfind(b"]")
            if close < 0:
                raise ValueError(f"{MANIFEST_NAME} does not end a list")
            end = size - len(tail) + len(tail[:close].rstrip())
            fh.seek(end)
            try:
                fh.write(b",\n" + body.encode("utf-8") + b"\n]\n")
                fh.truncate()
                fh.flush()
                os.fsync(fh.fileno())
            except OSError:
                fh.seek(end)
                fh.write(b"\n]\n")
                fh.truncate()
                raise


def _whole_entries(text: str) -> list[Any] | None:
    """The entries of a manifest whose last append was cut short, or None."""
    at = len(text)
    for _ in range(64):
        at = text.rfind("\n  }", 0, at)
        if at < 0:
            return None
        try:
            data = json.loads(text[: at + 4] + "\n]")
        except ValueError:
            continue
        return data if isinstance(data, list) else None
    return None
