"""Services layer: the platform registry — the marketplace clients the engine publishes with.

``PlatformRegistry`` builds each platform's client from the seller's settings and stored
secrets (Printify's token, Shopify's shop and token, Etsy's OAuth tokens), puts it in the
publish service and the health checks, rebuilds it when the settings or a secret change,
tests a connection with values typed in a dialog (before they are saved), lists the
platforms with why one cannot be used, and runs Etsy's connect / disconnect and its choice
lists. The composition injects how each client is built (``PlatformBuilders``): this module
never imports an adapter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pod_studio.domain.errors import PodStudioError, user_message
from pod_studio.domain.jobs import StepStatus, idempotency_key
from pod_studio.domain.ledger_port import JobLedger
from pod_studio.domain.marketplace import Shop
from pod_studio.domain.orchestration import publish_job_id
from pod_studio.domain.publishing import PublishMarketplace, PublishPlatform
from pod_studio.domain.settings import AppSettings
from pod_studio.domain.views import PlatformChoice
from pod_studio.services.health import HealthResult, HealthService
from pod_studio.services.lifecycle import aclose_logged
from pod_studio.services.orchestrator import Orchestrator
from pod_studio.services.publish_platforms import PrintifyShop
from pod_studio.services.publishing import PublishService
from pod_studio.services.resilience import BreakerManager

log = logging.getLogger(__name__)

PLATFORM_LABELS = {
    "export": "Export folder",
    "printify": "Printify",
    "shopify": "Shopify",
    "etsy": "Etsy",
}


# --- what the registry needs of the clients ----------------------------------------------------


class PlatformClient(PublishMarketplace, Protocol):
    async def health_check(self) -> tuple[bool, str]: ...

    async def aclose(self) -> None: ...


class PrintifyPort(PlatformClient, PrintifyShop, Protocol):
    async def shops(self) -> list[Shop]: ...


class Choice(Protocol):
    @property
    def id(self) -> object: ...

    @property
    def label(self) -> str: ...


class EtsyPort(PlatformClient, Protocol):
    async def shops(self) -> list[Shop]: ...

    async def shipping_profiles(self) -> Sequence[Choice]: ...

    async def return_policies(self) -> Sequence[Choice]: ...

    async def readiness_states(self) -> Sequence[Choice]: ...

    def remaining_today(self) -> int | None: ...


class EtsyAuthPort(Protocol):
    async def is_connected(self) -> bool: ...

    async def connect(self, open_browser: Callable[[str], object]) -> object: ...

    async def disconnect(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class PlatformBuilders:
    """How the composition builds each platform's clients. The blocking ones (the OS keyring)
    are called in a worker thread."""

    read_printify_token: Callable[[], str | None]
    # (settings, token) -> the live client, under the engine's guard
    printify: Callable[[AppSettings, str], PrintifyPort]
    # (settings, token, base URL) -> a throwaway client (own breaker) for typed values
    scratch_printify: Callable[[AppSettings, str, str | None], PrintifyPort]
    read_shopify_secrets: Callable[[AppSettings], tuple[str | None, str | None]]
    # (settings, admin token, client secret); raises PodStudioError / ValueError
    shopify: Callable[[AppSettings, str | None, str | None], PlatformClient]
    # each client's publish strategy (what differs per platform when publishing)
    printify_platform: Callable[[PrintifyPort], PublishPlatform]
    shopify_platform: Callable[[PlatformClient], PublishPlatform]
    etsy_platform: Callable[[EtsyPort], PublishPlatform]
    etsy_auth: Callable[[AppSettings], EtsyAuthPort]
    # (settings, auth, Printify's client as the catalog or None)
    etsy: Callable[[AppSettings, EtsyAuthPort, PrintifyPort | None], EtsyPort]
    # a platform's mockup image URLs -> their bytes (a plain client: no token goes along)
    download_mockups: Callable[[Sequence[str]], Awaitable[list[bytes]]]
    save_secret: Callable[[str, str], None]
    describe_secrets: Callable[[], str]
    register_secret: Callable[[str], None]
    printify_help: str
    shopify_help: str
    etsy_help: str


def _health(client: PlatformClient) -> Callable[[], Awaitable[HealthResult]]:
    async def check() -> HealthResult:
        ok, detail = await client.health_check()
        return HealthResult(reachable=ok, auth_ok=ok, detail=detail)

    return check


def _etsy_health(client: EtsyPort) -> Callable[[], Awaitable[HealthResult]]:
    async def check() -> HealthResult:
        ok, detail = await client.health_check()
        left = client.remaining_today()
        if left is not None:
            detail = f"{detail}; {left} request(s) left today"
        return HealthResult(reachable=ok, auth_ok=ok, detail=detail)

    return check


def _failed(service: str, text: str) -> PodStudioError:
    return PodStudioError(text, service=service, user_message=text)


class PlatformRegistry:
    """The platforms the engine publishes to, built from the current settings."""

    def __init__(
        self,
        builders: PlatformBuilders,
        *,
        settings: Callable[[], AppSettings],
        publishing: PublishService,
        orchestrator: Orchestrator,
        health: HealthService,
        breakers: BreakerManager,
        ledger: JobLedger,
    ) -> None:
        self._build = builders
        self._settings = settings
        self._publishing = publishing
        self._orchestrator = orchestrator
        self._health = health
        self._breakers = breakers
        self._ledger = ledger
        self.printify: PrintifyPort | None = None
        self.shopify: PlatformClient | None = None
        self.etsy: EtsyPort | None = None
        self.etsy_auth: EtsyAuthPort | None = None
        self.problems: dict[str, str] = {"printify": "", "shopify": "", "etsy": ""}

    # --- building -----------------------------------------------------------------------------

    async def configure_all(self) -> None:
        await self.configure_printify()
        await self.configure_shopify()
        await self.configure_etsy()

    async def apply(self, old: AppSettings, new: AppSettings) -> None:
        """Rebuild the platforms whose settings changed (a new endpoint: a clean breaker)."""
        if new.printify != old.printify:
            if new.printify.base_url != old.printify.base_url:
                self._breakers.reset("printify")
            await self.configure_printify()
        if new.etsy != old.etsy:
            await self.configure_etsy()
        if new.shopify != old.shopify:
            if new.shopify.base_url != old.shopify.base_url:
                self._breakers.reset("shopify")
            await self.configure_shopify()

    def _use(self, platform: str, strategy: PublishPlatform | None) -> None:
        """Publish to ``platform`` with ``strategy`` (``None``: not usable now)."""
        self._publishing.set_platform(platform, strategy)
        self._orchestrator.set_publisher(platform, self._publishing)

    async def configure_printify(self) -> None:
        """(Re)build the Printify client from the stored token (read off the event loop)."""
        problem = ""
        try:
            token = await asyncio.to_thread(self._build.read_printify_token)
        except PodStudioError as exc:
            token, problem = None, user_message(exc)
        old, self.printify = self.printify, None
        strategy = None
        if token:
            client = self._build.printify(self._settings(), token)
            self.printify, strategy = client, self._build.printify_platform(client)
            self._health.add_check("printify", _health(client))
        self.problems["printify"] = "" if token else problem or self._build.printify_help
        self._use("printify", strategy)
        await aclose_logged(old, "the replaced Printify client")

    async def configure_shopify(self) -> None:
        """(Re)build the Shopify client from the settings and the stored token."""
        settings = self._settings()
        old, self.shopify = self.shopify, None
        problem = ""
        token = secret = None
        strategy = None
        if settings.shopify.shop_domain:
            try:
                token, secret = await asyncio.to_thread(self._build.read_shopify_secrets, settings)
            except PodStudioError as exc:
                problem = user_message(exc)
        if settings.shopify.shop_domain and (token or secret):
            try:
                client = self._build.shopify(settings, token, secret)
            except (PodStudioError, ValueError) as exc:
                problem = user_message(exc)
            else:
                self.shopify, strategy = client, self._build.shopify_platform(client)
                self._health.add_check("shopify", _health(client))
        self.problems["shopify"] = "" if self.shopify else problem or self._build.shopify_help
        self._use("shopify", strategy)
        await aclose_logged(old, "the replaced Shopify client")

    async def configure_etsy(self) -> None:
        """(Re)build the Etsy client when the shop is connected (tokens in the keyring)."""
        settings = self._settings()
        old, old_auth = self.etsy, self.etsy_auth
        self.etsy, self.etsy_auth = None, None
        problem = ""
        strategy = None
        auth = self._build.etsy_auth(settings)
        try:
            connected = await auth.is_connected()
        except PodStudioError as exc:
            connected, problem = False, user_message(exc)
        if connected:
            client = self._build.etsy(settings, auth, self.printify)
            self.etsy, self.etsy_auth = client, auth
            strategy = self._build.etsy_platform(client)
            self._health.add_check("etsy", _etsy_health(client))
        else:
            await aclose_logged(auth, "Etsy's sign-in client (not connected)")
        self.problems["etsy"] = "" if connected else problem or self._build.etsy_help
        self._use("etsy", strategy)
        await aclose_logged(old, "the replaced Etsy client")
        await aclose_logged(old_auth, "the replaced Etsy sign-in client")

    async def save_secret(self, name: str, value: str) -> None:
        """Store a secret in the OS keyring (never in settings), then use it."""
        await asyncio.to_thread(self._build.save_secret, name, value)
        self._build.register_secret(value)
        await self.configure_all()

    def describe_secrets(self) -> str:
        """Where secrets are kept, as one line (blocking: keyring detection)."""
        return self._build.describe_secrets()

    # --- what the seller sees -------------------------------------------------------------------

    def rows(self) -> list[tuple[str, bool, str]]:
        """(platform, usable, why not) for the publish panel and the publish command."""
        return [
            ("export", True, ""),
            ("printify", self.printify is not None, self.problems["printify"]),
            ("shopify", self.shopify is not None, self.problems["shopify"]),
            ("etsy", self.etsy is not None, self.problems["etsy"]),
        ]

    async def list_platforms(self) -> list[PlatformChoice]:
        return [
            PlatformChoice(name, PLATFORM_LABELS.get(name, name.capitalize()), ok, reason)
            for name, ok, reason in self.rows()
        ]

    async def _printify_client_for(
        self, base_url: str | None, token: str | None
    ) -> tuple[PrintifyPort, bool]:
        """(client, temporary): the live client, or a throwaway one (own breaker) for values
        typed in the dialog but not saved yet."""
        settings = self._settings()
        same_url = base_url is None or base_url.rstrip("/") == settings.printify.base_url
        if token is None and same_url and self.printify is not None:
            return self.printify, False
        if token is None:
            token = await asyncio.to_thread(self._build.read_printify_token)
        if not token:
            raise PodStudioError(
                "no Printify token",
                service="printify",
                user_message="Paste a Printify API token first.",
            )
        self._build.register_secret(token)
        return self._build.scratch_printify(settings, token, base_url), True

    async def printify_shops(
        self, base_url: str | None = None, token: str | None = None
    ) -> list[tuple[str, str]]:
        client, temporary = await self._printify_client_for(base_url, token)
        try:
            return [(str(s.id), str(s.title)) for s in await client.shops()]
        finally:
            if temporary:
                await client.aclose()

    async def test_printify(self, base_url: str | None = None, token: str | None = None) -> str:
        """A verdict on the Printify connection with these values (default: the saved ones)."""
        client, temporary = await self._printify_client_for(base_url, token)
        try:
            ok, text = await client.health_check()
        finally:
            if temporary:
                await client.aclose()
        if not ok:
            raise _failed("printify", text)
        return str(text)

    async def test_shopify(self) -> str:
        """A verdict on the saved Shopify connection (raises a PodStudioError when it fails)."""
        if self.shopify is None:
            raise _failed("shopify", self.problems["shopify"] or "Shopify is not set up")
        ok, text = await self.shopify.health_check()
        if not ok:
            raise _failed("shopify", text)
        return str(text)

    def _need_etsy(self) -> EtsyPort:
        if self.etsy is None:
            raise _failed("etsy", self.problems["etsy"] or "Etsy is not connected")
        return self.etsy

    async def test_etsy(self) -> str:
        ok, text = await self._need_etsy().health_check()
        if not ok:
            raise _failed("etsy", text)
        return str(text)

    async def etsy_choices(self) -> dict[str, list[tuple[str, str]]]:
        """The connected shop's lists as [(id, label)]: "shops", "shipping_profiles",
        "return_policies", "readiness_states"."""
        etsy = self._need_etsy()
        shops = [(str(s.id), str(s.title)) for s in await etsy.shops()]
        return {
            "shops": shops,
            "shipping_profiles": [(str(c.id), c.label) for c in await etsy.shipping_profiles()],
            "return_policies": [(str(c.id), c.label) for c in await etsy.return_policies()],
            "readiness_states": [(str(c.id), c.label) for c in await etsy.readiness_states()],
        }

    async def connect_etsy(self, open_browser: Callable[[str], object]) -> str:
        """The desktop OAuth flow (browser, one-shot listener on 127.0.0.1); returns the
        shop's name. Tokens go to the keyring before they are used."""
        auth = self._build.etsy_auth(self._settings())
        try:
            await auth.connect(open_browser)
        finally:
            await auth.aclose()
        await self.configure_etsy()
        if self.etsy is None:
            return "connected"
        shops = await self.etsy.shops()
        return shops[0].title if shops else "connected (no shop on this account)"

    async def disconnect_etsy(self) -> None:
        """Forget the Etsy tokens (keyring) and stop offering Etsy."""
        auth = self.etsy_auth or self._build.etsy_auth(self._settings())
        try:
            await auth.disconnect()
        finally:
            if auth is not self.etsy_auth:
                await auth.aclose()
        await self.configure_etsy()

    async def printify_mockups(self, design_sha256: str, template_name: str) -> list[bytes]:
        """Printify's own mockup images of this design as this product (at most a few), once
        its Printify draft exists; ``[]`` before (no job yet, or not created yet)."""
        client = self.printify
        if client is None or not design_sha256 or not template_name:
            return []
        key = idempotency_key(design_sha256, template_name, "printify")
        job = await self._ledger.get_job(publish_job_id(key))
        step = job.step("create") if job is not None else None
        if step is None or step.state is not StepStatus.DONE or not step.remote_ref:
            return []
        listing = await client.get_listing(step.remote_ref)
        return await self._build.download_mockups(listing.images)

    async def aclose(self) -> None:
        for client, what in (
            (self.printify, "the Printify client"),
            (self.shopify, "the Shopify client"),
            (self.etsy, "the Etsy client"),
            (self.etsy_auth, "Etsy's sign-in client"),
        ):
            await aclose_logged(client, what)
        self.printify = self.shopify = self.etsy = self.etsy_auth = None
