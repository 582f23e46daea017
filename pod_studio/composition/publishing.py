"""Composition (Qt-free) for publishing: product templates, platforms and the PublishService.

Builds each platform's client from settings, the secret store and the resilience hub (its
guard and rate budget; Printify's with a persistent catalog cache, a ``DiskCache`` under
``catalog_cache_dir`` behind a ``CachedLoader``), pairs it with its publish strategy
(``services.publish_platforms``: the only place that knows what differs per platform), and
builds the ``PublishService`` wired with the imaging adapter's ``prepare_print_file``. The
engine (``composition.core``) and the commands call these helpers; nothing here imports Qt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from pod_studio.adapters.imaging import prepare_print_file
from pod_studio.adapters.marketplaces.etsy import EtsyClient
from pod_studio.adapters.marketplaces.etsy_oauth import EtsyAuth
from pod_studio.adapters.marketplaces.export import ExportMarketplace
from pod_studio.adapters.marketplaces.printify import PrintifyClient
from pod_studio.adapters.marketplaces.shopify import ShopifyClient
from pod_studio.adapters.storage.cache import DiskCache
from pod_studio.adapters.storage.paths import AppPaths
from pod_studio.adapters.storage.resources import resource_path
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.events import EventSink
from pod_studio.domain.products import ProductTemplate, default_templates, load_templates
from pod_studio.domain.publishing import PublishPlatform
from pod_studio.domain.settings import AppSettings, SecretName, SecretStorePort
from pod_studio.services.cache import AsyncTTLCache, CachedLoader
from pod_studio.services.publish_platforms import (
    BasicPlatform,
    CostBook,
    PrintifyPlatform,
    PrintifyShop,
)
from pod_studio.services.publishing import PublishService
from pod_studio.services.ratelimit import EtsyBudget, PrintifyBudget, ShopifyCostBucket
from pod_studio.services.resilience import ResilienceHub

log = logging.getLogger(__name__)

CATALOG_TTL = 6 * 3600.0
TEMPLATES_RESOURCE = "product_templates.json"

ETSY_BUDGET_FILE = "etsy-budget.sqlite3"  # in the data folder: the day's count survives a restart


# --- product templates -----------------------------------------------------------------------


def _check_each(items: list[Any], where: str) -> tuple[dict[str, ProductTemplate], dict[str, str]]:
    """Validate templates one by one: a broken one is reported, the others stay usable."""
    good: dict[str, ProductTemplate] = {}
    bad: dict[str, str] = {}
    for i, item in enumerate(items):
        name = str(item.get("name") or f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
        try:
            (template,) = load_templates(json.dumps({"schema_version": 1, "templates": [item]}))
        except ValidationError as exc:
            details = [d.replace("templates[0].", "").replace("templates[0]", "template")
                       for d in (exc.details or [exc.message])]  # fmt: skip
            bad[name] = f"template {name!r} in {where} is invalid: " + "; ".join(details)
            continue
        if template.name in good:
            bad[template.name] = f"template {template.name!r} appears twice in {where}"
            continue
        good[template.name] = template
    return good, bad


def load_product_templates_checked(
    settings: AppSettings, path: Path | None = None
) -> tuple[dict[str, ProductTemplate], dict[str, str]]:
    """(valid templates by name, problems by template name).

    Source: ``path`` if given, else ``settings.product_templates`` if set, else
    ``resources/product_templates.json``, else the built-in defaults. Raises
    ``ValidationError`` only when ``path`` itself cannot be read as JSON.
    """
    if path is not None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(
                f"cannot read product templates {path}: {exc}",
                service="templates",
                user_message=f"The product templates file {path} cannot be read: {exc}",
            ) from None
        items = data.get("templates") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValidationError(
                f"{path} has no 'templates' list",
                service="templates",
                user_message=f'{path} must hold {{"templates": [...]}}.',
            )
        return _check_each(items, str(path))
    if settings.product_templates:
        return _check_each(list(settings.product_templates), "settings")
    resource = resource_path(TEMPLATES_RESOURCE)
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
        items = data["templates"]
        if not isinstance(items, list):
            raise TypeError("templates is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("built-in product templates unreadable (%s); using defaults", exc)
        return {t.name: t for t in default_templates()}, {}
    return _check_each(items, TEMPLATES_RESOURCE)


def load_product_templates(settings: AppSettings) -> dict[str, ProductTemplate]:
    """The seller's product templates by name (invalid ones are logged and left out)."""
    good, bad = load_product_templates_checked(settings)
    for problem in bad.values():
        log.warning("%s", problem)
    return good


# --- marketplaces ----------------------------------------------------------------------------


def build_catalog_cache(paths: AppPaths, *, ttl: float = CATALOG_TTL) -> CachedLoader:
    """Memory in front of a ``DiskCache`` under ``paths.catalog_cache_dir``."""
    memory: AsyncTTLCache[Any] = AsyncTTLCache(maxsize=256, ttl=ttl, name="catalog")
    return CachedLoader(
        memory, DiskCache(paths.catalog_cache_dir, default_ttl=ttl), default_ttl=ttl, tag="printify"
    )


def read_printify_token(secrets: SecretStorePort) -> str | None:
    """The Printify token (may block on the OS keyring: call it from a worker thread)."""
    token = secrets.get(SecretName.PRINTIFY_TOKEN)
    return token.strip() if token and token.strip() else None


def printify_token_help() -> str:
    return (
        "No Printify API token is configured. Create a Personal Access Token in Printify "
        "(My Profile -> Connections) and either save it in POD Studio's Settings (stored in "
        "the OS keyring) or set the environment variable POD_PRINTIFY_TOKEN."
    )


def build_printify_client(
    settings: AppSettings,
    secrets: SecretStorePort,
    hub: ResilienceHub,
    paths: AppPaths,
    *,
    base_url: str | None = None,
    shop_id: int | None = None,
    token: str | None = None,
    catalog_cache: CachedLoader | None = None,
    **client_options: Any,
) -> PrintifyClient:
    """A ``PrintifyClient`` under the hub's "printify" guard (with ``PrintifyBudget`` unless
    the hub already has a budget for Printify) and the persistent catalog cache.

    The token is read once, here (the OS keyring may block): pass ``token`` to skip it.
    """
    value = token if token is not None else read_printify_token(secrets)
    if "printify" not in hub.budgets:
        hub.set_budget("printify", PrintifyBudget())
    shop = shop_id if shop_id is not None else settings.printify.shop_id
    index_name = f"printify-uploads-{shop if shop is not None else 'auto'}.json"
    if "timeout" not in client_options:
        read = settings.printify.read_timeout
        client_options["timeout"] = httpx.Timeout(
            connect=min(5.0, read), read=read, write=max(read, 30.0), pool=10.0
        )
    return PrintifyClient(
        lambda: value,
        base_url=base_url or settings.printify.base_url,
        shop_id=shop,
        guard=hub.guard("printify"),
        catalog_cache=catalog_cache or build_catalog_cache(paths),
        upload_index_path=paths.cache_dir / index_name,
        **client_options,
    )


def shopify_setup_help() -> str:
    return (
        "Shopify is not set up: in Settings → Shopify enter your shop domain "
        "(name.myshopify.com) and an Admin API access token (kept in the OS keyring), or set "
        "POD_SHOPIFY_TOKEN."
    )


def read_shopify_secrets(
    settings: AppSettings, secrets: SecretStorePort
) -> tuple[str | None, str | None]:
    """(admin token, client secret) for Shopify (may block on the keyring: worker thread)."""

    def clean(value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    token = clean(secrets.get(SecretName.SHOPIFY_TOKEN))
    secret = (
        clean(secrets.get(SecretName.SHOPIFY_CLIENT_SECRET)) if settings.shopify.client_id else None
    )
    return token, secret


def build_shopify_client(
    settings: AppSettings,
    hub: ResilienceHub,
    *,
    token: str | None,
    client_secret: str | None = None,
    **client_options: Any,
) -> ShopifyClient:
    """A ``ShopifyClient`` under the hub's "shopify" guard, its answers feeding the Shopify
    cost bucket (``throttleStatus``)."""
    if "shopify" not in hub.budgets:
        hub.set_budget("shopify", ShopifyCostBucket())
    bucket = hub.budgets["shopify"]
    s = settings.shopify
    use_credentials = bool(s.client_id and client_secret)
    return ShopifyClient(
        s.shop_domain,
        token_provider=None if use_credentials else (lambda: token),
        client_id=s.client_id if use_credentials else None,
        client_secret_provider=(lambda: client_secret) if use_credentials else None,
        base_url=s.base_url,
        api_version=s.api_version,
        guard=hub.guard("shopify"),
        observe_response=bucket.observe_response,
        **client_options,
    )


def etsy_setup_help() -> str:
    return (
        "Etsy is not connected: in Settings → Etsy enter your app's keystring and shared "
        "secret, press Connect and approve POD Studio in the browser (or run "
        "`pod-studio etsy connect`), then pick the shipping profile."
    )


def build_etsy_auth(settings: AppSettings, secrets: SecretStorePort) -> EtsyAuth:
    s = settings.etsy
    return EtsyAuth(
        secrets,
        auth_base_url=s.auth_base_url,
        connect_url=s.connect_url,
        redirect_port=s.redirect_port,
    )


def build_etsy_client(
    settings: AppSettings,
    auth: EtsyAuth,
    hub: ResilienceHub,
    paths: AppPaths,
    *,
    catalog: Any = None,
) -> EtsyClient:
    """An ``EtsyClient`` under the hub's "etsy" guard, its answers' ``x-limit-*`` /
    ``x-remaining-*`` headers feeding the per-second and per-day budget (kept in SQLite, so
    the day's count survives a restart)."""
    if "etsy" not in hub.budgets:
        hub.set_budget("etsy", EtsyBudget(paths.data_dir / ETSY_BUDGET_FILE))
    s = settings.etsy
    return EtsyClient(
        auth,
        base_url=s.base_url,
        shop_id=s.shop_id,
        shipping_profile_id=s.shipping_profile_id,
        return_policy_id=s.return_policy_id,
        readiness_state_id=s.readiness_state_id,
        taxonomy_id=s.taxonomy_id,
        who_made=s.who_made,
        when_made=s.when_made,
        guard=hub.guard("etsy"),
        budget=hub.budgets["etsy"],
        catalog=catalog,
        journal_path=paths.data_dir / "etsy-creates.json",
    )


def build_export_marketplace(
    settings: AppSettings, paths: AppPaths, export_dir: Path | None = None
) -> ExportMarketplace:
    root = export_dir or (Path(settings.export_dir) if settings.export_dir else paths.export_dir)
    return ExportMarketplace(root)


# --- (client, strategy) pairs: what differs per platform, in one place ---------------------


def cost_book(paths: AppPaths) -> CostBook:
    """The provider costs created products reported (kept in the catalog cache, so they
    survive a restart)."""
    return CostBook(DiskCache(paths.catalog_cache_dir / "costs", default_ttl=CostBook.TTL))


def printify_platform(client: PrintifyShop, paths: AppPaths) -> PrintifyPlatform:
    """Printify's strategy, its catalog's costs from the ``CostBook``."""
    return PrintifyPlatform(client, costs=cost_book(paths))


def shopify_platform(client: ShopifyClient) -> BasicPlatform:
    return BasicPlatform(client, check=client.check_credentials)


def etsy_platform(client: EtsyClient) -> BasicPlatform:
    return BasicPlatform(client, check=client.check_credentials)


def export_platform(market: ExportMarketplace) -> BasicPlatform:
    return BasicPlatform(market)  # a local folder: no credential


def build_publish_service(
    platforms: Sequence[PublishPlatform],
    templates: Mapping[str, ProductTemplate],
    *,
    sink: EventSink,
    paths: AppPaths,
    work_dir: Path | None = None,
) -> PublishService:
    """The service over ``platforms`` (more are set up later with ``set_platform``)."""
    return PublishService(
        platforms,
        templates,
        work_dir=work_dir or paths.cache_dir / "print_files",
        sink=sink,
        prepare=prepare_print_file,
    )
