"""Composition layer: start-up checks that run before Qt is imported (never imports Qt).

Qt's platform plugins abort the process (SIGABRT, exit 134) when a display is missing or a
system library they link against is not installed, and print text a seller cannot act on.
``gui_problem()`` finds those cases first and says in words what is missing and which
Debian/Ubuntu packages provide it; ``run_selftest()`` prints one line per check of an install
and runs the Qt check in a child process, so an abort becomes a FAIL line.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import select
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["ok", "WARN", "FAIL"]
LibraryCheck = Callable[[str], bool]

# Libraries every Qt platform plugin needs, offscreen included (soname, Debian/Ubuntu package).
QT_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("libEGL.so.1", "libegl1"),
    ("libGL.so.1", "libgl1"),
    ("libxkbcommon.so.0", "libxkbcommon0"),
    ("libfontconfig.so.1", "libfontconfig1"),
    ("libfreetype.so.6", "libfreetype6"),
    ("libglib-2.0.so.0", "libglib2.0-0"),
    ("libdbus-1.so.3", "libdbus-1-3"),
)

# What Qt's X11 plugin (libqxcb.so) links against beyond QT_LIBRARIES (from `ldd libqxcb.so`).
XCB_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("libxcb-cursor.so.0", "libxcb-cursor0"),
    ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-image.so.0", "libxcb-image0"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ("libxcb-util.so.1", "libxcb-util1"),
    ("libxcb-randr.so.0", "libxcb-randr0"),
    ("libxcb-shape.so.0", "libxcb-shape0"),
    ("libxcb-shm.so.0", "libxcb-shm0"),
    ("libxcb-sync.so.1", "libxcb-sync1"),
    ("libxcb-xfixes.so.0", "libxcb-xfixes0"),
    ("libxcb-xkb.so.1", "libxcb-xkb1"),
    ("libxcb-render.so.0", "libxcb-render0"),
    ("libxcb.so.1", "libxcb1"),
    ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
)

# What Qt's Wayland plugin needs beyond QT_LIBRARIES.
WAYLAND_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("libwayland-client.so.0", "libwayland-client0"),
    ("libwayland-cursor.so.0", "libwayland-cursor0"),
    ("libwayland-egl.so.1", "libwayland-egl1"),
)

# Platform plugins that draw into memory or straight to the framebuffer: no display server.
_NO_SERVER_PLATFORMS = frozenset({"offscreen", "minimal", "minimalegl", "vnc", "linuxfb", "eglfs"})


class StartupProblem(BaseModel):
    """Why the window cannot open: ``kind`` picks the exit status, ``message`` is for people."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["display", "libraries"]
    summary: str
    message: str
    packages: tuple[str, ...] = ()


class Check(BaseModel):
    """One line of ``--selftest``."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


def library_loadable(soname: str) -> bool:
    """True when the dynamic loader finds ``soname`` (the same search Qt's plugin makes,
    LD_LIBRARY_PATH included), which ``ldconfig -p`` alone would not tell."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        pass
    else:
        return True
    # A frozen build carries the libraries found on the build machine beside Qt's own.
    bundle = getattr(sys, "_MEIPASS", None)
    if not bundle:
        return False
    return any(Path(bundle, folder, soname).is_file() for folder in ("", "PySide6/Qt/lib"))


def _missing(libraries: Sequence[tuple[str, str]], present: LibraryCheck) -> list[tuple[str, str]]:
    return [(name, package) for name, package in libraries if not present(name)]


def _libraries_problem(missing: list[tuple[str, str]], what: str) -> StartupProblem:
    packages = tuple(dict.fromkeys(package for _name, package in missing))
    listed = "\n".join(f"  {name}  (package {package})" for name, package in missing)
    return StartupProblem(
        kind="libraries",
        summary=f"missing {', '.join(n for n, _p in missing)}; install: "
        f"sudo apt-get install {' '.join(packages)}",
        message=(
            f"POD Studio cannot open its window: {what} needs system libraries that are not "
            f"installed:\n{listed}\n"
            f"On Debian or Ubuntu install them with:\n"
            f"  sudo apt-get install {' '.join(packages)}\n"
            "(other distributions: install the packages that provide these files). "
            "The headless commands work without them: see `pod-studio --help`."
        ),
        packages=packages,
    )


def _no_display(why: str) -> StartupProblem:
    return StartupProblem(
        kind="display",
        summary=f"no display ({why})",
        message=(
            f"POD Studio cannot open its window: there is no display to show it on ({why}; "
            "a desktop session sets them).\n"
            "Start it from a desktop session, or work without a window: the headless "
            "commands (`pod-studio generate`, `pod-studio publish`, ... see "
            "`pod-studio --help`) need no display."
        ),
    )


def _platforms(env: Mapping[str, str]) -> list[str]:
    # QT_QPA_PLATFORM may list fallbacks ("wayland;xcb") and carry options ("xcb:opt=1").
    raw = env.get("QT_QPA_PLATFORM", "").strip()
    return [p.split(":", 1)[0].strip().lower() for p in raw.split(";") if p.strip()]


def gui_problem(
    env: Mapping[str, str] | None = None,
    *,
    present: LibraryCheck = library_loadable,
    platform: str = sys.platform,
) -> StartupProblem | None:
    """What stops Qt from opening a window here (``None``: nothing found).

    Only Linux is checked: Windows and macOS builds carry everything Qt needs."""
    env = os.environ if env is None else env
    if not platform.startswith("linux"):
        return None
    missing = _missing(QT_LIBRARIES, present)
    if missing:
        return _libraries_problem(missing, "Qt")
    chosen = _platforms(env)
    if chosen and chosen[0] in _NO_SERVER_PLATFORMS:
        return None
    has_x11 = bool(env.get("DISPLAY", "").strip())
    has_wayland = bool(env.get("WAYLAND_DISPLAY", "").strip())
    if chosen and chosen[0] not in ("xcb", "wayland", "wayland-egl"):
        return None  # a plugin we know nothing about: let Qt speak for it
    wants_wayland = chosen[0].startswith("wayland") if chosen else has_wayland
    # Qt falls back to X11 only when no platform is forced or xcb is listed as a fallback.
    x11_allowed = has_x11 and (not chosen or "xcb" in chosen)
    if wants_wayland:
        if has_wayland:
            missing = _missing(WAYLAND_LIBRARIES, present)
            if not missing:
                return None
            if not x11_allowed:
                return _libraries_problem(missing, "the Wayland display support of Qt")
        elif not x11_allowed:
            return _no_display("QT_QPA_PLATFORM asks for Wayland but WAYLAND_DISPLAY is not set")
    if not has_x11:
        return _no_display("DISPLAY and WAYLAND_DISPLAY are not set")
    missing = _missing(XCB_LIBRARIES, present)
    if missing:
        return _libraries_problem(missing, "the X11 (xcb) display support of Qt")
    return None


# --- self test ----------------------------------------------------------------------------


def run_isolated(fn: Callable[[], str], *, timeout: float = 60.0) -> tuple[bool, str]:
    """Run ``fn`` where a crash in native code cannot take this process down: in a forked
    child on Linux (no interpreter start-up, and it works the same in a frozen build), in
    this process elsewhere. Returns (finished normally, fn's result or what went wrong)."""
    if not sys.platform.startswith("linux"):
        try:
            return True, fn()
        except Exception as exc:  # noqa: BLE001 - the self test reports whatever broke
            return False, f"{type(exc).__name__}: {exc}"
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as err:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: report through the pipe, never return into the caller's code
            code = 0
            try:
                os.close(read_end)
                faulthandler.disable()  # the parent reports a crash; no second report
                os.dup2(err.fileno(), 2)
                sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
                try:
                    result = "ok " + fn()
                except BaseException as exc:  # noqa: BLE001 - reported to the parent
                    result = f"error {type(exc).__name__}: {exc}"
                os.write(write_end, result.encode("utf-8", "replace")[:8000])
            except BaseException:  # noqa: BLE001 - nothing may escape a forked child
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        timed_out = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                ready, _w, _x = select.select([read_end], [], [], left)
                if not ready:
                    continue
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(read_end)
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _pid, status = os.waitpid(pid, 0)
        err.seek(0)
        said = [ln.strip() for ln in err.read().decode("utf-8", "replace").splitlines()]
    said = [ln for ln in said if ln][-3:]
    text = b"".join(chunks).decode("utf-8", "replace")
    if timed_out:
        return False, f"no answer within {timeout:.0f} s"
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        return False, f"aborted ({name}); it said: {' / '.join(said) or 'nothing'}"
    if text.startswith("ok "):
        return True, text[3:]
    return False, text.removeprefix("error ") or f"exited with status {os.WEXITSTATUS(status)}"


def qt_check(
    probe: Callable[[], str] | None,
    env: Mapping[str, str] | None = None,
    *,
    present: LibraryCheck = library_loadable,
) -> Check:
    """The Qt platform plugin: prerequisites first, then ``probe`` (makes a QApplication and
    returns its platform name) in a child process."""
    name = "Qt platform plugin"
    problem = gui_problem(env, present=present)
    if problem is not None:
        return Check(name=name, status="FAIL", detail=problem.summary)
    if probe is None:
        return Check(name=name, status="FAIL", detail="not checked")
    ok, detail = run_isolated(probe)
    return Check(name=name, status="ok" if ok and detail else "FAIL", detail=detail or "none")


def run_selftest(probe: Callable[[], str] | None) -> int:
    """``pod-studio --selftest``: print one line per check; 0 when none FAILs."""
    from pod_studio.composition import diagnostics

    checks = [qt_check(probe), *diagnostics.selftest()]
    for check in checks:
        print(check.line(), flush=True)
    return 1 if any(c.status == "FAIL" for c in checks) else 0
