"""Domain layer: the app's settings model and the secret-store port.

Settings are persisted as JSON by ``adapters/storage/settings_store.py``. Unknown keys are
ignored on load (a newer version's file still opens), but every known key is validated.
Settings never hold secrets: tokens live behind ``SecretStorePort`` (OS keyring or env vars).
"""

from __future__ import annotations

import re
import shlex
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pod_studio.domain.errors import ValidationError
from pod_studio.domain.urls import parse_http_url

SETTINGS_SCHEMA_VERSION = 1
DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188"  # = domain.urls.EXAMPLE_URL

_MYSHOPIFY_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9-]{1,63})*$")


def normalise_http_url(value: str) -> str:
    """``domain.urls.parse_http_url`` for the settings model's validators (pydantic wants a
    ``ValueError``)."""
    try:
        return parse_http_url(value)
    except ValidationError as exc:
        raise ValueError(exc.user_message) from None


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class GenerationDefaults(_Section):
    """Values the prompt editor starts with."""

    width: int = Field(default=1024, ge=64, le=8192)
    height: int = Field(default=1024, ge=64, le=8192)
    variations: int = Field(default=1, ge=1, le=64)
    negative: str = ""
    checkpoint: str | None = None


class PrintifySettings(_Section):
    base_url: str = "https://api.printify.com"
    shop_id: int | None = None
    # how long to wait for an answer before the request counts as timed out (and is retried)
    read_timeout: float = Field(default=30.0, ge=1.0, le=300.0)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return normalise_http_url(v)


class ShopifySettings(_Section):
    """``shop_domain`` is ``<name>.myshopify.com`` (a bare ``<name>`` is completed; the Admin
    API lives only there, never on a storefront's own domain); ``base_url`` overrides it
    (sandbox, proxies). ``client_id`` is set for a Dev Dashboard app using the
    client-credentials grant (its secret is ``SecretName.SHOPIFY_CLIENT_SECRET``); without it
    the pasted admin token ``SecretName.SHOPIFY_TOKEN`` is used."""

    shop_domain: str = ""
    base_url: str | None = None
    api_version: str = "2026-07"
    client_id: str = ""

    @field_validator("shop_domain")
    @classmethod
    def _check_domain(cls, v: str) -> str:
        v = v.strip().lower()
        if v.startswith(("http://", "https://")):
            v = urlsplit(v).hostname or ""
        if v and "." not in v:
            v += ".myshopify.com"
        if v and not (_HOST_RE.match(v) and _MYSHOPIFY_RE.match(v)):
            raise ValueError(
                f"{v!r} is not a Shopify shop domain (expected e.g. my-shop.myshopify.com)"
            )
        return v

    @field_validator("client_id")
    @classmethod
    def _check_client_id(cls, v: str) -> str:
        v = v.strip()
        if v and not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", v):
            raise ValueError("the Shopify client id contains characters a client id cannot have")
        return v

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        return normalise_http_url(v) if v else None

    @field_validator("api_version")
    @classmethod
    def _check_version(cls, v: str) -> str:
        if not re.fullmatch(r"\d{4}-\d{2}|unstable", v):
            raise ValueError(f"{v!r} is not a Shopify API version (expected e.g. 2025-07)")
        return v

    @property
    def effective_base_url(self) -> str | None:
        """The admin API origin, or None when no shop is configured."""
        if self.base_url:
            return self.base_url
        return f"https://{self.shop_domain}" if self.shop_domain else None


class EtsySettings(_Section):
    """Etsy Open API v3. ``base_url`` serves resources, ``auth_base_url`` the token endpoint,
    ``connect_url`` the consent page; the OAuth redirect is ``http://127.0.0.1:<redirect_port>
    /etsy/callback`` (register it with the Etsy app; 0 = any free port, for the sandbox).
    The ids come from the shop's lists (Settings drop-downs)."""

    base_url: str = "https://openapi.etsy.com"
    auth_base_url: str = "https://api.etsy.com"
    connect_url: str = "https://www.etsy.com/oauth/connect"
    redirect_port: int = Field(default=8765, ge=0, le=65535)
    shop_id: int | None = None
    shipping_profile_id: int | None = None
    return_policy_id: int | None = None
    readiness_state_id: int | None = None
    taxonomy_id: int | None = None
    who_made: Literal["i_did", "someone_else", "collective"] = "someone_else"
    when_made: str = "made_to_order"

    @field_validator("base_url", "auth_base_url", "connect_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return normalise_http_url(v)


class RetryPolicySettings(_Section):
    max_retries: int = Field(default=5, ge=0, le=50)
    initial_delay: float = Field(default=1.0, gt=0, le=3600)
    max_delay: float = Field(default=60.0, gt=0, le=86400)
    backoff_multiplier: float = Field(default=2.0, ge=1.0, le=10.0)

    @model_validator(mode="after")
    def _check_order(self) -> RetryPolicySettings:
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must be at least initial_delay")
        return self


class BreakerSettings(_Section):
    failure_threshold: int = Field(default=5, ge=1, le=1000)
    window_seconds: float = Field(default=60.0, gt=0, le=86400)
    reset_timeout: float = Field(default=30.0, gt=0, le=86400)
    # the share of the window's calls that must have failed too (see BreakerConfig)
    failure_rate: float = Field(default=0.5, gt=0, le=1)


# Options POD Studio sets itself on the ComfyUI command line.
_MANAGED_ARGS = ("--port", "--listen")


class ComfyUIProcessSettings(_Section):
    """A local ComfyUI server that POD Studio starts and looks after (off by default).

    ``folder`` holds ComfyUI's ``main.py``; ``python`` is the interpreter to run it with
    (empty: the folder's own ``venv``/``.venv`` if there is one, else ``python3``).
    """

    enabled: bool = False
    folder: str = ""
    python: str = ""
    extra_args: list[str] = Field(default_factory=list)
    port: int = Field(default=8188, ge=1, le=65535)
    auto_start: bool = False
    auto_restart: bool = True
    keep_running_on_exit: bool = False

    @field_validator("folder", "python")
    @classmethod
    def _check_path(cls, v: str) -> str:
        v = v.strip()
        if "\x00" in v:
            raise ValueError("a path cannot contain a NUL character")
        return v

    @field_validator("extra_args", mode="before")
    @classmethod
    def _split_args(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return shlex.split(v)
            except ValueError as exc:
                raise ValueError(f"extra arguments: {exc}") from exc
        return v

    @field_validator("extra_args")
    @classmethod
    def _check_args(cls, args: list[str]) -> list[str]:
        for arg in args:
            if "\x00" in arg:
                raise ValueError("an argument cannot contain a NUL character")
            name = arg.split("=", 1)[0]
            if name in _MANAGED_ARGS:
                raise ValueError(
                    f"{name} is set by POD Studio: choose the port in the port field"
                    if name == "--port"
                    else f"{name} is set by POD Studio (the server listens on 127.0.0.1 only)"
                )
        return args

    @model_validator(mode="after")
    def _check_enabled(self) -> ComfyUIProcessSettings:
        if self.enabled and not self.folder:
            raise ValueError("choose the ComfyUI folder (the one with main.py)")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class WindowSettings(_Section):
    geometry_b64: str = ""
    state_b64: str = ""


class DesktopSettings(_Section):
    """How the window behaves on the desktop: notifications when a long batch ends (one that
    took at least ``notify_after_seconds``, or while the window is in the background), an
    optional sound, and whether closing the window keeps POD Studio running in the tray."""

    notify: bool = True
    notify_sound: bool = False
    notify_after_seconds: float = Field(default=20.0, ge=0.0, le=3600.0)
    close_to_tray: bool = False


SERVICE_NAMES = ("comfyui", "printify", "shopify", "etsy")


def _default_retry() -> dict[str, RetryPolicySettings]:
    return {name: RetryPolicySettings() for name in SERVICE_NAMES}


def _default_breakers() -> dict[str, BreakerSettings]:
    return {name: BreakerSettings() for name in SERVICE_NAMES}


class AppSettings(_Section):
    """Everything the seller can configure, except secrets."""

    schema_version: int = SETTINGS_SCHEMA_VERSION
    comfyui_servers: list[str] = Field(default_factory=lambda: [DEFAULT_COMFYUI_URL])
    max_in_flight_per_server: int = Field(default=2, ge=1, le=32)
    workflow_path: str | None = None
    # "node_id.input_name" of the positive prompt input, when auto-detection is wrong.
    prompt_input_override: str | None = None
    # Fixed workflow inputs, "node_id.input_name" -> value (e.g. {"3.steps": 30}).
    workflow_values: dict[str, Any] = Field(default_factory=dict)
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults)
    printify: PrintifySettings = Field(default_factory=PrintifySettings)
    shopify: ShopifySettings = Field(default_factory=ShopifySettings)
    etsy: EtsySettings = Field(default_factory=EtsySettings)
    export_dir: str | None = None
    auto_publish: bool = False
    retry: dict[str, RetryPolicySettings] = Field(default_factory=_default_retry)
    breakers: dict[str, BreakerSettings] = Field(default_factory=_default_breakers)
    product_templates: list[dict[str, Any]] = Field(default_factory=list)
    window: WindowSettings = Field(default_factory=WindowSettings)
    desktop: DesktopSettings = Field(default_factory=DesktopSettings)
    comfyui_process: ComfyUIProcessSettings = Field(default_factory=ComfyUIProcessSettings)
    first_run_done: bool = False
    demo_mode: bool = False

    @field_validator("comfyui_servers")
    @classmethod
    def _check_servers(cls, servers: list[str]) -> list[str]:
        cleaned: list[str] = []
        for s in servers:
            url = normalise_http_url(s)
            if url not in cleaned:
                cleaned.append(url)
        if not cleaned:
            raise ValueError("configure at least one ComfyUI server")
        return cleaned

    @field_validator("workflow_values")
    @classmethod
    def _check_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        for key in values:
            if not re.fullmatch(r"[^.\s]+\.[^.\s]+", key):
                raise ValueError(f"{key!r} is not 'node_id.input_name'")
        return values

    @field_validator("prompt_input_override")
    @classmethod
    def _check_override(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not re.fullmatch(r"[^.\s]+\.[^.\s]+", v):
            raise ValueError(f"{v!r} is not 'node_id.input_name'")
        return v

    def retry_policy(self, service: str) -> RetryPolicySettings:
        return self.retry.get(service) or RetryPolicySettings()

    def breaker(self, service: str) -> BreakerSettings:
        return self.breakers.get(service) or BreakerSettings()

    def with_changes(self, **changes: Any) -> AppSettings:
        """A validated copy with ``changes`` applied (``model_copy`` would skip validation)."""
        data = self.model_dump(mode="python")
        data.update(changes)
        return AppSettings.model_validate(data)


# --- secrets ---------------------------------------------------------------------------------


class SecretName(StrEnum):
    """Names of the secrets POD Studio knows (keys in the secret store)."""

    PRINTIFY_TOKEN = "printify_token"
    SHOPIFY_TOKEN = "shopify_token"
    SHOPIFY_CLIENT_SECRET = "shopify_client_secret"
    ETSY_KEYSTRING = "etsy_keystring"
    ETSY_SHARED_SECRET = "etsy_shared_secret"
    ETSY_TOKEN = "etsy_token"
    ETSY_REFRESH_TOKEN = "etsy_refresh_token"


@runtime_checkable
class SecretStorePort(Protocol):
    """Where tokens live. Calls may block (OS keyring): call them through ``asyncio.to_thread``."""

    @property
    def writable(self) -> bool: ...

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...

    def describe(self) -> str:
        """One line for the health panel: which store is active, or why it is unavailable."""
        ...
