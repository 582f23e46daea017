"""Tests for domain/settings.py and adapters/storage/settings_store.py."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.settings_store import (
    SecretInSettingsError,
    SettingsStore,
    find_secret_like,
)
from pod_studio.domain.settings import AppSettings, RetryPolicySettings


def test_defaults() -> None:
    s = AppSettings()
    assert s.schema_version == 1
    assert s.comfyui_servers == ["http://127.0.0.1:8188"]
    assert s.max_in_flight_per_server == 2
    assert (s.generation.width, s.generation.height, s.generation.variations) == (1024, 1024, 1)
    assert s.generation.negative == ""
    assert s.printify.base_url == "https://api.printify.com" and s.printify.shop_id is None
    assert s.shopify.api_version == "2026-07" and s.shopify.effective_base_url is None
    assert s.etsy.base_url == "https://openapi.etsy.com"
    assert not s.auto_publish and not s.first_run_done and not s.demo_mode
    assert s.retry_policy("printify").max_retries == 5
    assert s.breaker("unknown").failure_threshold == 5
    assert s.window.geometry_b64 == ""
    fields = " ".join(AppSettings.model_fields)
    assert "token" not in fields and "secret" not in fields


def test_validation() -> None:
    s = AppSettings(comfyui_servers=[" http://gpu:8188/ ", "https://b.example", "http://gpu:8188"])
    assert s.comfyui_servers == ["http://gpu:8188", "https://b.example"]
    for bad in ([], ["ftp://x"], ["localhost:8188"], ["http://user:pw@host"]):
        with pytest.raises(pydantic.ValidationError):
            AppSettings(comfyui_servers=bad)
    with pytest.raises(pydantic.ValidationError):
        AppSettings.model_validate({"max_in_flight_per_server": 0})
    with pytest.raises(pydantic.ValidationError):
        RetryPolicySettings(initial_delay=10, max_delay=1)
    with pytest.raises(pydantic.ValidationError):
        AppSettings.model_validate({"shopify": {"shop_domain": "not a domain!"}})
    shop = AppSettings.model_validate(
        {"shopify": {"shop_domain": "https://My-Shop.myshopify.com/"}}
    )
    assert shop.shopify.effective_base_url == "https://my-shop.myshopify.com"
    assert AppSettings(prompt_input_override=" 6.text ").prompt_input_override == "6.text"
    with pytest.raises(pydantic.ValidationError):
        AppSettings(prompt_input_override="six")


def test_with_changes_validates() -> None:
    s = AppSettings().with_changes(auto_publish=True, max_in_flight_per_server=4)
    assert s.auto_publish and s.max_in_flight_per_server == 4
    with pytest.raises(pydantic.ValidationError):
        AppSettings().with_changes(comfyui_servers=["nope"])


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    result = SettingsStore(tmp_path / "settings.json").load()
    assert result.settings == AppSettings() and result.warnings == []


def test_save_and_load_round_trip_and_unknown_keys(tmp_path: Path) -> None:
    store = SettingsStore(app_paths().settings_file)
    settings = AppSettings(
        comfyui_servers=["http://a:1", "http://b:2"],
        printify={"shop_id": 42},  # type: ignore[arg-type]
        product_templates=[{"name": "tee", "blueprint": 6}],
        first_run_done=True,
    )
    store.save(settings)
    assert store.path.is_relative_to(tmp_path)
    assert store.load().settings == settings
    data = json.loads(store.path.read_text())
    data["feature_from_the_future"] = {"x": 1}
    store.path.write_text(json.dumps(data))
    result = store.load()
    assert result.settings == settings and result.warnings == []


def test_newer_schema_warns(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": 9, "demo_mode": True}))
    result = SettingsStore(path).load()
    assert result.settings.demo_mode
    assert len(result.warnings) == 1 and "newer POD Studio" in result.warnings[0]


@pytest.mark.parametrize(
    "content,reason",
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "JSON object"),
        (b"\xff\xfe\x00bad", "cannot read"),
    ],
)
def test_corrupt_file_is_moved_aside(tmp_path: Path, content: str | bytes, reason: str) -> None:
    path = tmp_path / "settings.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    original = path.read_bytes()
    result = SettingsStore(path).load()
    assert result.settings == AppSettings()
    [backup] = list(tmp_path.glob("settings.json.corrupt-*"))
    assert backup.read_bytes() == original
    assert not path.exists()
    [warning] = result.warnings
    assert backup.name in warning and reason in warning


def test_secrets_guard_refuses_secret_like_keys(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    sneaky = AppSettings(product_templates=[{"name": "tee", "api_token": "x"}])
    with pytest.raises(SecretInSettingsError, match="api_token"):
        store.save(sneaky)
    assert not store.path.exists()


def test_secrets_guard_refuses_known_secret_values(tmp_path: Path) -> None:
    secret = "shpat_0123456789"
    store = SettingsStore(tmp_path / "settings.json", known_secrets=lambda: [secret])
    with pytest.raises(SecretInSettingsError) as info:
        store.save(AppSettings(export_dir=secret))
    assert secret not in str(info.value)
    store.save(AppSettings(export_dir="/tmp/out"))
    assert store.load().settings.export_dir == "/tmp/out"


def test_find_secret_like() -> None:
    assert find_secret_like({"a": {"Password": 1}, "b": [{"client_secret": 2}]}) == [
        "a.Password",
        "b[0].client_secret",
    ]
    assert find_secret_like({"a": ["v1", "known"]}, ["known"]) == ["a[1]"]
    assert find_secret_like(AppSettings().model_dump(mode="json")) == []


@pytest.mark.parametrize(
    "content,field",
    [
        ('{"max_in_flight_per_server": "many"}', "max_in_flight_per_server"),
        ('{"comfyui_servers": []}', "comfyui_servers"),
    ],
)
def test_an_invalid_value_alone_falls_back_to_its_default(
    tmp_path: Path, content: str, field: str
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    result = SettingsStore(path).load()
    assert result.settings == AppSettings()
    [backup] = list(tmp_path.glob("settings.json.corrupt-*"))
    assert backup.read_text() == content
    [warning] = result.warnings
    assert field in warning and backup.name in warning and "defaults are used" in warning
    assert SettingsStore(path).load() == result.__class__(result.settings, [])
