"""Tests for adapters/storage/logs.py: file logging through a queue, redaction, idempotency."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from pod_studio.adapters.storage.logs import (
    configure_logging,
    is_configured,
    shutdown_logging,
)
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.secrets import Redactor

SENTINEL = "tok_SENTINEL_abcdef123456"


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    yield
    shutdown_logging()
    assert root.handlers == before
    root.setLevel(level)


def read_lines() -> list[dict[str, object]]:
    text = app_paths().log_file.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_redacted_and_idempotent(clean_logging: None) -> None:
    paths = app_paths()
    root = logging.getLogger()
    n_before = len(root.handlers)
    redactor = Redactor([SENTINEL])
    configure_logging(paths, logging.DEBUG, redactor)
    configure_logging(paths, logging.DEBUG, redactor)  # again: still one handler
    assert is_configured()
    assert len(root.handlers) == n_before + 1
    assert logging.getLogger("httpx").level == logging.WARNING

    log = logging.getLogger("pod_studio.test")
    log.info("using %s", SENTINEL, extra={"job_id": "j1", "service": "printify"})
    log.debug("Authorization: Bearer %s", "abc123xyz")
    try:
        raise ValueError(f"bad {SENTINEL}")
    except ValueError:
        log.exception("failed")
    shutdown_logging()
    assert not is_configured()
    shutdown_logging()  # twice is fine

    raw = paths.log_file.read_text(encoding="utf-8")
    assert SENTINEL not in raw and "abc123xyz" not in raw
    lines = read_lines()
    assert [entry["msg"] for entry in lines] == [
        "using ***",
        "Authorization: Bearer ***",
        "failed",
    ]
    assert lines[0]["job_id"] == "j1" and lines[0]["service"] == "printify"
    assert lines[0]["logger"] == "pod_studio.test" and lines[0]["level"] == "INFO"
    assert "ValueError: bad ***" in str(lines[2]["exc"])
    assert len(root.handlers) == n_before


def test_plain_format_with_default_extras(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = app_paths()
    configure_logging(paths, "INFO", None, stderr=True, json_lines=False)
    logging.getLogger("pod_studio.x").info("hello")
    logging.getLogger("pod_studio.x").debug("hidden")
    shutdown_logging()
    text = paths.log_file.read_text(encoding="utf-8")
    assert "INFO pod_studio.x: hello" in text and "hidden" not in text
    assert "hello" in capsys.readouterr().err
