"""UI layer: the main window's keyboard shortcuts, its Help → Set-up and Help → Keyboard
shortcuts entries, the first-launch set-up, and dropping a workflow JSON onto the window;
``QuitAfterFirstPaint`` for ``pod-studio --exit-after-paint``.

``install_window_extras(window)`` adds them to a ``MainWindow`` (one call at the end of its
construction); ``SHORTCUTS`` is the one list both the actions and the help text come from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QTimer, Slot
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from pod_studio.domain.views import ComfyUIAction
from pod_studio.ui.setup_wizard import SetupWizard

if TYPE_CHECKING:
    from pod_studio.ui.main_window import MainWindow

# (key, what it does); Settings and Quit use the platform's standard keys (shortcuts_for adds
# them once a window exists: Qt knows them only then).
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Ctrl+Return", "Generate the prompt"),
    ("Ctrl+O", "Import a workflow (or drop a .json onto the window)"),
    ("Ctrl+L", "Show the ComfyUI server dock"),
    ("Ctrl+Shift+R", "Restart the local ComfyUI server"),
    ("Ctrl+Shift+F", "Free ComfyUI's memory"),
    ("Ctrl+Shift+X", "Interrupt everything ComfyUI is doing"),
    ("Delete", "Cancel the selected job (job list)"),
)


def shortcuts_for(window: MainWindow) -> list[tuple[str, str]]:
    """Every key of the window, with the Settings and Quit keys as set on their actions."""
    rows = list(SHORTCUTS)
    for action, what in ((window.settings_action, "Settings"), (window.quit_action, "Quit")):
        key = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if key:
            rows.append((key, what))
    return rows


def shortcuts_text(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{w}</td></tr>" for k, w in rows)
    return f"<table>{body}</table>"


def workflow_path_of(event: QDragEnterEvent | QDropEvent) -> str | None:
    """The local .json file being dragged, if exactly one."""
    urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
    if len(urls) != 1 or not urls[0].isLocalFile():
        return None
    path = urls[0].toLocalFile()
    return path if Path(path).suffix.lower() == ".json" else None


class WindowExtras(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.wizard: SetupWizard | None = None
        self.help_box: QMessageBox | None = None
        app = window.app
        window.import_workflow_action.setShortcut(QKeySequence("Ctrl+O"))
        for standard, key in ((window.settings_action, "Ctrl+,"), (window.quit_action, "Ctrl+Q")):
            if standard.shortcut().isEmpty():  # no standard key on this platform
                standard.setShortcut(QKeySequence(key))
        self.actions: list[QAction] = []
        self._add("Ctrl+Return", "generate_shortcut", window.prompt_editor.generate_button.click)
        self._add("Ctrl+L", "comfyui_dock_shortcut", self.show_comfyui_dock)
        for key, name, action in (
            ("Ctrl+Shift+R", "comfyui_restart_shortcut", ComfyUIAction.RESTART),
            ("Ctrl+Shift+F", "comfyui_free_shortcut", ComfyUIAction.FREE_MEMORY),
            ("Ctrl+Shift+X", "comfyui_interrupt_shortcut", ComfyUIAction.INTERRUPT_ALL),
        ):
            self._add(key, name, lambda a=action: app.comfyui_server.run(a))
        help_menu = window.menuBar().findChild(QMenu, "help_menu")
        self.setup_action = QAction(self.tr("Set-up…"), window)
        self.setup_action.setObjectName("setup_action")
        self.setup_action.triggered.connect(self.open_setup)
        self.shortcuts_action = QAction(self.tr("Keyboard shortcuts"), window)
        self.shortcuts_action.setObjectName("shortcuts_action")
        self.shortcuts_action.triggered.connect(self.open_shortcuts)
        if help_menu is not None:
            help_menu.insertAction(window.about_action, self.setup_action)
            help_menu.insertAction(window.about_action, self.shortcuts_action)
        window.setAcceptDrops(True)
        window.installEventFilter(self)

    def _add(self, key: str, name: str, slot: object) -> None:
        action = QAction(self.window)
        action.setObjectName(name)
        action.setShortcut(QKeySequence(key))
        action.triggered.connect(slot)
        self.window.addAction(action)
        self.actions.append(action)

    @Slot()
    def show_comfyui_dock(self) -> None:
        dock = self.window.comfyui_dock
        dock.show()
        dock.raise_()

    @Slot()
    def open_setup(self) -> SetupWizard:
        """The set-up (non-modal; one at a time)."""
        if self.wizard is None or not self.wizard.isVisible():
            self.wizard = SetupWizard(self.window.app, self.window)
            self.wizard.open()
        self.wizard.raise_()
        return self.wizard

    def open_setup_if_needed(self) -> SetupWizard | None:
        return self.open_setup() if self.window.app.setup.needed else None

    @Slot()
    def open_shortcuts(self) -> QMessageBox:
        box = QMessageBox(self.window)
        box.setObjectName("shortcuts_box")
        box.setWindowTitle(self.tr("Keyboard shortcuts"))
        box.setText(shortcuts_text(shortcuts_for(self.window)))
        self.help_box = box
        box.open()
        return box

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        window = getattr(self, "window", None)  # events can arrive while it is torn down
        if (
            window is not None
            and watched is window
            and event.type()
            in (
                QEvent.Type.DragEnter,
                QEvent.Type.Drop,
            )
        ):
            assert isinstance(event, QDragEnterEvent | QDropEvent)
            path = workflow_path_of(event)
            if path is None:
                return False
            event.acceptProposedAction()
            if event.type() == QEvent.Type.Drop:
                self.window.app.workflow.load(path)
            return True
        return super().eventFilter(watched, event)


def install_window_extras(window: MainWindow) -> WindowExtras:
    return WindowExtras(window)


class QuitAfterFirstPaint(QObject):
    """``--exit-after-paint``: prints "painted" once the window has painted the gallery as the
    design library gave it (its first cards, or the empty gallery), then quits through the
    normal shutdown path (what the cold-start benchmarks time, from outside). A child of the
    window, so it lives as long as the window."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self._target: QObject | None = None
        gallery = window.app.gallery
        gallery.sig_images_loaded.connect(self._on_gallery_loaded)
        gallery.sig_load_failed.connect(self._on_gallery_loaded)

    @Slot()
    def _on_gallery_loaded(self) -> None:
        if self._target is not None:
            return
        grid = self._window.gallery
        # the cards are painted by the list's viewport, the empty gallery by its label
        target = grid.list_view.viewport() if grid.model.rowCount() else grid.empty_label
        self._target = target
        target.installEventFilter(self)
        target.update()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._target and event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self._report)  # after the rest of this paint pass
        return False

    def _report(self) -> None:
        print("painted", flush=True)
        self._window.quit()
