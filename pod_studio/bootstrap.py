"""GUI composition root: logging, the composition, the one window composition and the qasync loop.

One asyncio loop runs on the GUI thread (qasync). ``main()`` makes the QApplication and
calls ``qasync.run(_amain(...))``; nothing else runs or nests an event loop.
``compose_window(core)`` builds the window's parts from a core (``bootstrap``, the UI and
end-to-end tests and the benchmarks all use it). Shutdown: the window's close asks the
AppController, ``_amain`` awaits the composed window's ``aclose()`` (controllers and tasks,
then the core, then the demo servers) and returns.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from pod_studio import APP_NAME, __version__
from pod_studio.app import gc_guard
from pod_studio.app.app_controller import AppController
from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.context import AppContext
from pod_studio.app.runner import TaskRunner
from pod_studio.composition import diagnostics, startup
from pod_studio.composition.core import Core, build_core
from pod_studio.composition.demo import DemoServers
from pod_studio.composition.diagnostics import configure_logging, resource_file, shutdown_logging
from pod_studio.domain.errors import user_message
from pod_studio.ui.main_window import MainWindow
from pod_studio.ui.theme import apply_style
from pod_studio.ui.window_extras import QuitAfterFirstPaint

log = logging.getLogger(__name__)


async def run_core(
    core: Core,
    controller: AppController,
    on_warning: Callable[[str, str], None] | None = None,
) -> None:
    """Open the job database, connect, resume what a crash left (unless the core was started
    already), then keep the durable queue moving until cancelled (shutdown).
    ``on_warning(title, text)`` hears about a job database that had to be repaired or
    replaced."""
    if not core.started:
        await core.start()
    if core.ledger_warnings and on_warning is not None:
        on_warning("Job database", "\n".join(core.ledger_warnings))
    controller.queue.refresh()
    await core.run_queue()


def _show_warning(window: MainWindow, title: str, text: str) -> None:
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, window)
    box.setModal(False)
    box.open()


@dataclass
class ComposedWindow:
    """The window's parts over one core, as ``compose_window`` built them. ``aclose()`` is
    the one shutdown: the window, its controllers and tasks, the core, the demo servers."""

    core: Core
    runner: TaskRunner
    bridge: QtEventBridge
    controller: AppController
    window: MainWindow
    breaker_refresh: QTimer
    demo_servers: DemoServers

    async def aclose(self) -> None:
        self.breaker_refresh.stop()
        self.window.hide()
        await self.controller.aclose()
        await self.core.aclose()
        self.core.sink.remove(self.bridge)
        await asyncio.to_thread(self.demo_servers.stop)


def app_context(
    core: Core, runner: TaskRunner, bridge: QtEventBridge, *, demo: bool = False
) -> AppContext:
    """The controllers' view of ``core``: its small ports."""
    return AppContext(
        runner,
        bridge,
        queue=core.orchestrator,
        designs=core.designs,
        platforms=core.platforms,
        comfyui=core.comfyui,
        settings=core.config,
        health=core,
        demo=demo,
    )


def compose_window(
    core: Core,
    *,
    demo: bool = False,
    demo_servers: DemoServers | None = None,
    log_dir: Path | None = None,
    show: bool = True,
) -> ComposedWindow:
    """The window over ``core``, as the app ships it: the Qt event bridge, the task runner,
    the controllers, the breaker announcements (re-announced while one is not closed), the
    periodic health checks, the demo-mode switch and the main window, shown; the job queue
    runs in the runner (starting the core first unless it was started). ``bootstrap``, the
    UI and end-to-end tests and the benchmarks all open the window through this.
    ``show=False`` leaves showing it to the caller (widget tests that never show it)."""
    demo_servers = demo_servers or DemoServers()
    runner = TaskRunner()
    bridge = QtEventBridge()
    core.sink.add(bridge)
    core.hub.breakers.announce()
    # re-announces open breakers (their "next attempt" moves) while any is not closed:
    # with all closed it is stopped, so an idle window does not wake up for it
    breaker_refresh = QTimer()
    breaker_refresh.setObjectName("breaker_refresh")
    breaker_refresh.setInterval(5000)
    breaker_refresh.timeout.connect(core.hub.breakers.announce_changing)

    def breakers_changed(_event: object) -> None:
        if any(m.state.value != "closed" for m in core.hub.breakers.snapshot()):
            if not breaker_refresh.isActive():
                breaker_refresh.start()
        else:
            breaker_refresh.stop()

    bridge.sig_breaker_changed.connect(breakers_changed)
    controller = AppController(app_context(core, runner, bridge, demo=demo))
    window = MainWindow(controller, demo=demo, log_dir=log_dir)

    async def switch_to_demo() -> None:
        url = await demo_servers.start()
        await core.comfyui.pin([url])
        window.set_demo(True)
        controller.generation.load_checkpoints()

    controller.sig_demo_requested.connect(lambda: runner.spawn(switch_to_demo(), name="demo"))
    if show:
        window.show()
    for warning in core.settings_warnings:
        _show_warning(window, "Settings", warning)
    runner.spawn(
        run_core(core, controller, lambda title, text: _show_warning(window, title, text)),
        name="job-queue",
    )
    runner.spawn(core.health.run_periodic(), name="health-checks")
    return ComposedWindow(core, runner, bridge, controller, window, breaker_refresh, demo_servers)


async def _amain(app: QApplication, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception_handler)
    demo_servers = DemoServers()
    servers = [await demo_servers.start()] if args.demo else args.server
    parts = compose_window(
        build_core(servers=servers),
        demo=bool(args.demo),
        demo_servers=demo_servers,
        log_dir=diagnostics.log_file().parent,
    )
    if args.screenshots:
        parts.runner.spawn(_screenshots(parts.window, Path(args.screenshots)), name="screenshots")
    if args.exit_after_paint:
        QuitAfterFirstPaint(parts.window)
    try:
        await parts.controller.wait_closed()
    finally:
        await parts.aclose()
    return 0


async def _screenshots(window: MainWindow, out_dir: Path) -> None:
    from pod_studio.ui.screens import grab_all

    await asyncio.sleep(3.0)  # let the connection settle so the status bar shows it
    shot = asyncio.Event()

    def shoot() -> None:
        # From a plain Qt callback, never inside a task: grab_all pumps Qt events, and doing
        # that inside a task's step breaks qasync's task switching.
        try:
            grab_all(window, out_dir)
        finally:
            shot.set()

    QTimer.singleShot(0, shoot)
    await shot.wait()
    window.quit()  # and leave through the normal shutdown path


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    log.error("unhandled error in the event loop: %s", context.get("message"), exc_info=exc)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    log.critical("unhandled exception", exc_info=(exc_type, exc, tb))
    app = QApplication.instance()
    if isinstance(app, QApplication):
        # The raw exception text stays in the (redacted) log: it may quote a token or a path.
        QTimer.singleShot(0, lambda: _error_box(user_message(exc)))


def _error_box(text: str) -> None:
    box = QMessageBox(QMessageBox.Icon.Critical, APP_NAME, text)

    box.setModal(False)
    box.show()
    _open_boxes.append(box)


_open_boxes: list[QMessageBox] = []


def qt_platform_name() -> str:
    """Make the QApplication and name its platform plugin (the self test's Qt check; it runs
    in a child process because a broken plugin aborts)."""
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    return str(app.platformName())


def selftest() -> int:
    """``pod-studio --selftest``: what a packaged build needs, checked; exit 0 when all pass."""
    return startup.run_selftest(qt_platform_name)


def main(args: argparse.Namespace) -> int:
    """The window (or ``--selftest``), with the options ``cli.main.parse_args`` parsed."""
    if args.selftest:
        return selftest()
    configure_logging()
    sys.excepthook = _excepthook
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName("pod-studio")
    app.setQuitOnLastWindowClosed(False)
    gc_guard.install(app)
    icon = resource_file("icons", "pod-studio.png")
    if icon is not None:  # before the window: its tray icon is the app's icon
        app.setWindowIcon(QIcon(str(icon)))
    qss = resource_file("style.qss")
    # kept for the life of the window: re-applies the sheet when the OS theme changes
    style = apply_style(app, qss.read_text(encoding="utf-8")) if qss is not None else None
    try:
        return int(qasync.run(_amain(app, args)))
    finally:
        del style
        shutdown_logging()
