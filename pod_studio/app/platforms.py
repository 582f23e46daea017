"""App layer: the Shopify and Etsy settings controllers.

- ``ShopifyController``: checks the shop domain (``*.myshopify.com``) and API version, saves
  them, puts the admin token in the secret store (OS keyring, never the settings file) and
  tests the connection, in that order, in one background task.
- ``EtsyController``: saves the app's keystring and shared secret in the secret store,
  connects (the browser consent; the URL to open comes out as ``sig_open_url``), reconnects,
  disconnects, lists the shop's shipping profiles, return policies and readiness states, and
  saves the picks.

Every outcome is a signal with the message in words; nothing here blocks the GUI thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pydantic
from PySide6.QtCore import QObject, Signal

from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import user_message
from pod_studio.domain.settings import AppSettings, SecretName

log = logging.getLogger(__name__)

SaveSettings = Callable[[AppSettings], Awaitable[None]]
SaveSecret = Callable[[str, str], Awaitable[None]]
Verdict = Callable[[], Awaitable[str]]

_KEY_RE = re.compile(r"[A-Za-z0-9_-]{6,200}")


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def check_shopify(
    settings: AppSettings, domain: str, api_version: str
) -> tuple[AppSettings | None, str]:
    """(settings with the Shopify section changed, "") or (None, the problem in words)."""
    section = settings.shopify.model_dump(mode="python")
    section.update(shop_domain=domain.strip(), api_version=api_version.strip())
    if not section["shop_domain"]:
        return None, "Enter the shop domain, e.g. my-shop.myshopify.com."
    try:
        return settings.with_changes(shopify=section), ""
    except pydantic.ValidationError as exc:
        return None, _first_error(exc)


def check_etsy_keys(keystring: str, shared_secret: str) -> str:
    """ "" when both look like Etsy app keys, else the problem in words."""
    if not keystring.strip() or not shared_secret.strip():
        return "Paste both the keystring and the shared secret of your Etsy app."
    if not _KEY_RE.fullmatch(keystring.strip()):
        return "The keystring has characters an Etsy keystring cannot have."
    if any(c.isspace() for c in shared_secret.strip()):
        return "The shared secret cannot contain spaces."
    return ""


class _Base(QObject):
    """What both controllers share: the settings they edit, the stores they save to, the
    connection test, and running one background task that answers with a signal."""

    def __init__(
        self,
        runner: TaskRunner,
        settings: Callable[[], AppSettings],
        save_settings: SaveSettings,
        save_secret: SaveSecret,
        test: Verdict,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._settings = settings
        self._save_settings = save_settings
        self._save_secret = save_secret
        self._test = test

    def current(self) -> AppSettings:
        return self._settings()

    def _spawn(
        self,
        work: Coroutine[Any, Any, str],
        done: Any,
        name: str,
    ) -> None:
        async def run() -> None:
            try:
                message = await work
            except Exception as exc:  # noqa: BLE001 - the answer to the seller, in words
                log.info("%s failed: %s", name, type(exc).__name__)
                done.emit(False, user_message(exc))
                return
            done.emit(True, message)

        self._runner.spawn(run(), name=name)


class ShopifyController(_Base):
    """Signals:
    sig_validation_failed(str message): the typed values are refused (nothing saved).
    sig_tested(bool ok, str message): saved (and token stored), then tested.
    """

    sig_validation_failed = Signal(str)
    sig_tested = Signal(bool, str)

    def save_and_test(self, domain: str, api_version: str, token: str = "") -> bool:
        new, problem = check_shopify(self._settings(), domain, api_version)
        if new is None:
            self.sig_validation_failed.emit(problem)
            return False
        token = token.strip()

        async def work() -> str:
            await self._save_settings(new)
            if token:
                await self._save_secret(SecretName.SHOPIFY_TOKEN.value, token)
            return await self._test()

        self._spawn(work(), self.sig_tested, "shopify-test")
        return True


class EtsyController(_Base):
    """Signals:
    sig_validation_failed(str message)
    sig_keys_saved(bool ok, str message)
    sig_open_url(str url): open this consent page in the browser.
    sig_connected(bool ok, str message): the shop's name, or why not.
    sig_disconnected(bool ok, str message)
    sig_choices_loaded(dict lists) / sig_choices_failed(str message): [(id, label)] per list.
    sig_choices_saved(bool ok, str message)
    sig_tested(bool ok, str message)
    """

    sig_validation_failed = Signal(str)
    sig_keys_saved = Signal(bool, str)
    sig_open_url = Signal(str)
    sig_connected = Signal(bool, str)
    sig_disconnected = Signal(bool, str)
    sig_choices_loaded = Signal(dict)
    sig_choices_failed = Signal(str)
    sig_choices_saved = Signal(bool, str)
    sig_tested = Signal(bool, str)

    def __init__(
        self,
        runner: TaskRunner,
        settings: Callable[[], AppSettings],
        save_settings: SaveSettings,
        save_secret: SaveSecret,
        *,
        connect: Callable[[Callable[[str], object]], Awaitable[str]],
        disconnect: Callable[[], Awaitable[None]],
        test: Verdict,
        choices: Callable[[], Awaitable[dict[str, list[tuple[str, str]]]]],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(runner, settings, save_settings, save_secret, test, parent)
        self._connect = connect
        self._disconnect = disconnect
        self._choices = choices

    def save_keys(self, keystring: str, shared_secret: str) -> bool:
        problem = check_etsy_keys(keystring, shared_secret)
        if problem:
            self.sig_validation_failed.emit(problem)
            return False
        key, secret = keystring.strip(), shared_secret.strip()

        async def work() -> str:
            await self._save_secret(SecretName.ETSY_KEYSTRING.value, key)
            await self._save_secret(SecretName.ETSY_SHARED_SECRET.value, secret)
            return "keys saved in the system keyring"

        self._spawn(work(), self.sig_keys_saved, "etsy-keys")
        return True

    def connect_shop(self) -> None:
        """Connect (or reconnect): the consent page comes out as ``sig_open_url``."""

        async def work() -> str:
            shop = await self._connect(self.sig_open_url.emit)
            return f"connected to {shop}"

        self._spawn(work(), self.sig_connected, "etsy-connect")

    def disconnect_shop(self) -> None:
        async def work() -> str:
            await self._disconnect()
            return "disconnected: POD Studio forgot the Etsy tokens"

        self._spawn(work(), self.sig_disconnected, "etsy-disconnect")

    def test(self) -> None:
        async def work() -> str:
            return await self._test()

        self._spawn(work(), self.sig_tested, "etsy-test")

    def load_choices(self) -> None:
        async def run() -> None:
            try:
                lists = await self._choices()
            except Exception as exc:  # noqa: BLE001 - shown beside the drop-downs
                self.sig_choices_failed.emit(user_message(exc))
                return
            self.sig_choices_loaded.emit(lists)

        self._runner.spawn(run(), name="etsy-choices")

    def save_choices(self, picks: dict[str, int | None]) -> bool:
        """``picks``: shop_id, shipping_profile_id, return_policy_id, readiness_state_id."""
        settings = self._settings()
        section = settings.etsy.model_dump(mode="python")
        section.update(picks)
        try:
            new = settings.with_changes(etsy=section)
        except pydantic.ValidationError as exc:
            self.sig_validation_failed.emit(_first_error(exc))
            return False

        async def work() -> str:
            await self._save_settings(new)
            return "Etsy choices saved"

        self._spawn(work(), self.sig_choices_saved, "etsy-save")
        return True
