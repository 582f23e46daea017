"""Start-up checks: a missing display or system library is explained in words (exit 2/3),
never left to Qt's abort; the self test reports a Qt crash as a FAIL line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pod_studio.adapters.storage.resources import default_workflow_path, resource_path
from pod_studio.composition import startup

ROOT = Path(__file__).resolve().parents[2]
LINUX = sys.platform.startswith("linux")


def all_present_but(*missing: str) -> Callable[[str], bool]:
    return lambda soname: soname not in missing


def test_missing_xcb_libraries_are_named_with_their_packages() -> None:
    env = {"DISPLAY": ":0"}
    problem = startup.gui_problem(
        env,
        present=all_present_but("libxcb-icccm.so.4", "libxcb-keysyms.so.1"),
        platform="linux",
    )
    assert problem is not None and problem.kind == "libraries"
    assert "libxcb-icccm.so.4" in problem.message and "libxcb-keysyms.so.1" in problem.message
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in problem.message
    assert problem.packages == ("libxcb-icccm4", "libxcb-keysyms1")
    assert "libxcb-cursor0" not in problem.message


def test_missing_cursor_library_alone() -> None:
    problem = startup.gui_problem(
        {"DISPLAY": ":0"}, present=all_present_but("libxcb-cursor.so.0"), platform="linux"
    )
    assert problem is not None and problem.packages == ("libxcb-cursor0",)


def test_no_display_is_explained() -> None:
    problem = startup.gui_problem({}, present=all_present_but(), platform="linux")
    assert problem is not None and problem.kind == "display"
    assert "DISPLAY" in problem.message and "WAYLAND_DISPLAY" in problem.message
    assert "pod-studio generate" in problem.message


def test_offscreen_needs_no_display_and_no_xcb() -> None:
    env = {"QT_QPA_PLATFORM": "offscreen"}
    assert (
        startup.gui_problem(env, present=all_present_but("libxcb-icccm.so.4"), platform="linux")
        is None
    )


def test_libraries_every_plugin_needs_are_checked_even_offscreen() -> None:
    problem = startup.gui_problem(
        {"QT_QPA_PLATFORM": "offscreen"}, present=all_present_but("libEGL.so.1"), platform="linux"
    )
    assert problem is not None and problem.kind == "libraries"
    assert "libegl1" in problem.message


def test_wayland_session_does_not_need_xcb() -> None:
    env = {"WAYLAND_DISPLAY": "wayland-0"}
    present = all_present_but("libxcb-cursor.so.0")
    assert startup.gui_problem(env, present=present, platform="linux") is None


def test_wayland_forced_without_its_libraries() -> None:
    env = {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}
    problem = startup.gui_problem(
        env, present=all_present_but("libwayland-client.so.0"), platform="linux"
    )
    assert problem is not None and "libwayland-client0" in problem.message


def test_wayland_falls_back_to_x11_when_allowed() -> None:
    env = {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}
    present = all_present_but("libwayland-client.so.0", "libxcb-keysyms.so.1")
    problem = startup.gui_problem(env, present=present, platform="linux")
    assert problem is not None and problem.packages == ("libxcb-keysyms1",)


def test_wayland_forced_without_a_wayland_session() -> None:
    env = {"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}
    problem = startup.gui_problem(env, present=all_present_but(), platform="linux")
    assert problem is not None and problem.kind == "display"
    assert "WAYLAND_DISPLAY is not set" in problem.message


def test_other_systems_are_not_checked() -> None:
    assert startup.gui_problem({}, present=all_present_but("libGL.so.1"), platform="win32") is None


def test_the_qt_check_fails_with_the_packages_to_install() -> None:
    env = {"DISPLAY": ":0"}

    def never_called() -> str:
        raise AssertionError("the probe must not run when a prerequisite is missing")

    check = startup.qt_check(never_called, env, present=all_present_but("libxcb-keysyms.so.1"))
    assert check.status == "FAIL"
    assert check.line().startswith("FAIL Qt platform plugin: missing libxcb-keysyms.so.1")
    assert "apt-get install libxcb-keysyms1" in check.line()


@pytest.mark.skipif(not LINUX, reason="the loader check is for Linux")
def test_library_loadable_asks_the_dynamic_loader() -> None:
    assert startup.library_loadable("libc.so.6")
    assert not startup.library_loadable("libpod-studio-no-such-library.so.7")


def _abort() -> str:
    os.write(2, b"qt.qpa.plugin: could not load the Qt platform plugin\n")  # as native code does
    os.abort()


def _fail() -> str:
    raise RuntimeError("no platform")


@pytest.mark.skipif(not LINUX, reason="the child process is forked on Linux only")
def test_an_abort_in_the_probe_becomes_a_report() -> None:
    ok, detail = startup.run_isolated(_abort, timeout=30)
    assert not ok
    assert "SIGABRT" in detail and "could not load the Qt platform plugin" in detail


def test_a_probe_error_and_a_probe_result_are_reported() -> None:
    assert startup.run_isolated(_fail, timeout=30) == (False, "RuntimeError: no platform")
    assert startup.run_isolated(lambda: "offscreen", timeout=30) == (True, "offscreen")


def _run_app(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pod_studio", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=ROOT,
        check=False,
    )


def _headless_env(home: Path) -> dict[str, str]:
    drop = {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["POD_STUDIO_HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.skipif(not LINUX, reason="displays are checked on Linux")
def test_the_window_without_a_display_exits_3_with_words(tmp_path: Path) -> None:
    proc = _run_app("--demo", env=_headless_env(tmp_path))
    assert proc.returncode == 3, proc.stderr
    assert "there is no display" in proc.stderr
    assert "qt.qpa" not in proc.stderr and "Aborted" not in proc.stderr


@pytest.mark.skipif(not LINUX, reason="displays are checked on Linux")
def test_the_selftest_without_a_display_fails_in_lines(tmp_path: Path) -> None:
    proc = _run_app("--selftest", env=_headless_env(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("FAIL Qt platform plugin: no display")
    assert all(line[:4] in ("ok  ", "WARN", "FAIL") for line in lines)
    keyring = next(line for line in lines if " keyring: " in line)
    assert keyring.startswith("ok  ") or "POD_PRINTIFY_TOKEN" in keyring


def test_the_window_opens_paints_and_shuts_down_from_the_entry_point(tmp_path: Path) -> None:
    """``--exit-after-paint`` (what the cold-start benchmark times): the real entry opens the
    window offscreen, says so once it has painted, then leaves through the normal shutdown."""
    env = _headless_env(tmp_path)
    env["QT_QPA_PLATFORM"] = "offscreen"
    proc = _run_app("--exit-after-paint", "--server", "http://127.0.0.1:9", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["painted"]


def test_opening_the_window_leaves_out_what_only_demo_mode_and_etsy_sign_in_use() -> None:
    code = (
        "import sys; import pod_studio.bootstrap; "
        "print(sorted(m for m in ('aiohttp', 'pod_studio.sandbox.comfyui') "
        "if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=True,
    )
    assert proc.stdout.strip() == "[]"


def test_shipped_files_are_found() -> None:
    assert default_workflow_path().is_file()
    assert resource_path("product_templates.json").is_file()
    assert resource_path("icons", "pod-studio.png").is_file()
