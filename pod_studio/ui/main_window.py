"""UI layer: MainWindow — prompt editor, job list and gallery, the live docks (job queue,
breakers, retry log, statistics, health), the status bar with the ComfyUI connection, a
non-modal offline banner offering demo mode, and the non-modal publish panel.

Closing the window saves its geometry and dock layout through the settings controller and
asks the app controller to shut down (the composition root awaits it); with "close to tray"
on and a tray shown, closing only hides the window and File → Quit (or the tray's Quit)
shuts down. No dialog here runs a nested event loop.
"""

from __future__ import annotations

import platform
from pathlib import Path

import PySide6
from PySide6.QtCore import QByteArray, Qt, QUrl, Signal, Slot, qVersion
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from pod_studio import __version__
from pod_studio.app.app_controller import AppController
from pod_studio.domain.models import GeneratedImage
from pod_studio.ui.comfyui_dock import ComfyUIDock
from pod_studio.ui.docks import BreakersDock, HealthDock, RetryLogDock, StatsDock
from pod_studio.ui.gallery_grid import GalleryGridView
from pod_studio.ui.job_list import JobListView
from pod_studio.ui.layout import JobsDock, make_dock_shrinkable, scrollable
from pod_studio.ui.platform_settings import add_platform_tabs
from pod_studio.ui.prompt_editor import PromptEditor
from pod_studio.ui.publish_panel import PublishPanel
from pod_studio.ui.queue_dock import QueueDock
from pod_studio.ui.settings_dialog import SettingsDialog
from pod_studio.ui.tray import install_tray
from pod_studio.ui.widgets import CONNECTION_COLOURS, GREY, StatusDot
from pod_studio.ui.window_extras import install_window_extras

APP_TITLE = "POD Studio"
LAYOUT_VERSION = 2  # QMainWindow.saveState version: the grid-centred layout


class OfflineBanner(QFrame):
    """A strip above the work area: ComfyUI is offline; try demo mode or open Settings."""

    def __init__(self, parent: QWidget | None = None, *, demo: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("offline_banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            # its own light amber with its own dark text: readable in light and dark mode
            "#offline_banner { background: #fff4e0; border: 1px solid #e8c48a; "
            "border-radius: 4px; } #offline_banner QLabel { color: #3d2a00; }"
        )
        self.text_label = QLabel(self)
        self.text_label.setObjectName("offline_banner_label")
        self.text_label.setWordWrap(True)
        self.demo_button = QPushButton(self.tr("Try demo mode"), self)
        self.demo_button.setObjectName("try_demo_button")
        self.demo_button.setVisible(not demo)
        self.settings_button = QPushButton(self.tr("Settings…"), self)
        self.settings_button.setObjectName("banner_settings_button")
        self.close_button = QPushButton(self.tr("Dismiss"), self)
        self.close_button.setObjectName("banner_dismiss_button")
        self.close_button.setFlat(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.text_label, 1)
        layout.addWidget(self.demo_button)
        layout.addWidget(self.settings_button)
        layout.addWidget(self.close_button)


class MainWindow(QMainWindow):
    """Signals:
    sig_close_requested(): the window was closed (after its layout was saved).
    """

    sig_close_requested = Signal()

    def __init__(
        self, app: AppController, *, demo: bool = False, log_dir: Path | None = None
    ) -> None:
        super().__init__()
        self.app = app
        self.demo = demo
        self.log_dir = log_dir  # Help → Open log folder (bootstrap passes the real one)
        self._dialogs: list[QWidget] = []
        self._banner_dismissed = False
        self._started = False
        self._quitting = False
        self.settings_dialog: SettingsDialog | None = None
        self.publish_panel: PublishPanel | None = None
        self.setObjectName("main_window")
        self.setWindowTitle(APP_TITLE + (self.tr(" — Demo") if demo else ""))
        self.resize(1280, 800)

        defaults = getattr(app.settings.current(), "generation", None)
        self.prompt_editor = PromptEditor(
            app.generation,
            width=getattr(defaults, "width", 1024),
            height=getattr(defaults, "height", 1024),
            variations=getattr(defaults, "variations", 1),
            negative=getattr(defaults, "negative", ""),
        )
        self.job_list = JobListView(app.generation, queue=app.queue)
        # The gallery grid is the centre; the prompt editor sits at its left and the job
        # table is a dock beside the queue (secondary).
        self.gallery = GalleryGridView(app.gallery, app.bridge)
        self.prompt_scroll = scrollable(self.prompt_editor, "prompt_scroll")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("main_splitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.prompt_scroll)
        self.splitter.addWidget(self.gallery)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([320, 900])

        self.banner = OfflineBanner(demo=demo)
        self.banner.hide()
        central = QWidget(self)
        central.setObjectName("central")
        c_layout = QVBoxLayout(central)
        c_layout.setContentsMargins(6, 6, 6, 0)
        c_layout.setSpacing(6)
        c_layout.addWidget(self.banner)
        c_layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.jobs_dock = JobsDock(self.job_list, self)
        self.queue_dock = QueueDock(app.queue, self)
        self.breakers_dock = BreakersDock(app.resilience, self)
        self.retry_dock = RetryLogDock(app.resilience, self)
        self.stats_dock = StatsDock(app.stats, self)
        self.health_dock = HealthDock(app.resilience, self)
        self.comfyui_dock = ComfyUIDock(app.comfyui_server, self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.jobs_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.queue_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.breakers_dock)
        self.tabifyDockWidget(self.jobs_dock, self.queue_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.retry_dock)
        self.tabifyDockWidget(self.queue_dock, self.breakers_dock)
        self.tabifyDockWidget(self.breakers_dock, self.retry_dock)
        # every dock below the grid by default (the grid keeps the width on a laptop); the
        # seller may move them, the layout is saved and restored
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.stats_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.health_dock)
        self.tabifyDockWidget(self.retry_dock, self.stats_dock)
        self.tabifyDockWidget(self.stats_dock, self.health_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.comfyui_dock)
        self.tabifyDockWidget(self.health_dock, self.comfyui_dock)
        self.jobs_dock.raise_()
        self.docks = [
            self.jobs_dock,
            self.queue_dock,
            self.breakers_dock,
            self.retry_dock,
            self.stats_dock,
            self.health_dock,
            self.comfyui_dock,
        ]
        for dock in self.docks:
            make_dock_shrinkable(dock)
        self.resizeDocks([self.jobs_dock], [210], Qt.Orientation.Vertical)

        self.connection_dot = StatusDot()
        self.connection_dot.setObjectName("connection_dot")
        self.connection_label = QLabel()
        self.connection_label.setObjectName("connection_label")
        self.demo_label = QLabel(self.tr("DEMO"))
        self.demo_label.setToolTip(self.tr("Images come from a built-in stand-in server"))
        self.demo_label.setObjectName("demo_label")
        self.demo_label.setStyleSheet("color: #b26a00; font-weight: 600;")
        self.demo_label.setVisible(demo)
        # a long server list must not widen the window: the label elides instead
        self.connection_label.setSizePolicy(
            QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred
        )
        self.statusBar().addWidget(self.connection_dot)
        self.statusBar().addWidget(self.connection_label, 1)
        self.statusBar().addPermanentWidget(self.demo_label)
        self._set_connection(app.connection.status_text(), app.connection.state())

        self._build_menus()
        self._connect_signals()
        self._restore_layout()
        self.extras = install_window_extras(self)
        self.tray = install_tray(self)

    def set_demo(self, demo: bool) -> None:
        """Mark the window as running on the built-in sandbox (title, status bar, banner)."""
        self.demo = demo
        self.setWindowTitle(APP_TITLE + (self.tr(" — Demo") if demo else ""))
        self.demo_label.setVisible(demo)
        self.banner.demo_button.setVisible(not demo)
        if demo:
            self.banner.hide()

    # -- construction -------------------------------------------------------------------

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu(self.tr("&File"))
        file_menu.setObjectName("file_menu")
        self.import_workflow_action = QAction(self.tr("Import workflow…"), self)
        self.import_workflow_action.setObjectName("import_workflow_action")
        self.import_workflow_action.setEnabled(self.app.workflow.available)
        self.settings_action = QAction(self.tr("Settings…"), self)
        self.settings_action.setObjectName("settings_action")
        self.settings_action.setShortcut(QKeySequence.StandardKey.Preferences)
        self.quit_action = QAction(self.tr("Quit"), self)
        self.quit_action.setObjectName("quit_action")
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        file_menu.addAction(self.import_workflow_action)
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        view_menu = bar.addMenu(self.tr("&View"))
        view_menu.setObjectName("view_menu")
        for dock in self.docks:
            view_menu.addAction(dock.toggleViewAction())

        help_menu = bar.addMenu(self.tr("&Help"))
        help_menu.setObjectName("help_menu")
        self.about_action = QAction(self.tr("About POD Studio"), self)
        self.about_action.setObjectName("about_action")
        self.open_log_action = QAction(self.tr("Open log folder"), self)
        self.open_log_action.setObjectName("open_log_action")
        self.open_log_action.setEnabled(log_dir_known := self.log_dir is not None)
        self.open_log_action.setToolTip(
            self.tr("The log keeps the details of every error (passwords and tokens masked).")
            if log_dir_known
            else ""
        )
        help_menu.addAction(self.open_log_action)
        help_menu.addAction(self.about_action)

    def _connect_signals(self) -> None:
        app = self.app
        app.connection.sig_status_changed.connect(self._on_connection_status_changed)
        app.runner.sig_task_failed.connect(self._on_runner_task_failed)
        app.workflow.sig_workflow_loaded.connect(self._on_workflow_loaded)
        app.workflow.sig_workflow_failed.connect(self._on_workflow_failed)
        app.generation.sig_batch_failed.connect(self._on_generation_batch_failed)
        app.gallery.sig_regenerated.connect(self._on_gallery_regenerated)
        app.publishing.sig_publish_message.connect(self._on_publishing_publish_message)
        self.gallery.sig_publish_requested.connect(self.open_publish_panel)
        self.gallery.sig_import_reported.connect(self._on_gallery_import_reported)
        app.queue.sig_rows_reset.connect(self.gallery.show_queue_rows)
        self.banner.demo_button.clicked.connect(self._on_banner_demo_clicked)
        self.banner.settings_button.clicked.connect(self.open_settings)
        self.banner.close_button.clicked.connect(self._on_banner_dismiss_clicked)
        self.import_workflow_action.triggered.connect(self._on_import_workflow_triggered)
        self.settings_action.triggered.connect(self.open_settings)
        self.comfyui_dock.sig_settings_requested.connect(self.open_settings)
        self.quit_action.triggered.connect(self.quit)
        self.about_action.triggered.connect(self.open_about)
        self.open_log_action.triggered.connect(self.open_log_folder)

    def _restore_layout(self) -> None:
        geometry, state = self.app.settings.window_state()
        if geometry:
            self.restoreGeometry(QByteArray(geometry))
        if state:
            # a layout saved before the gallery grid (version 0) is ignored: default docks
            self.restoreState(QByteArray(state), LAYOUT_VERSION)

    def layout_state(self) -> tuple[bytes, bytes]:
        return bytes(self.saveGeometry().data()), bytes(self.saveState(LAYOUT_VERSION).data())

    # -- actions ------------------------------------------------------------------------

    def start(self) -> None:
        """Load what the window shows from the outside (gallery, checkpoints). Idempotent."""
        if self._started:
            return
        self._started = True
        self.app.queue.refresh()
        self.app.gallery.refresh()
        self.prompt_editor.refresh_checkpoints()
        self.extras.open_setup_if_needed()

    @Slot()
    def quit(self) -> None:
        """File → Quit and the tray's Quit: shut down, even when closing goes to the tray."""
        self._quitting = True
        self.close()

    @Slot(list)
    def open_publish_panel(self, designs: list[GeneratedImage]) -> PublishPanel:
        """The non-modal publish panel for ``designs`` (replaces an open one)."""
        if self.publish_panel is not None:
            self.publish_panel.close()
        panel = PublishPanel(
            self.app.publishing, designs, self, save_listing=self.app.gallery.set_listing
        )
        panel.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        panel.destroyed.connect(self._on_publish_panel_destroyed)
        self.publish_panel = panel
        panel.show()
        panel.raise_()
        return panel

    @Slot()
    def open_settings(self) -> SettingsDialog:
        if self.settings_dialog is None or not self.settings_dialog.isVisible():
            self.settings_dialog = SettingsDialog(
                self.app.settings,
                self.app.workflow,
                self,
                printify=self.app.printify,
                templates=self.app.publishing.templates(),
            )
            add_platform_tabs(self.settings_dialog.tabs, self.app)
            self.settings_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            self.settings_dialog.destroyed.connect(self._on_settings_dialog_destroyed)
            self.settings_dialog.show()
        self.settings_dialog.raise_()
        return self.settings_dialog

    @Slot()
    def open_log_folder(self) -> bool:
        """Show the log folder in the system's file manager (True if it could be opened)."""
        if self.log_dir is None:
            return False
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_dir)))

    @Slot()
    def open_about(self) -> QMessageBox:

        box = QMessageBox(self)
        box.setObjectName("about_box")
        box.setWindowTitle(self.tr("About POD Studio"))
        box.setText(
            self.tr(
                "<b>POD Studio {version}</b><br>Generate designs on your ComfyUI server, "
                "approve them and publish them to Printify or to an export folder."
            ).format(version=__version__)
        )
        box.setInformativeText(
            self.tr("Python {python}, Qt {qt}, PySide6 {pyside}").format(
                python=platform.python_version(), qt=qVersion(), pyside=PySide6.__version__
            )
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    def _show_message(self, title: str, text: str) -> QMessageBox:
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self
        )
        box.setObjectName("message_box")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    def _set_connection(self, text: str, state: str) -> None:
        self.connection_label.setText(text)
        self.connection_dot.set_colour(CONNECTION_COLOURS.get(state, GREY))
        self.connection_dot.setToolTip(state)
        if state == "offline" and not self._banner_dismissed:
            self.banner.text_label.setText(text)
            self.banner.show()
        elif state == "connected":
            self.banner.hide()
            self._banner_dismissed = False

    # -- slots ----------------------------------------------------------------------------

    @Slot(str, str)
    def _on_connection_status_changed(self, text: str, state: str) -> None:
        self._set_connection(text, state)

    @Slot()
    def _on_banner_demo_clicked(self) -> None:
        self.app.request_demo()

    @Slot()
    def _on_banner_dismiss_clicked(self) -> None:
        self._banner_dismissed = True
        self.banner.hide()

    @Slot()
    def _on_settings_dialog_destroyed(self) -> None:
        self.settings_dialog = None

    @Slot()
    def _on_publish_panel_destroyed(self) -> None:
        self.publish_panel = None

    @Slot(str, list)
    def _on_gallery_regenerated(self, _image_id: str, job_ids: list[str]) -> None:
        self.statusBar().showMessage(
            self.tr("Regenerating with a new seed (%n job(s) queued)", "", len(job_ids)), 8000
        )

    @Slot(str)
    def _on_gallery_import_reported(self, text: str) -> None:
        self.statusBar().showMessage(text, 15000)

    @Slot(str)
    def _on_publishing_publish_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    @Slot(str, str)
    def _on_runner_task_failed(self, name: str, message: str) -> None:
        self.statusBar().showMessage(
            self.tr("%1 failed: %2").replace("%1", name).replace("%2", message), 15000
        )

    @Slot(str, str)
    def _on_generation_batch_failed(self, _batch_id: str, message: str) -> None:
        self.statusBar().showMessage(message, 15000)

    @Slot()
    def _on_import_workflow_triggered(self) -> None:
        dialog = QFileDialog(self, self.tr("Import a ComfyUI workflow (API format)"))
        dialog.setObjectName("import_workflow_dialog")
        dialog.setNameFilter(self.tr("Workflow JSON (*.json)"))
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(self._on_import_file_selected)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    @Slot(str)
    def _on_import_file_selected(self, path: str) -> None:
        if path:
            self.app.workflow.load(path)
            self.statusBar().showMessage(self.tr("Reading workflow…"), 5000)

    @Slot(str, str, list)
    def _on_workflow_loaded(self, name: str, summary: str, problems: list[str]) -> None:
        text = f"{name}: {summary}"
        if problems:
            text += " — " + self.tr("%n problem(s)", "", len(problems))
            self._show_message(
                self.tr("Workflow imported with problems"),
                text + "\n\n" + "\n".join(f"• {p}" for p in problems),
            )
        self.statusBar().showMessage(text, 15000)

    @Slot(str)
    def _on_workflow_failed(self, message: str) -> None:
        self._show_message(self.tr("Workflow not imported"), message)

    # -- Qt events ------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.start()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.app.close_requested:
            event.accept()  # already shutting down (a second close, e.g. at exit)
            return
        if not self._quitting and self.tray.keeps_running_on_close():
            event.ignore()  # "close to tray": the queue keeps working, Quit ends it
            self.tray.hide_to_tray()
            return
        self.tray.close()
        self.gallery.flush()
        geometry, state = self.layout_state()
        self.app.settings.save_window_state(geometry, state)
        event.accept()
        self.sig_close_requested.emit()
        self.app.request_close()
