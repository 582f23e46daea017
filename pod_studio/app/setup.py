"""App layer: SetupController — the first-launch set-up's own work.

Checks the current workflow against the server (missing nodes or models named), and marks
the set-up done (finished or skipped: ``AppSettings.first_run_done``) together with what the
last page chose (product prices, export folder). Everything else the set-up does goes through
the controllers the Settings dialog uses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
from PySide6.QtCore import QObject, Signal

from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import user_message
from pod_studio.domain.settings import AppSettings
from pod_studio.domain.views import WorkflowReport

log = logging.getLogger(__name__)


class SetupController(QObject):
    """Signals:
    sig_workflow_checked(str name, str summary, list problems)
    sig_workflow_failed(str message): the server could not be asked.
    sig_finished(bool ok, str message): the set-up was saved as done (or why not).
    """

    sig_workflow_checked = Signal(str, str, list)
    sig_workflow_failed = Signal(str)
    sig_finished = Signal(bool, str)

    def __init__(
        self,
        runner: TaskRunner,
        settings: Callable[[], AppSettings],
        save_settings: Callable[[AppSettings], Awaitable[None]],
        check_workflow: Callable[[], Awaitable[WorkflowReport]],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._settings = settings
        self._save = save_settings
        self._check = check_workflow

    def current(self) -> AppSettings:
        return self._settings()

    @property
    def needed(self) -> bool:
        """True until the seller finished or skipped the set-up once."""
        return not self._settings().first_run_done

    def check_workflow(self) -> None:
        async def run() -> None:
            try:
                report = await self._check()
            except Exception as exc:  # noqa: BLE001 - the page says it in words
                self.sig_workflow_failed.emit(user_message(exc))
                return
            self.sig_workflow_checked.emit(report.name, report.summary, list(report.problems))

        self._runner.spawn(run(), name="setup-check-workflow")

    def finish(self, **changes: Any) -> list[str]:
        """Save ``changes`` with ``first_run_done``; returns validation problems."""
        try:
            new = self._settings().with_changes(first_run_done=True, **changes)
        except pydantic.ValidationError as exc:
            problems = [str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors()]
            self.sig_finished.emit(False, "; ".join(problems))
            return problems

        async def run() -> None:
            try:
                await self._save(new)
            except Exception as exc:  # noqa: BLE001 - shown on the page
                log.warning("the set-up was not saved: %s", exc)
                self.sig_finished.emit(False, user_message(exc))
                return
            self.sig_finished.emit(True, "set-up saved")

        self._runner.spawn(run(), name="setup-finish")
        return []
