"""Composition (Qt-free): diagnostics the window and the commands share.

``doctor`` (is this a ComfyUI server, which version, which device), the statistics snapshot
and its text and Prometheus forms, the redacting log set-up every entry point uses, and the
self test a fresh install or a frozen build runs (``pod-studio --selftest``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pod_studio.adapters.comfyui.client import diagnose_server, probe_server
from pod_studio.adapters.storage.metrics import render_prometheus, write_prometheus
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.stats_store import JsonStatsStore
from pod_studio.composition.core import REDACTOR
from pod_studio.composition.publishing import ETSY_BUDGET_FILE
from pod_studio.composition.startup import Check
from pod_studio.domain.errors import PodStudioError, ValidationError, user_message
from pod_studio.domain.models import ServerProblem
from pod_studio.domain.urls import check_server_url, mask_url
from pod_studio.services.ratelimit import EtsyBudget
from pod_studio.services.stats import StatsService

# --- doctor and stats ----------------------------------------------------------------------


@dataclass
class DoctorReport:
    ok: bool
    text: str


async def doctor(url: str) -> DoctorReport:
    try:
        url = check_server_url(url)
    except ValidationError as exc:  # e.g. a user name or password in the URL
        return DoctorReport(False, f"✗ {mask_url(url)}\n  not usable: {exc.user_message}")
    started = time.perf_counter()
    try:
        info = await probe_server(url, timeout=5.0)
    except PodStudioError as exc:
        # the same words as the window: not ComfyUI / offline / too old / busy
        problem, line = await diagnose_server(url, timeout=5.0)
        reason = line if problem is not ServerProblem.NONE else user_message(exc)
        advice = {
            ServerProblem.NOT_COMFYUI: "  Check the address and port: ComfyUI listens on 8188.",
            ServerProblem.WRONG_VERSION: "  Update ComfyUI.",
            ServerProblem.BUSY: "  Wait for ComfyUI to finish, or restart it.",
        }.get(
            problem,
            "  Start ComfyUI (python main.py --listen 127.0.0.1 --port 8188), "
            "check the URL, or try `pod-studio --demo`.",
        )
        return DoctorReport(False, f"✗ {url}\n  not usable: {reason}\n{advice}")
    problem, line = await diagnose_server(url, timeout=5.0)
    if problem is ServerProblem.WRONG_VERSION:
        return DoctorReport(False, f"✗ {url}\n  not usable: {line}\n  Update ComfyUI.")

    ms = (time.perf_counter() - started) * 1000
    lines = [
        f"✓ {url} answers as ComfyUI {info.comfyui_version or '(version unknown)'} in {ms:.0f} ms"
    ]
    for d in info.devices:
        lines.append(
            f"  device: {d.name} ({d.type}), VRAM {d.vram_free / 1024**3:.1f} GB free "
            f"of {d.vram_total / 1024**3:.1f} GB"
        )
    if not info.devices:
        lines.append("  device: none reported")
    if info.queue_remaining is not None:
        lines.append(f"  queue: {info.queue_remaining} prompt(s) waiting or running")
    if info.python_version:
        lines.append(
            f"  python {info.python_version.split()[0]}, pytorch {info.pytorch_version or '?'}"
        )
    lines.append("  verdict: ready to generate")
    return DoctorReport(True, "\n".join(lines))


def load_stats_snapshot() -> dict[str, Any]:
    paths = app_paths()
    stats = StatsService(store=JsonStatsStore(paths.stats_file))
    stats.load()
    snapshot = stats.snapshot()
    budgets = budgets_left(paths.data_dir)
    if budgets:
        snapshot["budgets"] = budgets
    return snapshot


def budgets_left(data_dir: Path) -> dict[str, str]:
    """What is left of the day budgets, by POD Studio's own count of the calls it made
    (Etsy: 10,000 requests per rolling day); read from the budget's file, no call is made."""
    out: dict[str, str] = {}
    path = data_dir / ETSY_BUDGET_FILE
    if path.is_file():
        try:
            budget = EtsyBudget(path, per_second=None)
        except Exception as exc:  # noqa: BLE001 - a damaged file must not break the stats
            out["etsy"] = f"unknown ({exc.__class__.__name__})"
        else:
            try:
                out["etsy"] = budget.describe()
            finally:
                budget.close()
    return out


def export_prometheus(snapshot: dict[str, Any], path: Path) -> None:
    write_prometheus(snapshot, path)


def prometheus_text(snapshot: dict[str, Any]) -> str:
    return render_prometheus(snapshot)


def format_stats(snapshot: dict[str, Any]) -> str:
    pipe = snapshot.get("pipeline", {})
    lines = ["Pipeline"]
    for key in (
        "runs",
        "successful_runs",
        "failed_runs",
        "success_rate",
        "images",
        "products",
        "errors",
        "avg_products_per_run",
    ):
        if key in pipe:
            value = pipe[key]
            if key == "success_rate":
                # as the Statistics dock: no rate before the first finished run
                runs = pipe.get("runs", 0)
                value = f"{value * 100:.1f} %" if runs and isinstance(value, int | float) else "—"
            lines.append(f"  {key.replace('_', ' '):<24} {value}")
    services = snapshot.get("services", {})
    if services:
        lines.append("Services")
        for name, c in sorted(services.items()):
            lines.append(
                f"  {name:<24} calls {c.get('calls', 0)}, failures {c.get('failures', 0)}, "
                f"retries {c.get('retries', 0)}, p50 {c.get('p50_ms', '-')} ms, "
                f"p95 {c.get('p95_ms', '-')} ms"
            )
    budgets = snapshot.get("budgets", {})
    if budgets:
        lines.append("Day budgets")
        for name, text in sorted(budgets.items()):
            lines.append(f"  {name:<24} {text}")
    breakers = snapshot.get("breakers", {})
    if breakers:
        lines.append("Circuit breakers")
        for name, state in sorted(breakers.items()):
            lines.append(f"  {name:<24} {state}")
    return "\n".join(lines)


# --- files and logging for the composition roots -------------------------------------------


def resource_file(*parts: str) -> Path | None:
    from pod_studio.adapters.storage.resources import resource_path

    path = resource_path(*parts)
    return path if path.exists() else None


def configure_logging(*, stderr: bool = False) -> None:
    from pod_studio.adapters.storage.logs import configure_logging as _configure

    _configure(app_paths().ensure(), redactor=REDACTOR, stderr=stderr)


def log_file() -> Path:
    """Where the log is written."""
    return app_paths().log_file


def shutdown_logging() -> None:
    from pod_studio.adapters.storage.logs import shutdown_logging as _shutdown

    _shutdown()


# --- self test (for packaged builds) -------------------------------------------------------


def selftest() -> list[Check]:
    """Checks a frozen or fresh install can do its work, one ``Check`` each (Qt is checked by
    ``startup.qt_check``).

    Every module imports, SQLite runs in WAL mode in the data folder, the OS keyring can hold
    tokens (a warning, not a failure, when it cannot: tokens then come from environment
    variables), and Pillow writes and reads a PNG with an sRGB profile (print files need both).
    """
    import importlib
    import io
    import pkgutil
    import sqlite3
    import tempfile

    from PIL import Image

    import pod_studio
    from pod_studio.adapters.imaging import SRGB_ICC

    results: list[Check] = []
    failed: list[str] = []
    count = 0
    for mod in pkgutil.walk_packages(pod_studio.__path__, "pod_studio."):
        if mod.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(mod.name)
            count += 1
        except Exception as exc:  # noqa: BLE001 - a self test reports whatever broke
            failed.append(f"{mod.name}: {type(exc).__name__}: {exc}")
    results.append(_check("modules import", not failed, "; ".join(failed) or f"{count} modules"))
    paths = app_paths().ensure()
    try:
        with tempfile.TemporaryDirectory(dir=paths.data_dir) as tmp:
            conn = sqlite3.connect(Path(tmp) / "selftest.sqlite3")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.close()
        results.append(_check("SQLite WAL in the data folder", mode == "wal", f"{paths.data_dir}"))
    except (OSError, sqlite3.Error) as exc:
        results.append(_check("SQLite WAL in the data folder", False, str(exc)))
    results.append(_keyring_check())
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(
        buf, "PNG", icc_profile=SRGB_ICC, dpi=(300, 300)
    )
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        ok = im.info.get("icc_profile") == SRGB_ICC and round(im.info["dpi"][0]) == 300
    results.append(_check("PNG with sRGB profile and 300 DPI", ok, "Pillow round trip"))
    return results


def _check(name: str, ok: bool, detail: str) -> Check:
    return Check(name=name, status="ok" if ok else "FAIL", detail=detail)


def _keyring_check() -> Check:
    from pod_studio.adapters.storage.secrets import ENV_VARS, OsKeyringSecretStore

    store = OsKeyringSecretStore()
    if store.available:
        return Check(name="keyring", status="ok", detail=store.describe())
    env_var = ENV_VARS["printify_token"]
    # A headless machine legitimately has no keyring, so this warns instead of failing.
    return Check(
        name="keyring",
        status="WARN",
        detail=f"no usable OS keyring ({store.reason.split('. ')[0].removeprefix('the ')}): "
        f"the app cannot save tokens; give them as environment variables instead "
        f"({env_var} for Printify)",
    )
