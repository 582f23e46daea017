"""App layer: GalleryController — lists, thumbnails, approves and regenerates the designs.

Every file read, decode and print preflight runs in a worker thread (``asyncio.to_thread``);
workers return values only (bytes, or a ``QImage`` fitted to the grid's cards: ``QImage`` is
not tied to the GUI thread). Widgets make the ``QPixmap`` in the GUI thread. Thumbnails and
print badges are made for the designs the grid shows (``want_thumbnails``, ``want_badges``),
a few at a time, latest request first. New images arrive live from the bridge's
``sig_image_ready``; the publish state of each design (per platform) from the publish events,
and after a restart from the queue.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from PySide6.QtCore import QObject, QSize, Qt, Signal, Slot
from PySide6.QtGui import QImage

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
_THUMB_CACHE_BYTES = 48 * 2**20  # the PNG bytes of recent thumbnails, for the viewer and cards
_THUMB_WORKERS = 2  # a worker thread competes with the GUI thread for the GIL


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


class LatestFirst:
    """Blocking work per design, a few at a time in worker threads, for the designs the
    window shows now: ``want(images)`` replaces what is still waiting (a design scrolled past
    is never worked on), and what is in flight finishes. ``on_done(image, result)`` and
    ``on_error(image, exc)`` run on the loop's thread."""

    def __init__(
        self,
        runner: TaskRunner,
        work: Callable[[GeneratedImage], object],
        on_done: Callable[[GeneratedImage, object], None],
        on_error: Callable[[GeneratedImage, Exception], None],
        *,
        name: str,
        workers: int = _THUMB_WORKERS,
    ) -> None:
        self._runner = runner
        self._work = work
        self._on_done = on_done
        self._on_error = on_error
        self._name = name
        self._workers = workers
        self._running = 0
        self._waiting: OrderedDict[str, GeneratedImage] = OrderedDict()
        self.in_flight: set[str] = set()

    def want(self, images: Sequence[GeneratedImage], *, replace: bool = True) -> None:
        """Work on ``images`` next, in this order; ``replace=False`` adds them in front of
        what already waits."""
        fresh = OrderedDict((i.image_id, i) for i in images if i.image_id not in self.in_flight)
        if not replace:
            fresh.update((k, v) for k, v in self._waiting.items() if k not in fresh)
        self._waiting = fresh
        while self._running < self._workers and self._waiting:
            self._running += 1
            self._runner.spawn(self._drain(), name=f"{self._name}-worker")

    async def _drain(self) -> None:
        try:
            while self._waiting:
                image_id, image = self._waiting.popitem(last=False)
                self.in_flight.add(image_id)
                try:
                    result = await asyncio.to_thread(self._work, image)
                except Exception as exc:  # noqa: BLE001 - reported per design
                    self._on_error(image, exc)
                else:
                    self._on_done(image, result)
                finally:
                    self.in_flight.discard(image_id)
        finally:
            self._running -= 1


class GalleryController(QObject):
    """Signals:
    sig_images_loaded(list[GeneratedImage]): the whole gallery, newest first.
    sig_image_added(GeneratedImage): a new image (live, from ``ImageReady``).
    sig_image_updated(GeneratedImage): e.g. after approve/reject.
    sig_thumbnail_ready(str image_id, bytes png)
    sig_card_image_ready(str image_id, QImage image): with ``card_fit`` set, the thumbnail
        decoded and fitted into that size in the worker thread (the GUI thread only makes
        the pixmap).
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
    sig_card_image_ready = Signal(str, QImage)
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
        self.card_fit: tuple[int, int] | None = None  # (width, height) in device pixels
        self._thumb_bytes = 0
        self._images: dict[str, GeneratedImage] = {}
        self._preflight = preflight
        self._list_templates = list_templates
        self._regenerate = regenerate
        self._orch = orchestrator
        self._badges: dict[str, tuple[str, list[str]]] = {}
        self._badge_template_name = ""
        self._thumb_work = LatestFirst(
            runner,
            self._make_thumbnail,
            self._on_thumbnail_made,
            self._on_thumbnail_failed,
            name="thumbnails",
        )
        self._badge_work = LatestFirst(
            runner,
            self._check_print,
            self._on_badge_checked,
            self._on_badge_failed,
            name="preflight",
        )
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
        """Check ``image`` as a print file off the GUI thread (``sig_badge_ready``), before
        the designs already waiting for their check."""
        return self._want_badges([image], replace=False)

    def want_badges(self, images: Sequence[GeneratedImage]) -> bool:
        """Check these designs (the ones the window shows now), in this order; designs asked
        for earlier and not started yet are dropped. False without a preflight."""
        return self._want_badges(images, replace=True)

    def _want_badges(self, images: Sequence[GeneratedImage], *, replace: bool) -> bool:
        if self._preflight is None:
            return False
        todo = []
        for image in images:
            cached = self._badges.get(image.image_id)
            if cached is not None:
                self.sig_badge_ready.emit(image.image_id, cached[0], list(cached[1]))
            else:
                todo.append(image)
        if not todo:
            return True
        template = self._badge_template()
        if template is None:
            return False
        self._badge_template_name = template
        self._badge_work.want(todo, replace=replace)
        return True

    def _check_print(self, image: GeneratedImage) -> object:
        assert self._preflight is not None
        template = self._badge_template_name
        return template, self._preflight(image, template)

    def _on_badge_checked(self, image: GeneratedImage, result: object) -> None:
        template, (badge, reasons) = cast(tuple[str, tuple[str, list[str]]], result)
        reasons = [f"{template}: {r}" for r in reasons] or [f"{template}: ready to print"]
        self._badges[image.image_id] = (str(badge), reasons)
        self.sig_badge_ready.emit(image.image_id, str(badge), reasons)

    def _on_badge_failed(self, image: GeneratedImage, exc: Exception) -> None:
        # an unreadable file gets a failing badge
        log.info("preflight of %s failed: %s", image.file, exc)
        template = self._badge_template_name
        reasons = [f"{template}: cannot check the file: {user_message(exc)}"]
        self._badges[image.image_id] = ("fail", reasons)
        self.sig_badge_ready.emit(image.image_id, "fail", reasons)

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
        """Make (or reuse) the thumbnail of ``image`` (``sig_thumbnail_ready``), before the
        designs already waiting for theirs."""
        self._want_thumbnails([image], replace=False)

    def want_thumbnails(self, images: Sequence[GeneratedImage]) -> None:
        """The thumbnails of these designs (the ones the window shows now), in this order
        (``sig_thumbnail_ready`` each); designs asked for earlier and not started yet are
        dropped, so scrolling fast through the gallery never queues what it passed."""
        self._want_thumbnails(images, replace=True)

    def _want_thumbnails(self, images: Sequence[GeneratedImage], *, replace: bool) -> None:
        todo = []
        for image in images:
            cached = self._thumbs.get(image.image_id)
            if cached is not None and self.card_fit is None:
                self._thumbs.move_to_end(image.image_id)
                self.sig_thumbnail_ready.emit(image.image_id, cached)
            else:
                todo.append(image)
        if todo or replace:
            self._thumb_work.want(todo, replace=replace)

    def _make_thumbnail(self, image: GeneratedImage) -> object:
        """In a worker thread: the PNG bytes and, with ``card_fit``, the fitted QImage."""
        data = self._thumbs.get(image.image_id) or self._thumbnailer(image)
        fit = self.card_fit
        if fit is None:
            return data, None
        decoded = QImage.fromData(data)
        if decoded.width() > fit[0] or decoded.height() > fit[1]:
            decoded = decoded.scaled(
                QSize(*fit),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        return data, decoded

    def _on_thumbnail_made(self, image: GeneratedImage, result: object) -> None:
        data, decoded = cast(tuple[bytes, QImage | None], result)
        if image.image_id not in self._thumbs:
            self._thumb_bytes += len(data)
        self._thumbs[image.image_id] = data
        self._thumbs.move_to_end(image.image_id)
        while self._thumb_bytes > _THUMB_CACHE_BYTES and len(self._thumbs) > 1:
            _, dropped = self._thumbs.popitem(last=False)
            self._thumb_bytes -= len(dropped)
        self.sig_thumbnail_ready.emit(image.image_id, data)
        if isinstance(decoded, QImage) and not decoded.isNull():
            self.sig_card_image_ready.emit(image.image_id, decoded)

    def _on_thumbnail_failed(self, image: GeneratedImage, exc: Exception) -> None:
        # a broken file shows a placeholder
        log.warning("no thumbnail for %s: %s", image.file, exc)
        self.sig_load_failed.emit(f"cannot read {Path(image.file).name}: {exc}")

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
