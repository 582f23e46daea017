"""Hostile input through the ``pod-studio`` commands a seller runs (subprocesses): every case
ends in bounded time with one sentence naming the problem, no traceback, the documented exit
class (2 bad input, 3 unreachable) and nothing written where it should not be.

Kinds covered here: server URLs (IPv6 brackets, control characters, spaces, schemes, ports),
a ComfyUI that answers ``POST /prompt`` with something that is not ComfyUI's or refuses the
graph with node errors on a 200,
``--out`` (a file, a planted manifest link), prompts with control characters, workflows (a
cycle, a link to a missing node, no output node), an unreachable server, and a data folder
that is a file, read-only or full (the last two in a private mount namespace where the
machine allows one).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread
from tests.e2e.test_cli_generate import run_cli

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def comfy() -> Iterator[ServerThread]:
    with ServerThread(ComfyUISandbox(seconds_per_job=0.05, steps=2)) as thread:
        yield thread


def _clean(proc: subprocess.CompletedProcess[str]) -> str:
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    assert "Logging error" not in text, text
    return text


def _images(folder: Path) -> list[Path]:
    return list(folder.glob("*.png")) if folder.is_dir() else []


@pytest.mark.parametrize(
    "server,words",
    [
        ("http://[::1:8188", "IPv6 address goes in brackets"),
        ("http://127.0.0.1:8188\r\nX-Injected: 1", "control character"),
        ("http://comfy server.local:8188", "contains a space"),
        ("gopher://127.0.0.1:8188", "not an http(s) URL"),
        ("http://127.0.0.1:70000", "port that is not a number"),
    ],
)
def test_a_bad_server_url_is_bad_input(server: str, words: str, tmp_path: Path) -> None:
    proc = run_cli(
        "generate", "--server", server, "--prompt", "a fox", "--out", str(tmp_path / "out"),
        home=tmp_path / "home",
    )  # fmt: skip
    assert words in _clean(proc)
    assert proc.returncode == 2
    assert not _images(tmp_path / "out")


def test_out_naming_a_file_is_refused_before_anything_is_generated(
    comfy: ServerThread, tmp_path: Path
) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"the seller's own file")
    proc = run_cli(
        "generate", "--server", comfy.url, "--prompt", "a fox", "--out", str(out),
        home=tmp_path / "home",
    )  # fmt: skip
    assert "is a file, not a folder" in _clean(proc)
    assert proc.returncode == 2
    assert out.read_bytes() == b"the seller's own file"
    assert not (tmp_path / "home" / "data" / "images").exists() or not any(
        (tmp_path / "home" / "data" / "images").rglob("*.png")
    )


def test_a_manifest_link_planted_in_out_is_never_written_through(
    comfy: ServerThread, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_text("[]\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").symlink_to(outside)
    proc = run_cli(
        "generate", "--server", comfy.url, "--prompt", "a fox", "--out", str(out),
        home=tmp_path / "home",
    )  # fmt: skip
    assert "is a link to another place" in _clean(proc)
    assert proc.returncode == 2
    assert outside.read_text(encoding="utf-8") == "[]\n"


def test_prompts_with_control_characters_are_refused_with_their_line(
    comfy: ServerThread, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"a fox\n\x00\x00\nan owl\n")
    proc = run_cli(
        "generate", "--server", comfy.url, "--prompts-file", str(prompts),
        "--out", str(tmp_path / "out"), home=tmp_path / "home",
    )  # fmt: skip
    assert "prompt line(s) [2] contain control characters" in _clean(proc)
    assert proc.returncode == 2
    assert not _images(tmp_path / "out")


WORKFLOWS = {
    "cycle": (
        {
            "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {
                "class_type": "SaveImage",
                "inputs": {"images": ["2", 0], "filename_prefix": "x"},
            },
            "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "p", "clip": ["5", 1]}},
        },
        "cycle: node 1 (ImageInvert) → node 2 (ImageInvert) → node 1",
    ),
    "missing link": (
        {
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["9", 0]}},
            "3": {
                "class_type": "SaveImage",
                "inputs": {"images": ["2", 0], "filename_prefix": "x"},
            },
        },
        "linked to node 9, which is not in the workflow",
    ),
    "no output": (
        {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
            },
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        },
        "no output node",
    ),
}


@pytest.mark.parametrize("kind", sorted(WORKFLOWS))
def test_a_broken_workflow_is_bad_input_and_named(
    kind: str, comfy: ServerThread, tmp_path: Path
) -> None:
    graph, words = WORKFLOWS[kind]
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(graph), encoding="utf-8")
    proc = run_cli(
        "generate", "--server", comfy.url, "--workflow", str(path), "--prompt-input", "1.width",
        "--prompt", "a fox", "--out", str(tmp_path / "out"), home=tmp_path / "home",
    )  # fmt: skip
    assert words in _clean(proc)
    assert proc.returncode == 2


def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    proc = run_cli(
        "generate", "--server", "http://127.0.0.1:9", "--prompt", "a fox",
        "--out", str(tmp_path / "out"), home=tmp_path / "home",
    )  # fmt: skip
    _clean(proc)
    assert proc.returncode == 3


def test_a_data_folder_that_is_a_file_is_said_before_anything_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder", encoding="utf-8")
    for args in (("queue",), ("stats",), ("generate", "--prompt", "x", "--out", str(tmp_path))):
        proc = run_cli(*args, home=home)
        assert f"cannot use its folder {home}: it is a file, not a folder" in _clean(proc)
        assert proc.returncode == 2
    assert home.read_text(encoding="utf-8") == "not a folder"


def _in_private_mount(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``script`` under ``unshare -m`` (a mount namespace of its own), or skip."""
    unshare = shutil.which("unshare")
    if unshare is None or sys.platform != "linux":
        pytest.skip("needs unshare (util-linux) on Linux")
    probe = subprocess.run([unshare, "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("this machine allows no mount namespace (needs CAP_SYS_ADMIN)")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PY": sys.executable}
    return subprocess.run(
        [unshare, "-m", "sh", "-ec", script],
        capture_output=True, text=True, timeout=90, env=env, check=False, cwd=ROOT,
    )  # fmt: skip


def test_a_read_only_data_folder_is_one_sentence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = (
        f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" && '
        f'POD_STUDIO_HOME="{home}" "$PY" -m pod_studio queue'
    )
    proc = _in_private_mount(script, tmp_path)
    text = _clean(proc)
    assert "it is read-only" in text or "Read-only file system" in text, text
    assert proc.returncode == 2, text


def test_a_full_disk_is_one_sentence_and_no_traceback(comfy: ServerThread, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = (
        f'mount -t tmpfs -o size=256k tmpfs "{home}" && '
        f'POD_STUDIO_HOME="{home}" "$PY" -m pod_studio generate --server {comfy.url} '
        f'--prompt "a fox" --variations 4 --width 512 --height 512 --out "{home}/out"'
    )
    proc = _in_private_mount(script, tmp_path)
    text = _clean(proc)
    assert proc.returncode in (1, 2, 3), text
    assert "disk is full" in text.lower() or "No space left" in text, text


NOT_IN_LIST = "ckpt_name: 'x.safetensors' not in ['a.safetensors']"


class HostileComfy(ComfyUISandbox):
    """The sandbox ComfyUI, except for ``POST /prompt``, answered as ``mode`` says."""

    def __init__(self, mode: str, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.mode = mode

    def make_app(self) -> web.Application:
        app = super().make_app()

        @web.middleware
        async def hostile(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
            if request.method != "POST" or not request.path.endswith("/prompt"):
                return await handler(request)
            if self.mode == "garbage":
                return web.Response(text="<html>router login</html>", content_type="text/html")
            return web.json_response(  # ComfyUI's validation answer, but with status 200
                {
                    "error": {
                        "type": "prompt_outputs_failed_validation",
                        "message": "Prompt outputs failed validation",
                        "details": "",
                    },
                    "node_errors": {
                        "4": {
                            "errors": [
                                {
                                    "type": "value_not_in_list",
                                    "message": "Value not in list",
                                    "details": NOT_IN_LIST,
                                    "extra_info": {"input_name": "ckpt_name"},
                                }
                            ],
                            "dependent_outputs": ["9"],
                            "class_type": "CheckpointLoaderSimple",
                        }
                    },
                }
            )

        app.middlewares.insert(0, hostile)
        return app


def test_node_errors_on_a_200_are_shown_and_are_bad_input(tmp_path: Path) -> None:
    with ServerThread(HostileComfy("node_errors", seconds_per_job=0.05)) as server:
        proc = run_cli(
            "generate", "--server", server.url, "--prompt", "a fox", "--horizon", "30",
            "--out", str(tmp_path / "out"), home=tmp_path / "home",
        )  # fmt: skip
    text = _clean(proc)
    assert "node 4 (CheckpointLoaderSimple): ckpt_name: 'x.safetensors' not in" in text
    assert "not like a ComfyUI server" not in text
    assert proc.returncode == 2


def test_a_prompt_answered_with_garbage_is_charged_and_ends_within_the_horizon(
    tmp_path: Path,
) -> None:
    """Every attempt is charged (after six the job is dead-lettered with this reason), and
    the command stops once the next retry is due beyond ``--horizon``. The breaker's part (a
    call whose own failures open it is still charged) is in ``test_resilience``."""
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "settings.json").write_text(
        json.dumps(
            {
                "breakers": {"comfyui": {"failure_threshold": 1000}},
                "retry": {"comfyui": {"max_retries": 2, "initial_delay": 0.05, "max_delay": 0.1}},
            }
        ),
        encoding="utf-8",
    )
    with ServerThread(HostileComfy("garbage", seconds_per_job=0.05)) as server:
        proc = run_cli(
            "generate", "--server", server.url, "--prompt", "a fox", "--horizon", "5",
            "--out", str(tmp_path / "out"), home=home, timeout=60,
        )  # fmt: skip
    text = _clean(proc)
    assert f"{server.url} answered, but not like a ComfyUI server does" in text
    assert "UNFINISHED" in text
    assert proc.returncode == 1  # unfinished: it stays in the queue
    queue = run_cli("queue", "--json", home=home)
    [job] = json.loads(queue.stdout)["entries"]
    assert job["state"] == "retry_wait" and job["attempts"] == 1
