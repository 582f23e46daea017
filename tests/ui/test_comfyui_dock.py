"""The ComfyUI dock against the real engine (``build_core``) looking after the sandbox
ComfyUI run as a real subprocess: states from the server's events, the buttons doing their
work on the live server, the exit reason in words, the bounded log and its search, and the
"not set up" state. Screenshots of each state go to /tmp/shots-uicomfy/."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.comfyui import ComfyUIServerController
from pod_studio.app.runner import TaskRunner
from pod_studio.app.settings import SettingsController
from pod_studio.composition.core import Core, build_core
from pod_studio.composition.overrides import LocalServerOverrides
from pod_studio.domain.settings import AppSettings, ComfyUIProcessSettings
from pod_studio.ui.comfyui_dock import LOG_LINES, ComfyUIDock
from tests.ui._helpers import child_env, run, sandbox_command, shot, use_style

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX here"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_core(port: int | None, *, later: int | None = None) -> Core:
    """A core whose local server is the sandbox on ``port`` (run whatever the settings say);
    ``later``: not set up, but the sandbox on that port once Settings enable it."""
    local = LocalServerOverrides()
    settings = AppSettings(comfyui_servers=["http://127.0.0.1:9"])
    if port is not None:
        settings = settings.with_changes(
            comfyui_process=ComfyUIProcessSettings(port=port).model_dump()
        )
        local = LocalServerOverrides(
            enable=True,
            command=sandbox_command(port),
            env=child_env(),
            auto_restart=False,
            ready_timeout=60.0,
            ready_poll=0.05,
        )
    elif later is not None:
        local = LocalServerOverrides(command=sandbox_command(later), env=child_env())
    return build_core(settings=settings, secrets=MemorySecretStore(), local_server=local)


class Rig:
    def __init__(self, qtbot: Any, core: Core) -> None:
        self.qtbot = qtbot
        self.core = core
        self.runner = TaskRunner()
        self.bridge = QtEventBridge()
        core.sink.add(self.bridge)
        self.controller = ComfyUIServerController(
            self.runner, self.bridge, core.comfyui.view, core.comfyui.control
        )
        self.dock = ComfyUIDock(self.controller)
        self.dock.resize(560, 460)
        qtbot.addWidget(self.dock)
        self.dock.show()

    def click(self, name: str) -> None:
        from PySide6.QtWidgets import QPushButton

        button = self.dock.findChild(QPushButton, name)
        assert button is not None and button.isEnabled(), name
        button.click()

    def wait_state(self, state: str, timeout: float = 60.0) -> None:
        self.qtbot.waitUntil(lambda: self.dock.state == state, timeout=int(timeout * 1000))

    def wait_message(self, text: str) -> None:
        self.qtbot.waitUntil(lambda: text in self.dock.message_label.text(), timeout=20000)


@pytest.fixture
def rig(qtbot: Any, qloop: Any, qapp: Any) -> Iterator[Rig]:
    use_style(qapp)
    core = make_core(free_port())
    run(qtbot, core.start())
    r = Rig(qtbot, core)
    r.dock.refresh()
    yield r
    run(qtbot, r.runner.aclose())
    run(qtbot, core.aclose())


def test_not_set_up_says_what_to_do_until_set_up(
    qtbot: Any, qloop: Any, qapp: Any, tmp_path: Any
) -> None:
    use_style(qapp)
    port = free_port()
    core = make_core(None, later=port)
    run(qtbot, core.start())
    try:
        r = Rig(qtbot, core)
        assert r.dock.stack.currentWidget() is r.dock.empty_page
        assert "choose the ComfyUI folder in Settings" in r.dock.empty_label.text()
        with qtbot.waitSignal(r.dock.sig_settings_requested, timeout=2000):
            r.dock.open_settings_button.click()
        shot(r.dock, "dock-not-set-up")
        # asked anyway (e.g. a shortcut): the answer is in words, not a crash
        from pod_studio.domain.views import ComfyUIAction

        with qtbot.waitSignal(r.controller.sig_action_finished, timeout=5000) as blocker:
            r.controller.run(ComfyUIAction.START)
        assert blocker.args[1] is False
        assert "choose the ComfyUI folder in Settings" in blocker.args[2]
        # set up in Settings: the dock shows the server (not started: auto start is off)
        section = {"enabled": True, "folder": str(tmp_path), "port": port}
        settings = SettingsController(lambda: core.settings, core.config.save, runner=r.runner)
        settings.sig_settings_saved.connect(r.controller.settings_changed)
        with qtbot.waitSignal(r.controller.sig_view_changed, timeout=10000):
            assert settings.update(comfyui_process=section) == []
        assert r.dock.stack.currentWidget() is r.dock.server_page
        assert r.dock.state_label.text() == "Stopped"
        assert r.dock.url_label.text() == f"http://127.0.0.1:{port}"
        assert r.dock.buttons_enabled("comfyui_start_button")
        run(qtbot, r.runner.aclose())
    finally:
        run(qtbot, core.aclose())


def test_start_use_and_stop_the_local_server(rig: Rig) -> None:
    dock = rig.dock
    assert dock.stack.currentWidget() is dock.server_page
    assert dock.state_label.text() == "Stopped"
    assert not dock.buttons_enabled("comfyui_stop_button")
    shot(dock, "dock-stopped")

    rig.click("comfyui_start_button")
    rig.qtbot.waitUntil(lambda: dock.state in ("starting", "ready"), timeout=20000)
    if dock.state == "starting":
        assert dock.state_label.text().startswith("Starting")
        shot(dock, "dock-starting")
    rig.wait_state("ready")
    assert dock.state_label.text().startswith("Running (pid ")
    pid = rig.core.comfyui.view().pid
    assert pid is not None and f"pid {pid}" in dock.state_label.text()
    rig.wait_message("ComfyUI is running")
    # the log shows what the server printed; the search finds it
    rig.qtbot.waitUntil(lambda: "listening on" in dock.log_view.toPlainText(), timeout=10000)
    dock.search_edit.setText("listening on")
    assert dock.search_result_label.text() == "1 match(es)"
    assert dock.find_next()
    assert "LISTENING ON" in dock.log_view.textCursor().selectedText().upper()
    dock.search_edit.setText("no such text anywhere")
    assert not dock.find_next()
    assert dock.search_result_label.text() == "not found"
    dock.search_edit.clear()
    # the gauges come from the live /queue and /system_stats
    rig.qtbot.waitUntil(lambda: "running" in dock.queue_label.text(), timeout=15000)
    assert dock.queue_label.text() == "Queue: 0 running, 0 waiting"
    assert dock.vram_bar.format().startswith("VRAM")
    shot(dock, "dock-running")

    rig.click("comfyui_free_memory_button")
    rig.wait_message("memory freed")
    rig.click("comfyui_clear_queue_button")
    rig.wait_message("waiting prompts were removed")
    rig.click("comfyui_interrupt_button")
    rig.wait_message("interrupted")
    assert dock.message_label.text().startswith("✓")

    rig.click("comfyui_restart_button")
    rig.wait_message("ComfyUI restarted")
    rig.wait_state("ready")
    new_pid = rig.core.comfyui.view().pid
    assert new_pid is not None and new_pid != pid

    rig.click("comfyui_stop_button")
    rig.wait_state("stopped")
    rig.wait_message("stopped on SIGINT")
    assert dock.state_label.text() == "Stopped"
    assert dock.queue_label.text() == "Queue: —"
    assert dock.buttons_enabled("comfyui_start_button")
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)
    shot(dock, "dock-stopped-after-run")


def test_a_killed_server_shows_why_it_ended(rig: Rig) -> None:
    dock = rig.dock
    rig.click("comfyui_start_button")
    rig.wait_state("ready")
    pid = rig.core.comfyui.view().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    rig.qtbot.waitUntil(lambda: dock.state in ("exited", "failed"), timeout=20000)
    assert dock.state_label.text() in (
        "Ended unexpectedly",
        "Not running (it failed and was not restarted)",
    )
    assert dock.message_label.text() == ""
    assert "killed by SIGKILL" in dock.detail_label.text()
    assert "out-of-memory killer" in dock.detail_label.text()
    assert dock.detail_label.isVisible()
    assert dock.buttons_enabled("comfyui_start_button")
    assert not dock.buttons_enabled("comfyui_free_memory_button")
    shot(dock, "dock-killed")


def test_the_log_is_bounded(rig: Rig) -> None:
    from pod_studio.domain.comfyui_process import ComfyUILogLine

    for n in range(LOG_LINES + 50):
        rig.bridge(ComfyUILogLine(line=f"line {n}", number=n + 1))
    doc = rig.dock.log_view.document()
    assert doc.blockCount() == LOG_LINES
    assert rig.dock.log_view.toPlainText().splitlines()[-1] == f"line {LOG_LINES + 49}"
