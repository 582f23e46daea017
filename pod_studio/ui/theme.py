"""UI layer: the application style sheet, following the OS theme.

The style sheet takes its colours from ``palette(...)``; Qt resolves those when it polishes a
widget, so after the palette changes (the OS switched to dark mode, or back) the sheet is set
again and every widget is polished with the new colours.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication


class StyleFollower(QObject):
    """Keeps ``qss`` applied to ``app`` under whatever palette the OS gives it."""

    def __init__(self, app: QApplication, qss: str) -> None:
        super().__init__(app)
        self.app = app
        self.qss = qss
        self._key = app.palette().cacheKey()
        self._pending = False
        app.setStyleSheet(qss)
        app.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        changed = event.type() == QEvent.Type.ApplicationPaletteChange
        if watched is self.app and changed and not self._pending:
            self._pending = True
            QTimer.singleShot(0, self._reapply)
        return False

    def _reapply(self) -> None:
        self._pending = False
        key = self.app.palette().cacheKey()
        if key == self._key:
            return
        self._key = key
        self.app.setStyleSheet(self.qss)

    def detach(self) -> None:
        self.app.removeEventFilter(self)
        self.app.setStyleSheet("")
        self.setParent(None)


def apply_style(app: QApplication, qss: str) -> StyleFollower:
    """Set ``qss`` on ``app`` and keep it right when the OS theme changes."""
    return StyleFollower(app, qss)
