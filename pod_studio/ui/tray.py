"""UI layer: the desktop side of the main window — the tray icon with the queue's state
(tooltip "POD Studio — 3 running, 5 queued, 1 failed"; menu Show window, Pause/Resume queue,
Quit), closing to the tray, and notifications when a long batch ends.

``install_tray(window)`` adds it to a ``MainWindow`` (one call at the end of its
construction). Notifications go to the tray (``QSystemTrayIcon.showMessage``) when the
desktop has one, otherwise to the window's status bar: never a modal box. What a notice says
and when it is worth showing come from ``app/notifications.py``; the settings (notifications,
sound, the time a batch must take, close to tray) from Settings → General.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QApplication, QMenu, QStyle, QSystemTrayIcon

from pod_studio.app.notifications import Notice, queue_summary, worth_notifying
from pod_studio.domain.settings import DesktopSettings

if TYPE_CHECKING:
    from pod_studio.ui.main_window import MainWindow

APP_TITLE = "POD Studio"
MESSAGE_MS = 10000


def tray_available() -> bool:
    """Whether the desktop shows tray icons (many Linux desktops do not)."""
    return bool(QSystemTrayIcon.isSystemTrayAvailable())


def desktop_settings(window: MainWindow) -> DesktopSettings:
    """The seller's desktop settings (defaults if the settings have none)."""
    found = getattr(window.app.settings.current(), "desktop", None)
    return found if isinstance(found, DesktopSettings) else DesktopSettings()


class DesktopTray(QObject):
    """Signals:
    sig_notified(str title, str text): a notification was shown (tray message or status bar).
    """

    sig_notified = Signal(str, str)

    def __init__(self, window: MainWindow, *, available: bool | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.tray: QSystemTrayIcon | None = None
        self._told_about_tray = False
        if available if available is not None else tray_available():
            self._build_tray()
        self._connect_signals()
        self.refresh()

    # -- construction -------------------------------------------------------------------

    def _build_tray(self) -> None:
        window = self.window
        tray = QSystemTrayIcon(self._icon(), self)
        tray.setObjectName("tray_icon")
        menu = QMenu(window)
        menu.setObjectName("tray_menu")
        self.show_action = QAction(self.tr("Show window"), menu)
        self.show_action.setObjectName("tray_show_action")
        self.pause_action = QAction(self.tr("Pause queue"), menu)
        self.pause_action.setObjectName("tray_pause_action")
        self.pause_action.setEnabled(window.app.queue.available)
        self.quit_action = QAction(self.tr("Quit"), menu)
        self.quit_action.setObjectName("tray_quit_action")
        menu.addAction(self.show_action)
        menu.addAction(self.pause_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        tray.setContextMenu(menu)
        self.menu = menu
        self.tray = tray
        tray.show()

    def _icon(self) -> QIcon:
        for icon in (self.window.windowIcon(), QApplication.windowIcon()):
            if not icon.isNull():
                return icon
        return self.window.style().standardIcon(QStyle.StandardPixmap.SP_ComputerIcon)

    def _connect_signals(self) -> None:
        app = self.window.app
        app.notices.sig_batch_ended.connect(self._on_notices_batch_ended)
        if self.tray is None:
            return
        queue = app.queue
        queue.sig_rows_reset.connect(self.refresh)
        queue.sig_row_changed.connect(self.refresh)
        queue.sig_row_removed.connect(self.refresh)
        queue.sig_paused_changed.connect(self.refresh)
        self.show_action.triggered.connect(self.show_window)
        self.pause_action.triggered.connect(self._on_pause_triggered)
        self.quit_action.triggered.connect(self.window.quit)
        self.tray.activated.connect(self._on_tray_activated)

    # -- state --------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.tray is not None

    def tooltip(self) -> str:
        queue = self.window.app.queue
        return f"{APP_TITLE} — {queue_summary(queue.counts(), paused=queue.paused)}"

    @Slot()
    def refresh(self, *_args: object) -> None:
        """Tooltip and the Pause/Resume entry after the queue changed."""
        if self.tray is None:
            return
        self.tray.setToolTip(self.tooltip())
        paused = self.window.app.queue.paused
        self.pause_action.setText(self.tr("Resume queue") if paused else self.tr("Pause queue"))

    def keeps_running_on_close(self) -> bool:
        """Closing the window hides it to the tray (the setting is on and a tray is shown)."""
        return (
            self.tray is not None
            and self.tray.isVisible()
            and bool(desktop_settings(self.window).close_to_tray)
        )

    # -- actions ------------------------------------------------------------------------

    def hide_to_tray(self) -> None:
        self.window.hide()
        if not self._told_about_tray and self.tray is not None:
            self._told_about_tray = True
            self.tray.showMessage(
                APP_TITLE,
                self.tr("POD Studio keeps working in the tray; Quit from its menu."),
                QSystemTrayIcon.MessageIcon.Information,
                MESSAGE_MS,
            )

    @Slot()
    def show_window(self) -> None:
        window = self.window
        if window.isMinimized():
            window.showNormal()
        else:
            window.show()
        window.raise_()
        window.activateWindow()

    def notify(self, title: str, text: str, *, failed: bool = False) -> None:
        """Tell the seller: a tray message if there is a tray, else the status bar."""
        if self.tray is not None and self.tray.isVisible():
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if failed
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(title, text, icon, MESSAGE_MS)
        else:
            self.window.statusBar().showMessage(text, 15000)
        if desktop_settings(self.window).notify_sound:
            QApplication.beep()
        self.sig_notified.emit(title, text)

    def close(self) -> None:
        """At quit: the icon leaves the tray at once."""
        if self.tray is not None:
            self.tray.hide()

    def in_background(self) -> bool:
        window = self.window
        return not window.isVisible() or window.isMinimized() or not window.isActiveWindow()

    # -- slots --------------------------------------------------------------------------

    @Slot(object)
    def _on_notices_batch_ended(self, notice: Notice) -> None:
        settings = desktop_settings(self.window)
        if not settings.notify:
            return
        if worth_notifying(
            notice,
            after_seconds=float(settings.notify_after_seconds),
            background=self.in_background(),
        ):
            self.notify(notice.title, notice.text, failed=notice.failed)

    @Slot()
    def _on_pause_triggered(self) -> None:
        self.window.app.queue.set_paused(not self.window.app.queue.paused)

    @Slot(QSystemTrayIcon.ActivationReason)
    def _on_tray_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.show_window()


def install_tray(window: MainWindow) -> DesktopTray:
    return DesktopTray(window)
