"""App layer: GalleryController — lists, thumbnails, approves and regenerates the designs.

Every file read, decode and print preflight runs in a worker thread (``asyncio.to_thread``);
workers return values only. Widgets turn the bytes into ``QImage``/``QPixmap`` in the GUI
thread. New images arrive live from the bridge's ``sig_image_ready``; the publish state of
each design (per platform) from the publish events, and after a restart from the queue.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from PySide6.QtCore import QObject, Signal, Slot

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.context import ListTemplates, Preflight
from pod_studio.app.publishing import PublishStatusBook
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import user_message
from pod_studio.domain.events import ImageReady, PublishStepChanged
from pod_studio.domain.models import GeneratedImage, ListingCopy
from pod_studio.domain.orchestration import PublishJobChanged
from pod_studio.domain.ports import ImageStore

if TYPE_CHECKING:
    from pod_studio.services.orchestrator import Orchestrator

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 256
_THUMB_CACHE = 2000
_THUMB_WORKERS = 4


IMPORT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@runtime_checkable
class DesignImporter(Protocol):
    """A store that takes image files from this machine as designs (the gallery does)."""

    async def import_file(self, path: str, *, prompt: str) -> GeneratedImage: ...


@dataclass(frozen=True)
class ImportResult:
    """What one drop of files did: the designs added and ``(file name, reason)`` per file
    skipped."""

    imported: list[GeneratedImage]
    skipped: list[tuple[str, str]]

    def text(self) -> str:
        """ "2 designs imported — To review; 1 file skipped: notes.txt (not a PNG, JPEG or
        WebP image)" """
        n = len(self.imported)
        parts = [f"{n} design{'s' if n != 1 else ''} imported — To review"] if n else []
        if self.skipped:
            k = len(self.skipped)
            reasons = "; ".join(f"{name} ({why})" for name, why in self.skipped[:5])
            more = f"; and {k - 5} more" if k > 5 else ""
            parts.append(f"{k} file{'s' if k != 1 else ''} skipped: {reasons}{more}")
        return "; ".join(parts) or "nothing to import"


def pillow_thumbnail(image: GeneratedImage, side: int = THUMBNAIL_SIDE) -> bytes:
    """A PNG thumbnail (longest side ``side``) of ``image.file``. Blocking: run in a thread."""
    from PIL import Image

    with Image.open(image.file) as opened:
        opened.thumbnail((side, side))
        thumb = opened if opened.mode in ("RGB", "RGBA") else opened.convert("RGBA")
        out = io.BytesIO()
        thumb.save(out, format="PNG")
        return out.getvalue()


class GalleryController(QObject):
    """Signals:
    sig_images_loaded(list[GeneratedImage]): the whole gallery, newest first.
    sig_image_added(GeneratedImage): a new image (live, from ``ImageReady``).
    sig_image_updated(GeneratedImage): e.g. after approve/reject.
    sig_thumbnail_ready(str image_id, bytes png)
    sig_full_image_loaded(str image_id, bytes data)
    sig_load_failed(str message)
    sig_badge_ready(str image_id, str badge, list reasons): print preflight ("pass", "warn",
        "fail"; reasons name the template checked).
    sig_publish_status_changed(str image_id, dict platform_to_text)
    sig_regenerated(str image_id, list job_ids)
    sig_import_finished(ImportResult): dropped files were imported (each new design also
        comes as ``sig_image_added``) or skipped with their reasons.
    """

    sig_images_loaded = Signal(list)
    sig_image_added = Signal(object)
    sig_image_updated = Signal(object)
    sig_thumbnail_ready = Signal(str, bytes)
    sig_full_image_loaded = Signal(str, bytes)
    sig_load_failed = Signal(str)
    sig_badge_ready = Signal(str, str, list)
    sig_publish_status_changed = Signal(str, dict)
    sig_regenerated = Signal(str, list)
    sig_import_finished = Signal(object)

    def __init__(
        self,
        runner: TaskRunner,
        store: ImageStore,
        thumbnailer: Callable[[GeneratedImage], bytes] | None = None,
        *,
        bridge: QtEventBridge | None = None,
        preflight: Preflight | None = None,
        list_templates: ListTemplates | None = None,
        regenerate: Callable[[GeneratedImage], list[str]] | None = None,
        orchestrator: Orchestrator | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.store = store
        self._thumbnailer = thumbnailer or pillow_thumbnail
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()
        self._pending_thumbs: set[str] = set()
        self._images: dict[str, GeneratedImage] = {}
        self._limit: asyncio.Semaphore | None = None
        self._preflight = preflight
        self._list_templates = list_templates
        self._regenerate = regenerate
        self._orch = orchestrator
        self._badges: dict[str, tuple[str, list[str]]] = {}
        self._pending_badges: set[str] = set()
        self.publish_book = PublishStatusBook()
        if bridge is not None:
            bridge.sig_image_ready.connect(self._on_bridge_image_ready)
            bridge.sig_publish_job_changed.connect(self._on_bridge_publish_job_changed)
            bridge.sig_publish_step_changed.connect(self._on_bridge_publish_step_changed)

    @property
    def can_regenerate(self) -> bool:
        return self._regenerate is not None

    @property
    def can_preflight(self) -> bool:
        return self._preflight is not None

    def images(self) -> list[GeneratedImage]:
        return sorted(self._images.values(), key=lambda i: i.created_at, reverse=True)

    def refresh(self) -> None:
        """Reload the image list from the store (``sig_images_loaded``)."""
        self.runner.spawn(self._refresh(), name="gallery-refresh")

    async def _refresh(self) -> None:
        try:
            images = await self.store.list_images()
        except Exception as exc:  # noqa: BLE001 - shown in the gallery, not a crash
            log.warning("could not list images: %s", exc)
            self.sig_load_failed.emit(user_message(exc))
            return
        self._images = {i.image_id: i for i in images}
        self.sig_images_loaded.emit(self.images())
        if self._orch is not None:
            await self._load_publish_states(self._orch)

    async def _load_publish_states(self, orch: Orchestrator) -> None:
        try:
            snapshot = await orch.snapshot()
        except Exception as exc:  # noqa: BLE001 - the cards just show no publish state
            log.warning("could not read publish states: %s", exc)
            return
        for design_id in self.publish_book.load_entries(snapshot.entries):
            self.sig_publish_status_changed.emit(design_id, self.publish_book.lines(design_id))

    def publish_status(self, image_id: str) -> dict[str, str]:
        return self.publish_book.lines(image_id)

    @Slot(object)
    def _on_bridge_publish_job_changed(self, event: PublishJobChanged) -> None:
        design_id = self.publish_book.apply_job(event)
        self.sig_publish_status_changed.emit(design_id, self.publish_book.lines(design_id))

    @Slot(object)
    def _on_bridge_publish_step_changed(self, event: PublishStepChanged) -> None:
        design_id = self.publish_book.apply_step(event)
        self.sig_publish_status_changed.emit(design_id, self.publish_book.lines(design_id))

    # -- import -------------------------------------------------------------------------

    @property
    def can_import(self) -> bool:
        return isinstance(self.store, DesignImporter)

    def import_files(self, paths: Sequence[str]) -> bool:
        """Add image files as designs to review, one after the other off the GUI thread
        (``sig_image_added`` each, then ``sig_import_finished``). False if nothing to do."""
        files = [str(p) for p in paths]
        if not files:
            return False
        if not isinstance(self.store, DesignImporter):
            self.sig_import_finished.emit(
                ImportResult([], [(Path(f).name, "importing is not available") for f in files])
            )
            return False
        self.runner.spawn(self._import_files(self.store, files), name="gallery-import")
        return True

    async def _import_files(self, store: DesignImporter, files: list[str]) -> None:
        imported: list[GeneratedImage] = []
        skipped: list[tuple[str, str]] = []
        for file in files:
            path = Path(file)
            if path.suffix.lower() not in IMPORT_SUFFIXES:
                skipped.append((path.name, "not a PNG, JPEG or WebP image"))
                continue
            try:
                image = await store.import_file(str(path), prompt=path.stem)
            except Exception as exc:  # noqa: BLE001 - the file is skipped, with its reason
                log.info("not imported: %s: %s", path.name, exc)
                skipped.append((path.name, user_message(exc)))
                continue
            imported.append(image)
            self._images[image.image_id] = image
            self.sig_image_added.emit(image)
        self.sig_import_finished.emit(ImportResult(imported, skipped))

    # -- regenerate ---------------------------------------------------------------------

    def regenerate(self, images: list[GeneratedImage]) -> list[str]:
        """Generate each design's prompt again with a new seed; returns the new job ids."""
        if self._regenerate is None:
            self.sig_load_failed.emit("regenerating is not available")
            return []
        ids: list[str] = []
        for image in images:
            new = self._regenerate(image)
            ids.extend(new)
            if new:
                self.sig_regenerated.emit(image.image_id, new)
        return ids

    # -- print preflight ----------------------------------------------------------------

    def cached_badge(self, image_id: str) -> tuple[str, list[str]] | None:
        return self._badges.get(image_id)

    def _badge_template(self) -> str | None:
        if self._list_templates is None:
            return None
        try:
            templates = self._list_templates()
        except Exception as exc:  # noqa: BLE001 - no badge rather than no gallery
            log.info("no templates for the preflight badge: %s", exc)
            return None
        return templates[0].name if templates else None

    def load_badge(self, image: GeneratedImage) -> bool:
        """Check ``image`` as a print file off the GUI thread (``sig_badge_ready``)."""
        if self._preflight is None:
            return False
        cached = self._badges.get(image.image_id)
        if cached is not None:
            self.sig_badge_ready.emit(image.image_id, cached[0], list(cached[1]))
            return True
        if image.image_id in self._pending_badges:
            return True
        template = self._badge_template()
        if template is None:
            return False
        self._pending_badges.add(image.image_id)
        self.runner.spawn(
            self._load_badge(self._preflight, image, template),
            name=f"preflight-{image.image_id[:8]}",
        )
        return True

    async def _load_badge(self, check: Preflight, image: GeneratedImage, template: str) -> None:
        if self._limit is None:
            self._limit = asyncio.Semaphore(_THUMB_WORKERS)
        try:
            async with self._limit:
                badge, reasons = await asyncio.to_thread(check, image, template)
        except Exception as exc:  # noqa: BLE001 - an unreadable file gets a failing badge
            log.info("preflight of %s failed: %s", image.file, exc)
            badge, reasons = "fail", [f"cannot check the file: {user_message(exc)}"]
        finally:
            self._pending_badges.discard(image.image_id)
        reasons = [f"{template}: {r}" for r in reasons] or [f"{template}: ready to print"]
        self._badges[image.image_id] = (str(badge), reasons)
        self.sig_badge_ready.emit(image.image_id, str(badge), reasons)

    @Slot(object)
    def _on_bridge_image_ready(self, event: ImageReady) -> None:
        image = event.image
        known = image.image_id in self._images
        self._images[image.image_id] = image
        if known:
            self.sig_image_updated.emit(image)
        else:
            self.sig_image_added.emit(image)

    def cached_thumbnail(self, image_id: str) -> bytes | None:
        return self._thumbs.get(image_id)

    def load_thumbnail(self, image: GeneratedImage) -> None:
        """Make (or reuse) the thumbnail of ``image`` (``sig_thumbnail_ready``)."""
        cached = self._thumbs.get(image.image_id)
        if cached is not None:
            self.sig_thumbnail_ready.emit(image.image_id, cached)
            return
        if image.image_id in self._pending_thumbs:
            return
        self._pending_thumbs.add(image.image_id)
        self.runner.spawn(self._load_thumbnail(image), name=f"thumb-{image.image_id[:8]}")

    async def _load_thumbnail(self, image: GeneratedImage) -> None:
        if self._limit is None:
            self._limit = asyncio.Semaphore(_THUMB_WORKERS)
        try:
            async with self._limit:
                data = await asyncio.to_thread(self._thumbnailer, image)
        except Exception as exc:  # noqa: BLE001 - a broken file shows a placeholder
            log.warning("no thumbnail for %s: %s", image.file, exc)
            self.sig_load_failed.emit(f"cannot read {Path(image.file).name}: {exc}")
            return
        finally:
            self._pending_thumbs.discard(image.image_id)
        self._thumbs[image.image_id] = data
        while len(self._thumbs) > _THUMB_CACHE:
            self._thumbs.popitem(last=False)
        self.sig_thumbnail_ready.emit(image.image_id, data)

    def load_full(self, image: GeneratedImage) -> None:
        """Read the full image file (``sig_full_image_loaded``)."""
        self.runner.spawn(self._load_full(image), name=f"image-{image.image_id[:8]}")

    async def _load_full(self, image: GeneratedImage) -> None:
        try:
            data = await asyncio.to_thread(Path(image.file).read_bytes)
        except OSError as exc:
            self.sig_load_failed.emit(f"cannot read {image.file}: {exc.strerror or exc}")
            return
        self.sig_full_image_loaded.emit(image.image_id, data)

    def set_approved(self, image_ids: str | Sequence[str], approved: bool | None) -> None:
        """Approve (True), reject (False) or clear (None) designs, all in one task: each
        ``sig_image_updated`` comes after every one of them is stored, so the window never
        sees a half-approved selection (Publish would get only the designs that landed)."""
        ids = [image_ids] if isinstance(image_ids, str) else list(image_ids)
        if not ids:
            return
        self.runner.spawn(self._set_approved(ids, approved), name=f"approve-{ids[0][:8]}")

    async def _set_approved(self, image_ids: list[str], approved: bool | None) -> None:
        updated: list[GeneratedImage] = []
        problem = ""
        for image_id in image_ids:
            try:
                updated.append(await self.store.set_approved(image_id, approved))
            except Exception as exc:  # noqa: BLE001 - reported to the seller
                problem = problem or user_message(exc)
        for image in updated:
            self._images[image.image_id] = image
        for image in updated:
            self.sig_image_updated.emit(image)
        if problem:
            self.sig_load_failed.emit(problem)

    @Slot(object)
    def apply_updated(self, image: GeneratedImage) -> None:
        """A design changed elsewhere (an upscaled print file): keep the new record, judge
        its print quality again (``sig_image_updated``)."""
        self._images[image.image_id] = image
        self._badges.pop(image.image_id, None)
        self.sig_image_updated.emit(image)

    def set_listing(self, image_id: str, listing: ListingCopy | None) -> None:
        """Store the seller's words for a design's listings (``sig_image_updated``)."""
        self.runner.spawn(self._set_listing(image_id, listing), name=f"listing-{image_id[:8]}")

    async def _set_listing(self, image_id: str, listing: ListingCopy | None) -> None:
        try:
            image = await self.store.set_listing(image_id, listing)
        except Exception as exc:  # noqa: BLE001 - reported to the seller
            self.sig_load_failed.emit(user_message(exc))
            return
        self._images[image.image_id] = image
        self.sig_image_updated.emit(image)
