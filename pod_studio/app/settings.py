"""App layer: SettingsController and WorkflowController.

``SettingsController`` reads the current ``AppSettings`` through a getter, validates changes
(``AppSettings.with_changes``) and saves them through an async saver run by the
``TaskRunner``; it also remembers the window geometry/dock state and tests a server URL.
``WorkflowController`` loads a workflow file in the background and reports its mapping.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
from PySide6.QtCore import QObject, Signal

from pod_studio.app.runner import TaskRunner
from pod_studio.domain.costs import SellerCosts
from pod_studio.domain.errors import user_message
from pod_studio.domain.views import WorkflowReport

log = logging.getLogger(__name__)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True) if text else b""
    except (binascii.Error, ValueError):
        return b""


def validate_server_url(url: str) -> str | None:
    """None if ``url`` is a usable http(s) server URL, else the reason (a URL with a user
    name or password is refused; the reason never repeats the password)."""
    from pod_studio.domain.errors import ValidationError
    from pod_studio.domain.urls import check_server_url

    try:
        check_server_url(url)
    except ValidationError as exc:
        return exc.user_message or str(exc)
    return None


def _pydantic_message(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid settings"


class SettingsController(QObject):
    """Signals:
    sig_settings_saved(object settings)
    sig_settings_failed(str message): validation or saving failed.
    sig_connection_tested(str url, bool ok, str message)
    """

    sig_settings_saved = Signal(object)
    sig_settings_failed = Signal(str)
    sig_connection_tested = Signal(str, bool, str)

    def __init__(
        self,
        settings_getter: Callable[[], Any],
        settings_saver: Callable[[Any], Awaitable[None]],
        *,
        runner: TaskRunner,
        test_connection: Callable[[str], Awaitable[str]] | None = None,
        costs_getter: Callable[[], SellerCosts] | None = None,
        costs_saver: Callable[[SellerCosts], Awaitable[None]] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._get = settings_getter
        self._save = settings_saver
        self._get_costs = costs_getter
        self._save_costs = costs_saver
        self._runner = runner
        self._test_connection = test_connection
        self._saves: set[asyncio.Task[None]] = set()

    @property
    def can_test_connection(self) -> bool:
        return self._test_connection is not None

    def current(self) -> Any:
        return self._get()

    @property
    def can_save_costs(self) -> bool:
        return self._save_costs is not None

    def seller_costs(self) -> SellerCosts:
        """The seller's cost table (empty when this setup keeps none)."""
        return self._get_costs() if self._get_costs is not None else SellerCosts()

    def update(self, *, seller_costs: SellerCosts | None = None, **changes: Any) -> list[str]:
        """Validate ``changes`` against the current settings and save them in the background
        (with ``seller_costs``, the cost table first, then the settings).

        Returns the validation problems ([] when the save was started).
        """
        settings = self._get()
        try:
            new = settings.with_changes(**changes)
        except pydantic.ValidationError as exc:
            message = _pydantic_message(exc)
            self.sig_settings_failed.emit(message)
            return [message]
        self._spawn_save(new, seller_costs)
        return []

    def _spawn_save(self, settings: Any, costs: SellerCosts | None = None) -> None:
        task = self._runner.spawn(self._do_save(settings, costs), name="settings-save")
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    async def _do_save(self, settings: Any, costs: SellerCosts | None = None) -> None:
        try:
            if costs is not None and self._save_costs is not None:
                await self._save_costs(costs)
            await self._save(settings)
        except Exception as exc:  # noqa: BLE001 - shown in the settings dialog
            log.warning("saving settings failed: %s", exc)
            self.sig_settings_failed.emit(user_message(exc))
            return
        self.sig_settings_saved.emit(settings)

    async def flush(self) -> None:
        """Wait until every save started so far has ended (call before shutting down)."""
        while self._saves:
            await asyncio.gather(*list(self._saves), return_exceptions=True)

    # -- window geometry and dock state -------------------------------------------------

    def window_state(self) -> tuple[bytes, bytes]:
        """(geometry, state) as saved by ``QMainWindow.saveGeometry``/``saveState``."""
        window = getattr(self._get(), "window", None)
        if window is None:
            return b"", b""
        return _unb64(window.geometry_b64), _unb64(window.state_b64)

    def save_window_state(self, geometry: bytes, state: bytes) -> None:
        settings = self._get()
        window = {"geometry_b64": _b64(geometry), "state_b64": _b64(state)}
        try:
            new = settings.with_changes(window=window)
        except pydantic.ValidationError as exc:
            log.warning("window state not saved: %s", exc)
            return
        self._spawn_save(new)

    # -- connection test ----------------------------------------------------------------

    def test_connection(self, url: str) -> bool:
        """Check ``url`` in the background (``sig_connection_tested``); False if not possible."""
        problem = validate_server_url(url)
        if problem is not None:
            self.sig_connection_tested.emit(url, False, problem)
            return False
        if self._test_connection is None:
            self.sig_connection_tested.emit(url, False, "connection tests are not available")
            return False
        self._runner.spawn(self._test(self._test_connection, url), name="test-connection")
        return True

    async def _test(self, test: Callable[[str], Awaitable[str]], url: str) -> None:
        try:
            description = await test(url)
        except Exception as exc:  # noqa: BLE001 - the answer to the seller's question
            self.sig_connection_tested.emit(url, False, user_message(exc))
            return
        self.sig_connection_tested.emit(url, True, description)


class WorkflowController(QObject):
    """Loads a ComfyUI workflow file (API format) in the background.

    Signals:
        sig_workflow_loaded(str name, str mapping_summary, list problems)
        sig_workflow_failed(str message)
    """

    sig_workflow_loaded = Signal(str, str, list)
    sig_workflow_failed = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        load_workflow: Callable[[str], Awaitable[WorkflowReport]] | None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._load = load_workflow

    @property
    def available(self) -> bool:
        return self._load is not None

    def load(self, path: str) -> bool:
        if self._load is None:
            self.sig_workflow_failed.emit("workflow import is not available")
            return False
        self._runner.spawn(self._do_load(self._load, path), name="workflow-load")
        return True

    async def _do_load(self, load: Callable[[str], Awaitable[WorkflowReport]], path: str) -> None:
        try:
            report = await load(path)
        except Exception as exc:  # noqa: BLE001 - the seller picked a bad file
            log.info("workflow %s not loaded: %s", path, exc)
            self.sig_workflow_failed.emit(user_message(exc))
            return
        self.sig_workflow_loaded.emit(report.name, report.summary, list(report.problems))
