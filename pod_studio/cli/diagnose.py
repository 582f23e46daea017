"""CLI layer: ``pod-studio doctor`` (is this a ComfyUI server, and can it generate) and
``pod-studio stats`` (the figures the Statistics dock shows)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pod_studio.cli import exits
from pod_studio.composition import diagnostics
from pod_studio.composition.core import configured_servers
from pod_studio.domain.urls import check_server_urls


def add_commands(sub: Any) -> None:
    d = sub.add_parser(
        "doctor",
        help="check a ComfyUI server and print a verdict",
        description="Checks each server: reachable, ComfyUI or not, version, device, VRAM, "
        "queue length. " + exits.POLICY,
    )
    d.add_argument(
        "--server", action="append", metavar="URL", help="ComfyUI base URL (default: Settings)"
    )
    s = sub.add_parser(
        "stats",
        help="print the run statistics the Statistics dock shows",
        description="Prints pipeline and per-service statistics.",
    )
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--prometheus", metavar="FILE", help="also write Prometheus text to FILE")


async def doctor(args: argparse.Namespace) -> int:
    servers = check_server_urls(args.server or []) or await asyncio.to_thread(configured_servers)
    worst = exits.OK
    for url in servers:
        report = await diagnostics.doctor(url)
        print(report.text)
        if not report.ok:
            worst = exits.UNREACHABLE
    return worst


def stats(args: argparse.Namespace) -> int:
    snapshot = diagnostics.load_stats_snapshot()
    if args.json:
        print(json.dumps(snapshot, indent=2, sort_keys=True, default=str))
    else:
        print(diagnostics.format_stats(snapshot))
    if args.prometheus:
        diagnostics.export_prometheus(snapshot, Path(args.prometheus))
        print(f"Prometheus text written to {args.prometheus}", file=sys.stderr)
    return exits.OK
