"""GUI composition root: logging, wiring, controllers, the main window and the qasync loop.

One asyncio loop runs on the GUI thread (qasync). ``main()`` makes the QApplication and
calls ``qasync.run(_amain(...))``; nothing else runs or nests an event loop. Shutdown: the
window's close asks the AppController, ``_amain`` awaits the runner's and the core's
``aclose()`` and returns.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from pod_studio import APP_NAME, __version__, wiring, wiring_publish
from pod_studio.app.app_controller import AppController
from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.context import AppContext, PlatformChoice
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import PodStudioError, user_message
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.pricing import ProfitLine
from pod_studio.domain.products import ProductTemplate
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread
from pod_studio.ui.main_window import MainWindow

log = logging.getLogger(__name__)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pod-studio", add_help=False)
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--server", action="append")
    parser.add_argument("--screenshots", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--selftest", action="store_true")
    args, _unknown = parser.parse_known_args(list(argv))
    return args


class DemoServers:
    """The sandbox ComfyUI the app runs on in demo mode, in its own thread."""

    def __init__(self) -> None:
        self.thread: ServerThread | None = None

    async def start(self) -> str:
        if self.thread is None:
            thread = ServerThread(ComfyUISandbox(seconds_per_job=1.5, steps=10, preview_every=2))
            await asyncio.to_thread(thread.start)
            self.thread = thread
        return self.thread.url

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None


def _summary(template: WorkflowTemplate) -> str:
    m = template.mapping
    parts = [f"prompt → {m.positive}" if m.positive else "no prompt input found"]
    if m.negative:
        parts.append(f"negative → {m.negative}")
    if m.seed:
        parts.append(f"seed → {m.seed}")
    if m.width and m.height:
        parts.append(f"size → {m.width}, {m.height}")
    if m.checkpoint:
        parts.append(f"model → {m.checkpoint}")
    return "; ".join(parts)


PLATFORM_LABELS = {"export": "Export folder", "printify": "Printify"}


class _Templates:
    """The seller's product templates, read again only when the settings change."""

    def __init__(self, core: wiring.Core) -> None:
        self._core = core
        self._for: object | None = None
        self._templates: list[ProductTemplate] = []

    def __call__(self) -> list[ProductTemplate]:
        settings = self._core.settings
        if settings is not self._for:
            self._templates = list(wiring_publish.load_product_templates(settings).values())
            self._for = settings
        return list(self._templates)


def build_context(
    core: wiring.Core, runner: TaskRunner, bridge: QtEventBridge, *, demo: bool
) -> AppContext:
    """The GUI's view of the core: callables only, so app/ and ui/ never see adapters.

    Optional parts of the core are looked up with ``getattr`` (``publishing``, ``secrets``,
    ``printify``, ``platforms``, ``save_secret``, ``preflight_design``): a feature whose part
    is missing shows "not available".
    """
    orchestrator = getattr(core, "orchestrator", None)
    publishing = getattr(core, "publishing", None)
    secrets = getattr(core, "secrets", None)
    templates = _Templates(core)
    preflight = core.preflight_design

    async def load_workflow(path: str) -> tuple[str, str, list[str]]:
        template = await core.load_workflow(path)
        problems: list[str] = []
        try:
            problems = template.preflight(await core.generators[0].object_info())
        except PodStudioError as exc:
            problems = [f"could not check against the server: {user_message(exc)}"]
        settings = core.settings.with_changes(workflow_path=path)
        await core.save_settings(settings)
        return template.name or Path(path).name, _summary(template), problems

    async def list_checkpoints() -> list[str]:
        return await core.generators[0].checkpoints()

    async def test_connection(url: str) -> str:
        report = await wiring.doctor(url)
        if not report.ok:
            raise PodStudioError(report.text.splitlines()[1].strip(), service="comfyui")
        return report.text.splitlines()[0].lstrip("✓ ")

    async def check_health() -> None:
        await core.health.check_now()

    async def save_settings(settings: Any) -> None:
        await core.save_settings(settings)

    def printify_client() -> Any:
        client = getattr(core, "printify", None)
        if client is None:
            raise PodStudioError(
                "Printify is not connected",
                service="printify",
                user_message="Printify is not connected: save an API token first.",
            )
        return client

    async def list_platforms() -> list[PlatformChoice]:
        listed = getattr(core, "platforms", None)
        rows: list[tuple[str, bool, str]] = list(listed()) if callable(listed) else []
        if not rows:
            rows = [("export", True, "")]
        return [
            PlatformChoice(name, PLATFORM_LABELS.get(name, name.capitalize()), ok, reason)
            for name, ok, reason in rows
        ]

    async def profit_preview(image: GeneratedImage, template_name: str) -> list[ProfitLine]:
        assert publishing is not None
        lines = await publishing.profit_preview(image, template_name)
        return list(lines)

    async def save_secret(name: str, value: str) -> None:
        store = getattr(core, "save_secret", None)
        if callable(store):
            await store(name, value)  # keyring, log redaction, Printify client rebuilt
            return
        assert secrets is not None
        await asyncio.to_thread(secrets.set, name, value)

    def describe_secrets() -> str:
        assert secrets is not None
        return str(secrets.describe())

    async def list_shops() -> list[tuple[str, str]]:
        shops = await printify_client().shops()
        return [(str(s.id), str(s.title)) for s in shops]

    async def test_printify() -> str:
        ok, text = await printify_client().health_check()
        if not ok:
            raise PodStudioError(text, service="printify", user_message=text)
        return str(text)

    return AppContext(
        runner=runner,
        bridge=bridge,
        generation=core.generation,
        store=core.store,
        orchestrator=orchestrator,
        settings_getter=lambda: core.settings,
        settings_saver=save_settings,
        thumbnailer=core.thumbnail,
        reset_breaker=lambda name: (
            core.hub.breakers.reset_all() if name is None else core.hub.breakers.reset(name)
        ),
        check_health=check_health,
        load_workflow=load_workflow,
        list_checkpoints=list_checkpoints,
        test_connection=test_connection,
        preflight=preflight,
        list_templates=templates,
        list_platforms=list_platforms if orchestrator is not None else None,
        profit_preview=profit_preview if publishing is not None else None,
        save_secret=save_secret if secrets is not None else None,
        secret_store_description=describe_secrets if secrets is not None else None,
        list_shops=list_shops if secrets is not None else None,
        test_printify=test_printify if secrets is not None else None,
        demo=demo,
        server_urls=[g.url for g in core.generators],
    )


async def run_core(
    core: wiring.Core,
    controller: AppController,
    on_warning: Callable[[str, str], None] | None = None,
) -> None:
    """Open the job database, connect, resume what a crash left, then keep the durable queue
    moving until cancelled (shutdown). ``on_warning(title, text)`` hears about a job database
    that had to be repaired or replaced."""
    await core.start()
    if core.ledger_warnings and on_warning is not None:
        on_warning("Job database", "\n".join(core.ledger_warnings))
    controller.queue.refresh()
    await core.run_queue()


def _show_warning(window: MainWindow, title: str, text: str) -> None:
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, window)
    box.setModal(False)
    box.open()


async def _amain(app: QApplication, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception_handler)
    demo_servers = DemoServers()
    demo = bool(args.demo)
    servers = args.server
    if demo:
        servers = [await demo_servers.start()]
    core = wiring.build_core(servers=servers)
    runner = TaskRunner()
    bridge = QtEventBridge()
    core.sink.add(bridge)
    core.hub.breakers.announce()
    breaker_refresh = QTimer()
    breaker_refresh.setInterval(2000)
    breaker_refresh.timeout.connect(core.hub.breakers.announce)
    breaker_refresh.start()
    controller = AppController(build_context(core, runner, bridge, demo=demo))
    window = MainWindow(controller, demo=demo)

    async def switch_to_demo() -> None:
        url = await demo_servers.start()
        await core.set_comfyui_servers([url])
        window.set_demo(True)
        controller.generation.load_checkpoints()

    controller.sig_demo_requested.connect(lambda: runner.spawn(switch_to_demo(), name="demo"))
    icon = wiring.resource_file("icons", "pod-studio.png")
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    window.show()
    for warning in core.settings_warnings:
        _show_warning(window, "Settings", warning)
    runner.spawn(
        run_core(core, controller, lambda title, text: _show_warning(window, title, text)),
        name="job-queue",
    )
    runner.spawn(core.health.run_periodic(), name="health-checks")
    if args.screenshots:
        runner.spawn(_screenshots(window, Path(args.screenshots)), name="screenshots")
    try:
        await controller.wait_closed()
    finally:
        breaker_refresh.stop()
        window.hide()
        await controller.aclose()
        await core.aclose()
        await asyncio.to_thread(demo_servers.stop)
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
    window.close()  # and leave through the normal shutdown path


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    log.error("unhandled error in the event loop: %s", context.get("message"), exc_info=exc)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    log.critical("unhandled exception", exc_info=(exc_type, exc, tb))
    app = QApplication.instance()
    if isinstance(app, QApplication):
        QTimer.singleShot(0, lambda: _error_box(f"{exc_type.__name__}: {exc}"))


def _error_box(text: str) -> None:
    box = QMessageBox(
        QMessageBox.Icon.Critical,
        APP_NAME,
        f"Something went wrong: {text}\nYour work is saved; details are in the log.",
    )
    box.setModal(False)
    box.show()
    _open_boxes.append(box)


_open_boxes: list[QMessageBox] = []


def selftest() -> int:
    """``pod-studio --selftest``: what a packaged build needs, checked; exit 0 when all pass."""
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    results = [("Qt platform plugin", bool(app.platformName()), app.platformName())]
    results += wiring.selftest()
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _n, ok, _d in results) else 1


def main(argv: Sequence[str]) -> int:
    args = _parse(argv)
    if args.selftest:
        return selftest()
    wiring.configure_logging()
    sys.excepthook = _excepthook
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName("pod-studio")
    app.setQuitOnLastWindowClosed(False)
    qss = wiring.resource_file("style.qss")
    if qss is not None:
        app.setStyleSheet(qss.read_text(encoding="utf-8"))
    try:
        return int(qasync.run(_amain(app, args)))
    finally:
        wiring.shutdown_logging()
