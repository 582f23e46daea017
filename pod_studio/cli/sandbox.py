"""CLI layer: ``pod-studio sandbox comfyui|printify|shopify|etsy`` — a stand-in server on 127.0.0.1.

Each flag belongs to one kind; a flag the chosen kind does not take is refused (never
silently ignored). Defaults: ComfyUI on port 8188, Printify on 8790.
"""

from __future__ import annotations

import argparse
from typing import Any

from pod_studio.cli import exits

DEFAULT_PORTS = {"comfyui": 8188, "printify": 8790, "shopify": 8791, "etsy": 8792}
ONLY_FOR = {
    "seconds_per_job": ("comfyui", "--seconds-per-job"),
    "token": ("printify|shopify", "--token"),
    "time_scale": ("printify", "--time-scale"),
}


def add_command(sub: Any) -> None:
    sb = sub.add_parser(
        "sandbox",
        help="run a stand-in server (for demos and tests)",
        description="Runs a sandbox server speaking the real protocol on 127.0.0.1 until Ctrl-C.",
    )
    sb.add_argument("kind", choices=sorted(DEFAULT_PORTS), help="which server to stand in for")
    sb.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sb.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: 8188 comfyui, 8790 printify, 8791 shopify, 8792 etsy)",
    )
    sb.add_argument(
        "--seconds-per-job",
        type=float,
        default=None,
        metavar="S",
        help="comfyui: how long each prompt runs (default 1.0)",
    )
    sb.add_argument(
        "--fault-rate",
        type=float,
        default=None,
        metavar="R",
        help="share of requests answered with an injected fault, 0..1 (default 0)",
    )
    sb.add_argument(
        "--token",
        action="append",
        default=None,
        help="printify: a token it accepts (repeatable; default sandbox-token)",
    )
    sb.add_argument(
        "--time-scale",
        type=float,
        default=None,
        metavar="F",
        help="printify: shrink every rate window by this factor (default 1)",
    )


def check(args: argparse.Namespace) -> str | None:
    """A usage error for a flag the chosen kind does not take, else None."""
    for attr, (kind, flag) in ONLY_FOR.items():
        if getattr(args, attr) is not None and args.kind not in kind.split("|"):
            kinds = " or ".join(f"`sandbox {k}`" for k in kind.split("|"))
            return f"{flag} applies to {kinds} only"
    if args.fault_rate is not None and not 0.0 <= args.fault_rate <= 1.0:
        return "--fault-rate must be between 0 and 1"
    return None


def run(args: argparse.Namespace) -> int:
    port = args.port if args.port is not None else DEFAULT_PORTS[args.kind]
    if args.kind == "comfyui":
        from pod_studio.sandbox import comfyui

        comfyui.serve_forever(
            args.host,
            port,
            seconds_per_job=1.0 if args.seconds_per_job is None else args.seconds_per_job,
            fault_rate=args.fault_rate or 0.0,
        )
        return exits.OK
    argv = ["--host", args.host, "--port", str(port)]
    for token in args.token or []:
        argv += ["--token", token]
    if args.time_scale is not None:
        argv += ["--time-scale", str(args.time_scale)]
    if args.fault_rate is not None:
        argv += ["--fault-rate", str(args.fault_rate)]
    if args.kind == "etsy":
        from pod_studio.sandbox import etsy

        etsy.main(argv)
    elif args.kind == "shopify":
        from pod_studio.sandbox import shopify

        shopify.main(argv)
    else:
        from pod_studio.sandbox import printify

        printify.main(argv)
    return exits.OK
