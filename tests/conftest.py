"""Test configuration shared by every layer.

- Qt runs offscreen (set before anything imports Qt).
- Every platformdirs path points into the test's ``tmp_path`` (``POD_STUDIO_HOME``), so no
  test touches a real profile; ``memory_keyring`` sets an in-memory keyring backend for every
  test, so the real OS keyring is never read or written.
- Qt starts only for the tests that ask for it (``qapp``, ``qtbot``, ``qloop``); Python's
  cyclic collector then runs on the GUI thread only (``app.gc_guard``, as in the app). Nothing
  else here imports Qt: the core's tests also run where Qt cannot be imported (``tests.no_qt``).
- ``qloop`` makes a qasync loop the running asyncio loop without ``exec()``: asyncio work
  then runs whenever Qt processes events, e.g. inside ``qtbot.waitSignal``/``waitUntil``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")


@pytest.fixture(scope="session")
def qapp(qapp: Any) -> Any:
    """pytest-qt's QApplication, with Python's cyclic collector moved onto its (the GUI)
    thread as the app does (``app.gc_guard``): a collection started in a sandbox server's
    thread would destroy Qt objects off their thread. Only tests that ask for Qt (``qapp``,
    ``qtbot``, ``qloop``) start it."""
    from pod_studio.app import gc_guard

    gc_guard.install(qapp)
    return qapp


@pytest.fixture(autouse=True)
def _collect_on_gui_thread() -> Iterator[None]:
    """Once a Qt test has put the collector in place, automatic collection is off for the rest
    of the process: collect what is due after each test, on this (the GUI) thread. A run with
    no Qt test keeps the interpreter's own collection."""
    yield
    guard = sys.modules.get("pod_studio.app.gc_guard")
    collector = getattr(guard, "_collector", None)
    if collector is not None:
        collector.collect_due()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "pod-home"
    monkeypatch.setenv("POD_STUDIO_HOME", str(home))
    for var in list(os.environ):
        if var.startswith("POD_") and var not in ("POD_STUDIO_HOME",):
            monkeypatch.delenv(var, raising=False)
    return home


class InMemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend that keeps passwords in a dict for one test. It is not on the
    allow-list of real OS keyrings, so the app treats it as "no secure keyring": a test that
    wants a stored secret uses ``POD_*_TOKEN`` or its own allow-listed store."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryKeyring]:
    """Every test gets a fresh in-memory keyring: the developer's real keyring is never read
    or written (``PYTHON_KEYRING_BACKEND`` is cleared so it cannot pick another one)."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    backend = InMemoryKeyring()
    # Not restored afterwards: asking for the previous backend would load the real one.
    keyring.set_keyring(backend)
    yield backend


@pytest.fixture
def qloop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    """A qasync loop that is 'running' while Qt processes events (no exec())."""
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=True)
    # qasync keeps its default executor's threads until the loop is closed, which never
    # happens here; Qt would abort at exit ("QThread: Destroyed while thread is still
    # running"). Give the loop a pool this fixture shuts down.
    pool = qasync.QThreadExecutor(4)
    loop.set_default_executor(pool)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            from PySide6.QtCore import QCoreApplication, QDeadlineTimer

            deadline = QDeadlineTimer(5000)
            while any(not t.done() for t in pending) and not deadline.hasExpired():
                QCoreApplication.processEvents()
        pool.shutdown(wait=True)
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(None)
