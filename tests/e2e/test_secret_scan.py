"""End to end: no secret ends up anywhere POD Studio writes or shows.

The main flows run in-process through the real composition (``pod_studio.__main__.main``):
generate against the sandbox ComfyUI, publish to an export folder and to the Printify sandbox
with a secret token, publish with a wrong token, and a ComfyUI URL with a password (refused).
Then every file under POD_STUDIO_HOME and the output folders (logs, manifests, sidecars,
statistics, Prometheus text, the job database), the captured stdout/stderr and the log
records are scanned for each secret used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pod_studio.__main__ import main
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.threaded import ServerThread

pytestmark = pytest.mark.timeout(240)

TOKEN = "pfy-SECRET-7f3a9c1e5b2d4a6f8e0c"
WRONG_TOKEN = "pfy-WRONG-0d9e8c7b6a5f4e3d2c1b"
URL_PASSWORD = "comfy-PASS-91ab27cd63ef"
SECRETS = (TOKEN, WRONG_TOKEN, URL_PASSWORD)


@pytest.fixture
def comfy() -> Iterator[ServerThread]:
    with ServerThread(ComfyUISandbox(seconds_per_job=0.05, steps=2)) as thread:
        yield thread


@pytest.fixture
def printify() -> Iterator[ServerThread]:
    with ServerThread(PrintifySandbox(tokens=(TOKEN,))) as thread:
        yield thread


def leaks(folder: Path) -> list[str]:
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for secret in SECRETS:
            if secret.encode() in data:
                found.append(f"{path.relative_to(folder)} contains {secret[:8]}…")
    return found


def test_no_secret_is_written_logged_or_shown(
    comfy: ServerThread,
    printify: ServerThread,
    tmp_path: Path,
    _isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    export = tmp_path / "export"
    shown: list[str] = []

    def run(*argv: str) -> int:
        code = main(list(argv))
        captured = capsys.readouterr()
        shown.append(captured.out + captured.err)
        return code

    # 1. generate through the real composition
    assert (
        run(
            "generate",
            "--server",
            comfy.url,
            "--prompt",
            "a green square",
            "--seed",
            "3",
            "--width",
            "1536",
            "--height",
            "1856",
            "--out",
            str(out),
        )  # fmt: skip
        == 0
    ), shown[-1]
    assert (out / "manifest.json").exists()
    # later commands use this ComfyUI too (settings), instead of the default address
    settings_file = _isolated_home / "config" / "settings.json"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps({"comfyui_servers": [comfy.url]}), encoding="utf-8")

    # 2. publish to the export folder and to the Printify sandbox with the secret token
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
    code = run(
        "publish", "--manifest", str(out), "--template", "Classic T-shirt",
        "--platform", "export", "--platform", "printify",
        "--printify-url", printify.url, "--export-dir", str(export),
    )  # fmt: skip
    assert code == 0, shown[-1]
    assert export.exists() and any(export.rglob("*.png")), shown[-1]

    # 3. a wrong token: refused, and the wrong token is not repeated either
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", WRONG_TOKEN)
    assert (
        run(
            "publish",
            "--manifest",
            str(out),
            "--template",
            "Classic T-shirt",
            "--platform",
            "printify",
            "--printify-url",
            printify.url,
        )  # fmt: skip
        != 0
    )

    # 4. a ComfyUI URL with a password: refused before anything connects
    port = comfy.url.rsplit(":", 1)[1]
    secret_url = f"http://admin:{URL_PASSWORD}@127.0.0.1:{port}"
    assert run("generate", "--server", secret_url, "--prompt", "x", "--out", str(out)) != 0
    assert "user name or password" in shown[-1]

    # 5. the statistics as JSON and as Prometheus text are written and scanned too
    assert run("stats", "--json", "--prometheus", str(tmp_path / "metrics.prom")) == 0
    assert "pod_runs_total" in (tmp_path / "metrics.prom").read_text(encoding="utf-8")

    # 6. scan everything written, shown and logged
    written = {p.name for p in [*_isolated_home.rglob("*"), *tmp_path.rglob("*")]}
    assert {"manifest.json", "jobs.sqlite3", "settings.json", "stats.json"} <= written, written
    assert any(name.endswith(".log") for name in written)
    assert leaks(_isolated_home) == []
    assert leaks(tmp_path) == []
    logs = list(_isolated_home.rglob("*.log"))
    assert logs and any(p.stat().st_size > 0 for p in logs)
    texts = [*shown, caplog.text, *(r.getMessage() for r in caplog.records)]
    for record in caplog.records:
        if record.exc_info and record.exc_info[1] is not None:
            texts.append(repr(record.exc_info[1]))
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
