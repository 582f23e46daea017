"""App layer: GalleryController — lists, thumbnails and approves the generated images.

Every file read and every decode runs in a worker thread (``asyncio.to_thread``); workers
return bytes only. Widgets turn the bytes into ``QImage``/``QPixmap`` in the GUI thread.
New images arrive live from the bridge's ``sig_image_ready``.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import user_message
from pod_studio.domain.events import ImageReady
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.ports import ImageStore

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 256
_THUMB_CACHE = 2000
_THUMB_WORKERS = 4


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
    """

    sig_images_loaded = Signal(list)
    sig_image_added = Signal(object)
    sig_image_updated = Signal(object)
    sig_thumbnail_ready = Signal(str, bytes)
    sig_full_image_loaded = Signal(str, bytes)
    sig_load_failed = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        store: ImageStore,
        thumbnailer: Callable[[GeneratedImage], bytes] | None = None,
        *,
        bridge: QtEventBridge | None = None,
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
        if bridge is not None:
            bridge.sig_image_ready.connect(self._on_bridge_image_ready)

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

    def set_approved(self, image_id: str, approved: bool | None) -> None:
        """Approve (True), reject (False) or clear (None) a design (``sig_image_updated``)."""
        self.runner.spawn(self._set_approved(image_id, approved), name=f"approve-{image_id[:8]}")

    async def _set_approved(self, image_id: str, approved: bool | None) -> None:
        try:
            image = await self.store.set_approved(image_id, approved)
        except Exception as exc:  # noqa: BLE001 - reported to the seller
            self.sig_load_failed.emit(user_message(exc))
            return
        self._images[image.image_id] = image
        self.sig_image_updated.emit(image)
