"""Exit reasons in words, the out-of-memory hint, gauges and the process settings section."""

from __future__ import annotations

import signal

import pytest
from pydantic import ValidationError

from pod_studio.domain.comfyui_process import (
    ComfyUIGauges,
    describe_exit,
    looks_out_of_memory,
)
from pod_studio.domain.settings import AppSettings, ComfyUIProcessSettings


@pytest.mark.parametrize(
    "line",
    [
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "Allocation on device 0 would exceed allowed memory. (out of memory)",
        "Killed",
        "[12345.6] Out of memory: Killed process 4242 (python)",
        "MemoryError",
        "OOM while loading the checkpoint",
    ],
)
def test_out_of_memory_is_recognised(line: str) -> None:
    assert looks_out_of_memory(["Starting server", line])
    reason = describe_exit(1, ["Starting server", line])
    assert reason.out_of_memory and "ran out of memory" in reason.summary
    assert "--lowvram" in reason.summary


@pytest.mark.parametrize(
    "line", ["Starting server", "Prompt executed in 3.2 seconds", "Model loaded (killer app)"]
)
def test_ordinary_output_is_no_memory_problem(line: str) -> None:
    assert not looks_out_of_memory([line])
    assert not describe_exit(1, [line]).out_of_memory


def test_reasons_name_the_exit_code_or_signal() -> None:
    assert describe_exit(0, []).summary == "ComfyUI exited normally (exit code 0)"
    crashed = describe_exit(3, ["a", "", "Traceback (most recent call last):", "ValueError: x"])
    assert crashed.summary.startswith("ComfyUI exited with code 3")
    assert "last output: a | Traceback (most recent call last): | ValueError: x" in crashed.summary
    assert crashed.last_lines == ("a", "Traceback (most recent call last):", "ValueError: x")

    killed = describe_exit(-signal.SIGKILL, [])
    assert killed.signal_name == "SIGKILL" and "out-of-memory killer" in killed.summary
    asked = describe_exit(-signal.SIGKILL, [], requested=True)
    assert "out-of-memory killer" not in asked.summary
    assert describe_exit(-signal.SIGTERM, []).summary == "ComfyUI was killed by SIGTERM"
    assert "exit code unknown" in describe_exit(None, []).summary
    assert describe_exit(None, [], note="stopped by hand").summary == "stopped by hand"
    assert len(describe_exit(1, [str(i) for i in range(100)], tail=5).last_lines) == 5


def test_gauges() -> None:
    gauges = ComfyUIGauges(
        url="http://x", queue_running=1, queue_pending=3, vram_total=100, vram_free=25
    )
    assert gauges.queue_length == 4
    assert gauges.vram_used_fraction == pytest.approx(0.75)
    assert ComfyUIGauges(url="http://x").vram_used_fraction is None


def test_process_settings_default_to_off() -> None:
    settings = AppSettings().comfyui_process
    assert settings == ComfyUIProcessSettings()
    assert not settings.enabled and not settings.auto_start
    assert not settings.keep_running_on_exit and settings.auto_restart
    assert settings.port == 8188 and settings.url == "http://127.0.0.1:8188"
    # An older settings file without the section still loads.
    assert AppSettings.model_validate({"schema_version": 1}).comfyui_process == settings


def test_process_settings_validate() -> None:
    parsed = ComfyUIProcessSettings(
        folder="  /opt/ComfyUI ", extra_args='--lowvram --output-directory "/my out"'
    )
    assert parsed.folder == "/opt/ComfyUI"
    assert parsed.extra_args == ["--lowvram", "--output-directory", "/my out"]
    with pytest.raises(ValidationError, match="port field"):
        ComfyUIProcessSettings(extra_args=["--port", "9000"])
    with pytest.raises(ValidationError, match="127.0.0.1 only"):
        ComfyUIProcessSettings(extra_args=["--listen=0.0.0.0"])
    with pytest.raises(ValidationError, match="No closing quotation"):
        ComfyUIProcessSettings(extra_args='--x "open')
    with pytest.raises(ValidationError):
        ComfyUIProcessSettings(port=70000)
    with pytest.raises(ValidationError, match="ComfyUI folder"):
        ComfyUIProcessSettings(enabled=True)
    enabled = AppSettings().with_changes(
        comfyui_process={"enabled": True, "folder": "/opt/ComfyUI", "port": 8190}
    )
    assert enabled.comfyui_process.url == "http://127.0.0.1:8190"
