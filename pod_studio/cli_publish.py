"""Headless ``publish`` command (no Qt): publish the images of a ``generate`` run.

``pod-studio publish --manifest DIR/manifest.json --template NAME --platform printify|export``
reads the run's manifest, publishes every image as every template on every platform and
prints one line per listing on stdout (design | template | platform | remote id or reason).
Diagnostics go to stderr. Exit status: 0 when every listing exists, 1 when some failed,
2 for unusable input (no manifest, unknown template name).

Bad input fails where it happens and costs nothing else: a missing token, a wrong token or a
shop that does not exist fails that platform's listings only (one line each, no retries); a
broken template fails its own listings; a 0-byte, missing or non-image file, or one too small
for the print area, fails that design only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from pod_studio import wiring, wiring_publish
from pod_studio.adapters.marketplaces.printify import PrintifyClient
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.secrets import default_secret_store
from pod_studio.domain.errors import PodStudioError, user_message
from pod_studio.domain.events import Event, PublishStepChanged, RetryScheduled
from pod_studio.domain.settings import AppSettings
from pod_studio.services.publishing import (
    Design,
    PublishMarketplace,
    PublishOutcome,
    describe_outcome,
    outcomes_json,
)
from pod_studio.services.resilience import ResilienceHub

PLATFORMS = ("printify", "export")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Input the command cannot start with (the message says what to fix)."""


def add_publish_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``publish`` to the ``pod-studio`` sub-commands; returns its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "publish",
        help="publish the images of a generate run as products",
        description="Publishes every image of a generate run's manifest as each product "
        "template on each platform, and prints one line per listing.",
    )
    p.add_argument(
        "--manifest",
        required=True,
        metavar="PATH",
        help="manifest.json of a generate run (or its folder)",
    )
    p.add_argument(
        "--template",
        action="append",
        required=True,
        metavar="NAME",
        help="product template name, e.g. 'Classic T-shirt' (repeatable)",
    )
    p.add_argument(
        "--platform",
        action="append",
        required=True,
        choices=PLATFORMS,
        help="where to publish (repeatable)",
    )
    p.add_argument(
        "--draft", action="store_true", help="create the listings but do not publish them"
    )
    p.add_argument("--printify-url", metavar="URL", help="Printify API base URL (sandbox, proxy)")
    p.add_argument("--shop-id", type=int, metavar="N", help="Printify shop id")
    p.add_argument("--export-dir", metavar="DIR", help="folder for the export platform")
    p.add_argument(
        "--templates-file", metavar="FILE", help="product templates JSON (default: settings)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


# --- manifest --------------------------------------------------------------------------------


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> tuple[list[Design], list[str]]:
    """(designs, problems with entries that name no usable file). Raises ``UsageError`` when
    the manifest itself is missing or unreadable.

    A missing or damaged image still becomes a design: it fails at ``prepare`` with its reason.
    """
    manifest = path / "manifest.json" if path.is_dir() else path
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"no manifest at {manifest} (run `pod-studio generate --out DIR`)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read manifest {manifest}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        data = data["images"]
    if not isinstance(data, list):
        raise UsageError(f"{manifest} is not a generate manifest (expected a JSON list)")
    designs: list[Design] = []
    problems: list[str] = []
    for i, entry in enumerate(data, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            problems.append(f"manifest entry {i}: no 'file'")
            continue
        file = manifest.parent / Path(entry["file"]).name
        prompt = str(entry.get("prompt") or "").strip() or file.stem.replace("-", " ")
        sha = str(entry.get("sha256") or "").lower()
        try:
            actual = _sha256_of(file)
        except OSError:
            actual = ""
        if actual:
            sha = actual  # the listing is keyed on the bytes that will be printed
        if len(sha) != 64:
            sha = hashlib.sha256(str(file).encode("utf-8")).hexdigest()
        design_id = str(entry.get("image_id") or uuid.uuid5(uuid.NAMESPACE_URL, str(file)).hex)
        designs.append(Design(design_id=design_id, path=file, sha256=sha, prompt=prompt))
    return designs, problems


# --- platforms -------------------------------------------------------------------------------


async def _check_printify(client: PrintifyClient, shop_id: int | None) -> str | None:
    """None when the token works and the shop is usable, else the reason."""
    try:
        shops = await client.shops()
    except PodStudioError as exc:
        return user_message(exc)
    listing = ", ".join(f"{s.id} {s.title!r}" for s in shops) or "none"
    if shop_id is not None:
        if not any(s.id == str(shop_id) for s in shops):
            return f"Printify shop {shop_id} is not on this account (shops: {listing})."
        return None
    if len(shops) != 1:
        return (
            f"{len(shops)} Printify shops on this account ({listing}): choose one with "
            "--shop-id N or in Settings."
        )
    return None


class _Progress:
    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self._stream = stream
        self._quiet = quiet

    def __call__(self, event: Event) -> None:
        if self._quiet:
            return
        match event:
            case RetryScheduled(service=s, operation=op, attempt=n, cause=c, wait_seconds=w):
                print(f"retry    {s} {op} attempt {n} in {w:.1f} s: {c}", file=self._stream)
            case PublishStepChanged(product=t, platform=p, state=state, detail=detail) if (
                state.endswith(":done") or state.endswith(":failed")
            ):
                extra = f" ({detail})" if detail and state.startswith("prepare") else ""
                print(f"{state:<16} {t} on {p}{extra}", file=self._stream)
            case _:
                pass


def _failed(design: Design, template: str, platform: str, step: str, reason: str) -> PublishOutcome:
    return PublishOutcome(
        design_id=design.design_id,
        design_name=design.path.name,
        template=template,
        platform=platform,
        ok=False,
        step=step,
        error=reason,
    )


async def run_publish(args: argparse.Namespace) -> int:
    """Run ``pod-studio publish``; returns the exit status."""
    err = sys.stderr
    try:
        return await _run(args, err)
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except PodStudioError as exc:
        print(f"error: {user_message(exc)}", file=err)
        return EXIT_USAGE


async def _run(args: argparse.Namespace, err: TextIO) -> int:
    designs, manifest_problems = await asyncio.to_thread(read_manifest, Path(args.manifest))
    paths = app_paths().ensure()
    settings, warnings, _store = await asyncio.to_thread(wiring.load_settings, paths)
    for w in warnings:
        print(f"warning: {w}", file=err)
    templates_file = Path(args.templates_file) if args.templates_file else None
    templates, broken = await asyncio.to_thread(
        wiring_publish.load_product_templates_checked, settings, templates_file
    )
    names = list(dict.fromkeys(args.template))
    unknown = [n for n in names if n not in templates and n not in broken]
    if unknown:
        known = ", ".join(repr(n) for n in sorted([*templates, *broken])) or "none"
        raise UsageError(
            f"no product template named {', '.join(map(repr, unknown))} (known: {known})"
        )
    platforms = list(dict.fromkeys(args.platform))
    if not designs and not manifest_problems:
        raise UsageError(f"the manifest {args.manifest} lists no images")

    progress = _Progress(err, args.quiet)
    hub = ResilienceHub(progress, settings=wiring.resilience_settings(settings))
    markets: dict[str, PublishMarketplace] = {}
    down: dict[str, str] = {}
    closers: list[Any] = []
    try:
        if "printify" in platforms:
            reason = await _open_printify(args, settings, hub, paths, markets, closers)
            if reason is not None:
                down["printify"] = reason
        if "export" in platforms:
            export_dir = Path(args.export_dir) if args.export_dir else None
            markets["export"] = wiring_publish.build_export_marketplace(settings, paths, export_dir)
        service = wiring_publish.build_publish_service(
            markets, templates, sink=progress, paths=paths
        )
        usable = [n for n in names if n in templates]
        live = [p for p in platforms if p in markets]
        results = await service.publish_designs(designs, usable, live, draft=args.draft)
    finally:
        for close in closers:
            await close()

    by_key = {(o.design_id, o.template, o.platform): o for o in results}
    outcomes: list[PublishOutcome] = []
    for design in designs:
        for name in names:
            for platform in platforms:
                found = by_key.get((design.design_id, name, platform))
                if found is not None:
                    outcomes.append(found)
                elif name in broken:
                    outcomes.append(_failed(design, name, platform, "template", broken[name]))
                else:
                    reason = down.get(platform, f"{platform} is not available")
                    outcomes.append(_failed(design, name, platform, "connect", reason))
    for line in manifest_problems:
        print(f"FAIL {line}", flush=True)
    for outcome in outcomes:
        print(describe_outcome(outcome), flush=True)
    ok = sum(1 for o in outcomes if o.ok)
    print(
        f"{ok} of {len(outcomes)} listing(s) exist"
        + (f"; {len(manifest_problems)} manifest entr(ies) unusable" if manifest_problems else ""),
        file=err,
    )
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, outcomes_json(outcomes), "utf-8")
    all_ok = ok == len(outcomes) and not manifest_problems
    return EXIT_OK if all_ok else EXIT_FAILED


async def _open_printify(
    args: argparse.Namespace,
    settings: AppSettings,
    hub: ResilienceHub,
    paths: Any,
    markets: dict[str, PublishMarketplace],
    closers: list[Any],
) -> str | None:
    secrets = default_secret_store()
    token = await asyncio.to_thread(wiring_publish.read_printify_token, secrets)
    if token is None:
        return wiring_publish.printify_token_help()
    shop_id = args.shop_id if args.shop_id is not None else settings.printify.shop_id
    client = wiring_publish.build_printify_client(
        settings,
        secrets,
        hub,
        paths,
        base_url=args.printify_url,
        shop_id=shop_id,
        token=token,
    )
    closers.append(client.aclose)
    reason = await _check_printify(client, shop_id)
    if reason is None:
        markets["printify"] = client
    return reason


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m pod_studio.cli_publish ...``)."""
    parser = argparse.ArgumentParser(prog="pod-studio")
    sub = parser.add_subparsers(dest="command", required=True)
    add_publish_command(sub)
    args = parser.parse_args(list(argv) if argv is not None else None)
    return asyncio.run(run_publish(args))


if __name__ == "__main__":
    sys.exit(main())
