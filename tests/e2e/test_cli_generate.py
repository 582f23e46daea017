"""End to end: the headless ``pod-studio`` commands against the sandbox ComfyUI, as subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread


@pytest.fixture
def comfy() -> Iterator[ServerThread]:
    with ServerThread(ComfyUISandbox(seconds_per_job=0.05, steps=2)) as thread:
        yield thread


def run_cli(*args: str, home: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POD_STUDIO_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "pod_studio", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_generate_writes_images_and_manifest(
    comfy: ServerThread, tmp_path: Path, _isolated_home: Path
) -> None:
    out = tmp_path / "out"
    proc = run_cli(
        "generate",
        "--server",
        comfy.url,
        "--prompt",
        "a red fox in snow",
        "--prompt",
        "ünïcode ☕ retro sunset",
        "--variations",
        "2",
        "--seed",
        "7",
        "--width",
        "256",
        "--height",
        "192",
        "--out",
        str(out),
        home=_isolated_home,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest) == 4
    assert sorted((e["prompt"], e["seed"]) for e in manifest) == sorted(
        [
            ("a red fox in snow", 7),
            ("a red fox in snow", 8),
            ("ünïcode ☕ retro sunset", 7),
            ("ünïcode ☕ retro sunset", 8),
        ]
    )
    for entry in manifest:
        path = out / entry["file"]
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        with Image.open(path) as im:
            assert im.size == (entry["width"], entry["height"]) == (256, 192)
        assert entry["server"] == comfy.url
        assert entry["prompt_id"]
        assert entry["seconds"] > 0
    # Distinct prompts/seeds give distinct pictures.
    assert len({e["sha256"] for e in manifest}) == 4
    assert "finished 4 ok, 0 failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    # the run counts in the statistics
    stats = run_cli("stats", "--json", home=_isolated_home)
    pipeline = json.loads(stats.stdout)["pipeline"]
    assert (pipeline["runs"], pipeline["images"], pipeline["successful_runs"]) == (1, 4, 1)


def test_failed_job_gives_nonzero_exit_and_one_line_per_failure(
    comfy: ServerThread, tmp_path: Path, _isolated_home: Path
) -> None:
    sandbox: ComfyUISandbox = comfy.server
    comfy.call(lambda: sandbox.error_next_prompt("KSampler", "CUDA out of memory"))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("first prompt\n\n   \nsecond prompt\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(
        "generate",
        "--server",
        comfy.url,
        "--prompts-file",
        str(prompts),
        "--seed",
        "1",
        "--width",
        "128",
        "--height",
        "128",
        "--out",
        str(out),
        home=_isolated_home,
    )
    assert proc.returncode == 1
    failed = [line for line in proc.stderr.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1
    assert "KSampler" in failed[0] and "out of memory" in failed[0]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest) == 1  # the other job's image is kept


def test_unreachable_server_is_reported_plainly(tmp_path: Path, _isolated_home: Path) -> None:
    proc = run_cli(
        "generate",
        "--server",
        "http://127.0.0.1:9",
        "--prompt",
        "x",
        "--out",
        str(tmp_path / "o"),
        home=_isolated_home,
    )
    assert proc.returncode != 0
    assert "127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"nodes": [], "links": []}', "API"),
        ("[1, 2, 3]", "workflow"),
    ],
)
def test_bad_workflow_files_get_a_clear_message(
    comfy: ServerThread, tmp_path: Path, _isolated_home: Path, content: str, expected: str
) -> None:
    wf = tmp_path / "wf.json"
    wf.write_text(content, encoding="utf-8")
    proc = run_cli(
        "generate",
        "--server",
        comfy.url,
        "--workflow",
        str(wf),
        "--prompt",
        "x",
        "--out",
        str(tmp_path / "o"),
        home=_isolated_home,
    )
    assert proc.returncode == 2, proc.stderr
    assert expected.lower() in proc.stderr.lower()
    assert "Traceback" not in proc.stderr


def test_missing_model_is_named_by_preflight(
    comfy: ServerThread, tmp_path: Path, _isolated_home: Path
) -> None:
    proc = run_cli(
        "generate",
        "--server",
        comfy.url,
        "--checkpoint",
        "nope.safetensors",
        "--prompt",
        "x",
        "--out",
        str(tmp_path / "o"),
        home=_isolated_home,
    )
    assert proc.returncode != 0
    assert "nope.safetensors" in proc.stderr


def test_empty_and_oversized_prompt_lists(tmp_path: Path, _isolated_home: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    proc = run_cli(
        "generate", "--prompts-file", str(empty), "--out", str(tmp_path / "o"), home=_isolated_home
    )
    assert proc.returncode == 2
    assert "no prompts" in proc.stderr
    big = tmp_path / "big.txt"
    big.write_text("\n".join(f"prompt {i}" for i in range(1001)), encoding="utf-8")
    proc = run_cli(
        "generate", "--prompts-file", str(big), "--out", str(tmp_path / "o"), home=_isolated_home
    )
    assert proc.returncode == 2
    assert "1001 prompts" in proc.stderr


def test_doctor_verdicts(comfy: ServerThread, _isolated_home: Path) -> None:
    ok = run_cli("doctor", "--server", comfy.url, home=_isolated_home)
    assert ok.returncode == 0, ok.stderr
    assert "ComfyUI 0.3.64" in ok.stdout
    assert "Sandbox GPU" in ok.stdout
    assert "ready to generate" in ok.stdout
    bad = run_cli("doctor", "--server", "http://127.0.0.1:9", home=_isolated_home)
    assert bad.returncode == 3
    assert "not usable" in bad.stdout


@pytest.mark.parametrize(
    "command", ["generate", "publish", "doctor", "stats", "sandbox", "queue", "retry", "resume"]
)
def test_every_command_has_help(command: str, _isolated_home: Path) -> None:
    proc = run_cli(command, "--help", home=_isolated_home)
    assert proc.returncode == 0
    assert f"pod-studio {command}" in proc.stdout


def test_headless_commands_do_not_import_qt(_isolated_home: Path) -> None:
    code = (
        "import sys; from pod_studio.cli.main import main; main(['stats', '--json']); "
        "print('QT' if any(m.startswith('PySide6') for m in sys.modules) else 'NOQT')"
    )
    env = {**os.environ, "POD_STUDIO_HOME": str(_isolated_home)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert proc.stdout.strip().endswith("NOQT")


def test_selftest_checks_what_a_packaged_build_needs(_isolated_home: Path) -> None:
    proc = run_cli("--selftest", home=_isolated_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 5, lines
    # a machine without an OS keyring warns (tokens then come from the environment)
    assert all(line.startswith("ok") or line.startswith("WARN keyring") for line in lines), lines
    assert any("SQLite WAL" in line for line in lines)
