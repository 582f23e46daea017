"""Hostile-input corpus for local files: settings, the cache, the job database, workflows,
images. Each case asserts a clear message and that nothing already there is lost (valid
settings survive, a broken file is kept aside, other images stay readable).

Kinds covered: settings with an invalid value, a wrong-typed section, an inconsistent section,
a wrong-typed list item, a URL with a password, truncated JSON; a garbage cache directory; a
garbage and a truncated job database; workflows that are not JSON, not objects, or have wrong
node shapes (hypothesis); images that are empty, truncated, not images, or promise too many
pixels.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import struct
import zlib
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pod_studio.adapters.storage.cache import DiskCache
from pod_studio.adapters.storage.images import inspect_image
from pod_studio.adapters.storage.ledger import SqliteJobLedger
from pod_studio.adapters.storage.secrets import Redactor
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.domain.errors import ValidationError, WorkflowError
from pod_studio.domain.jobs import JobKind
from pod_studio.domain.settings import AppSettings
from pod_studio.domain.workflow import WorkflowTemplate

# --- settings ----------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "comfyui_servers": ["http://10.0.0.5:8188"],
    "max_in_flight_per_server": 3,
    "auto_publish": True,
    "generation": {"width": 1536, "height": 2048, "variations": 4, "negative": "blurry"},
}


def load(tmp_path: Path, data: Any) -> tuple[AppSettings, list[str]]:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    result = SettingsStore(path).load()
    return result.settings, result.warnings


def corrupt_copies(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}.corrupt-*"))


def backups(tmp_path: Path) -> list[Path]:
    return corrupt_copies(tmp_path, "settings.json")


def test_one_invalid_value_falls_back_alone(tmp_path: Path) -> None:
    data = json.loads(json.dumps(GOOD))
    data["generation"]["width"] = -5
    original = json.dumps(data)
    s, [warning] = load(tmp_path, data)
    assert s.generation.width == 1024  # the default, for that field only
    assert (s.generation.height, s.generation.variations, s.generation.negative) == (
        2048,
        4,
        "blurry",
    )
    assert s.comfyui_servers == ["http://10.0.0.5:8188"] and s.max_in_flight_per_server == 3
    assert s.auto_publish
    assert "generation.width" in warning and "everything else was kept" in warning
    [backup] = backups(tmp_path)
    assert backup.read_text() == original and backup.name in warning
    # the repaired file is what the next start reads, without a warning
    again = SettingsStore(tmp_path / "settings.json").load()
    assert again.settings == s and again.warnings == []


@pytest.mark.parametrize(
    "broken,field",
    [
        ({"generation": "big"}, "generation"),
        ({"retry": {"printify": {"initial_delay": 100, "max_delay": 1}}}, "retry.printify"),
        ({"comfyui_servers": ["http://ok:8188", 42]}, "comfyui_servers"),
        ({"max_in_flight_per_server": 1000}, "max_in_flight_per_server"),
        ({"printify": {"base_url": "ftp://printify"}}, "printify.base_url"),
    ],
)
def test_invalid_sections_and_items_fall_back_and_the_rest_survives(
    tmp_path: Path, broken: dict[str, Any], field: str
) -> None:
    data = {**json.loads(json.dumps(GOOD)), **broken}
    s, [warning] = load(tmp_path, data)
    assert field in warning
    assert s.auto_publish and s.max_in_flight_per_server in (3, 2)
    if field != "generation":
        assert s.generation.width == 1536
    if field != "comfyui_servers":
        assert s.comfyui_servers == ["http://10.0.0.5:8188"]
    assert len(backups(tmp_path)) == 1


def test_a_server_url_with_a_password_is_dropped_and_never_repeated(tmp_path: Path) -> None:
    data = {**GOOD, "comfyui_servers": ["http://admin:hunter2-secret@10.0.0.5:8188"]}
    s, [warning] = load(tmp_path, data)
    assert s.comfyui_servers == AppSettings().comfyui_servers
    assert "hunter2-secret" not in warning and "comfyui_servers" in warning
    assert "hunter2-secret" not in (tmp_path / "settings.json").read_text()


@pytest.mark.parametrize("content", ['{"generation": {"width": 10', "", "\x00\x01", "[]"])
def test_unreadable_settings_give_defaults_and_keep_the_file(tmp_path: Path, content: str) -> None:
    s, [warning] = load(tmp_path, content)
    assert s == AppSettings()
    [backup] = backups(tmp_path)
    assert backup.read_text() == content and backup.name in warning


def test_the_redactor_masks_url_user_info() -> None:
    r = Redactor()
    text = r.redact("GET http://bob:pa55word-x@host:8188/view failed; ws://u@h/ws")
    assert text == "GET http://***@host:8188/view failed; ws://***@h/ws"


# --- cache and job database --------------------------------------------------------------


def test_a_garbage_cache_is_replaced_and_kept_aside(tmp_path: Path) -> None:
    directory = tmp_path / "catalog"
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"not sqlite at all" * 100)
    cache = DiskCache(directory)
    try:
        assert cache.get("blueprints") is None
        cache.set("blueprints", [{"id": 5}])
        assert cache.get("blueprints") == [{"id": 5}]
    finally:
        cache.close()
    assert list(tmp_path.glob("catalog.corrupt-*"))


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
@pytest.mark.asyncio
async def test_a_broken_job_database_is_kept_aside_and_a_new_one_works(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "jobs.sqlite3"
    if kind == "garbage":
        path.write_bytes(b"\x00garbage" * 1000)
    else:
        good = tmp_path / "good.sqlite3"
        conn = sqlite3.connect(good)
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
        conn.commit()
        conn.close()
        path.write_bytes(good.read_bytes()[:1500])
    original = path.read_bytes()
    ledger = SqliteJobLedger(path)
    try:
        warnings = await ledger.open()
        job = await ledger.add_job(JobKind.GENERATE, {})
        assert await ledger.get_job(job.id) is not None
    finally:
        await ledger.aclose()
    kept = corrupt_copies(tmp_path, "jobs.sqlite3")
    if kept:  # sqlite may read a truncated header as an empty database: then nothing is lost
        assert kept[0].read_bytes() == original and any(kept[0].name in w for w in warnings)


# --- workflows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,words",
    [
        ('{"3": {"class_type": ', "not valid JSON"),
        ("[1, 2, 3]", ""),
        ('{"3": "KSampler"}', ""),
        ('{"3": {"inputs": {}}}', ""),
        ('{"3": {"class_type": 7, "inputs": []}}', ""),
        ("{}", ""),
    ],
)
def test_broken_workflows_are_workflow_errors(text: str, words: str) -> None:
    with pytest.raises(WorkflowError) as info:
        WorkflowTemplate.from_json_text(text, name="bad.json")
    assert words in str(info.value) and info.value.user_message


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), _json.map(json.dumps)))
def test_workflow_parsing_raises_only_workflow_errors(text: str) -> None:
    try:
        WorkflowTemplate.from_json_text(text)
    except WorkflowError as exc:
        assert exc.user_message


# --- images ------------------------------------------------------------------------------


def png_bytes(width: int = 32, height: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def lying_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
    return head + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF) + png_bytes()[33:]


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "empty"),
        (png_bytes()[:60], "not a readable image"),
        (b"<html><title>404</title></html>", "not a readable image"),
        (lying_png(90_000, 90_000), "too large"),
    ],
    ids=["empty", "truncated", "html", "pixel-bomb"],
)
def test_hostile_images_are_refused_with_a_reason(data: bytes, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        inspect_image(data)
    assert inspect_image(png_bytes()).width == 32  # a good image is still read fine


# --- messages ----------------------------------------------------------------------------


def test_an_unexpected_exception_never_shows_its_raw_text() -> None:
    from pod_studio.domain.errors import user_message

    text = user_message(RuntimeError("Authorization: Bearer abc123-secret /home/me/.x"))
    assert "abc123-secret" not in text and "RuntimeError" not in text
    assert "log" in text


def test_server_urls_with_user_info_are_refused_with_the_password_masked() -> None:
    from pod_studio.domain.urls import check_server_url

    for url in ("http://bob:pw-secret-1@host:8188", "ftp://bob:pw-secret-1@host", "bob@host"):
        with pytest.raises(ValidationError) as info:
            check_server_url(url)
        assert "pw-secret-1" not in str(info.value) + info.value.user_message


def test_every_entry_refuses_a_server_url_with_a_password(tmp_path: Path) -> None:
    from pod_studio.adapters.comfyui.client import ComfyUIClient
    from pod_studio.adapters.marketplaces.printify import PrintifyClient
    from pod_studio.composition.core import build_core
    from pod_studio.domain.settings import PrintifySettings

    url = "http://admin:pw-secret-2@127.0.0.1:8188"
    with pytest.raises(pydantic.ValidationError) as model_error:
        AppSettings(comfyui_servers=[url])
    assert "pw-secret-2" not in str(model_error.value).split("input_value")[0]
    with pytest.raises(pydantic.ValidationError):
        PrintifySettings(base_url="https://u:pw-secret-2@api.printify.com")
    for build in (
        lambda: build_core(servers=[url]),
        lambda: ComfyUIClient(url),
        lambda: PrintifyClient(lambda: "t", base_url=url),
    ):
        with pytest.raises(ValidationError) as info:
            build()
        assert "pw-secret-2" not in str(info.value) + info.value.user_message


def test_a_secret_store_handed_to_build_core_is_registered_with_the_redactor() -> None:
    from pod_studio.adapters.storage.secrets import MemorySecretStore
    from pod_studio.composition.core import REDACTOR, build_core

    store = MemorySecretStore({"printify_token": "handed-in-secret-5521"})
    core = build_core(secrets=store)
    asyncio.run(core.aclose())
    assert REDACTOR.redact("token handed-in-secret-5521 used") == "token *** used"
