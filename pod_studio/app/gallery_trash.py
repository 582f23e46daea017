"""App layer: PendingDeletes — delete designs with an undo window.

A deleted design is hidden at once (``sig_hidden``); it leaves the disk (the store moves it
into its trash folder) only when the undo window passes, when a newer delete replaces the
undo, or at ``flush()`` (the window closes). ``undo()`` brings the last deletion back
(``sig_restored``). Stores without a trash (a plain ``--out`` folder) only hide.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from PySide6.QtCore import QObject, QTimer, Signal

from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import user_message
from pod_studio.domain.models import GeneratedImage

log = logging.getLogger(__name__)

UNDO_WINDOW_MS = 8000


@runtime_checkable
class TrashStore(Protocol):
    async def move_to_trash(self, image_id: str) -> None: ...


class PendingDeletes(QObject):
    """Signals:
    sig_hidden(list[str] image_ids): hide these cards now.
    sig_restored(list[str] image_ids): the deletion was undone; show them again.
    sig_deleted(list[str] image_ids): they are in the trash for good.
    sig_failed(str message)
    """

    sig_hidden = Signal(list)
    sig_restored = Signal(list)
    sig_deleted = Signal(list)
    sig_failed = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        store: object,
        *,
        window_ms: int = UNDO_WINDOW_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self._store = store if isinstance(store, TrashStore) else None
        self._pending: list[GeneratedImage] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(window_ms)
        self._timer.timeout.connect(self.commit)

    @property
    def pending(self) -> list[GeneratedImage]:
        return list(self._pending)

    def hidden_ids(self) -> set[str]:
        return {i.image_id for i in self._pending}

    def delete(self, images: list[GeneratedImage]) -> None:
        """Hide ``images`` and start the undo window (an earlier deletion is committed)."""
        if not images:
            return
        self.commit()
        self._pending = list(images)
        self.sig_hidden.emit([i.image_id for i in images])
        self._timer.start()

    def undo(self) -> bool:
        """Bring the last deletion back; False when there is nothing to undo."""
        self._timer.stop()
        if not self._pending:
            return False
        ids = [i.image_id for i in self._pending]
        self._pending = []
        self.sig_restored.emit(ids)
        return True

    def commit(self) -> None:
        """Move what is pending into the store's trash now (the undo window is over)."""
        self._timer.stop()
        if not self._pending:
            return
        ids = [i.image_id for i in self._pending]
        self._pending = []
        if self._store is None:
            self.sig_deleted.emit(ids)
            return
        self.runner.spawn(self._trash_shielded(self._store, ids), name="gallery-delete")

    async def _trash_shielded(self, store: TrashStore, ids: list[str]) -> None:
        # At close the runner cancels its tasks; the moves still finish (each is quick).
        await asyncio.shield(self._trash(store, ids))

    def flush(self) -> None:
        """At close: nothing stays pending."""
        self.commit()

    async def _trash(self, store: TrashStore, ids: list[str]) -> None:
        done: list[str] = []
        for image_id in ids:
            try:
                await store.move_to_trash(image_id)
            except Exception as exc:  # noqa: BLE001 - reported to the seller
                log.warning("could not move %s to the trash: %s", image_id, exc)
                self.sig_failed.emit(user_message(exc))
                continue
            done.append(image_id)
        if done:
            self.sig_deleted.emit(done)
