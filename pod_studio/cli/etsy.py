"""CLI layer: ``pod-studio etsy connect|status|disconnect`` — the Etsy shop, headless.

``connect`` runs the desktop OAuth flow: it prints the consent URL (and opens the browser when
there is one), waits for Etsy's redirect on 127.0.0.1, and keeps the tokens in the OS keyring.
The app's keystring and shared secret come from Settings → Etsy (keyring) or the environment
(``POD_ETSY_KEYSTRING``, ``POD_ETSY_SHARED_SECRET``).
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from typing import Any

from pod_studio.cli import exits
from pod_studio.cli.progress import ProgressPrinter


def add_command(sub: Any) -> None:
    e = sub.add_parser(
        "etsy",
        help="connect POD Studio to an Etsy shop (OAuth in the browser)",
        description="Connects, checks or forgets the Etsy shop POD Studio publishes to. "
        + exits.POLICY,
    )
    e.add_argument("action", choices=["connect", "status", "disconnect"], help="what to do")
    e.add_argument(
        "--no-browser", action="store_true", help="only print the consent URL (no browser)"
    )


async def run(args: argparse.Namespace) -> int:
    from pod_studio.composition.headless import open_core

    printer = ProgressPrinter(sys.stderr)
    async with open_core(sinks=[printer]) as core:
        if args.action == "disconnect":
            was_connected = core.platforms.etsy is not None
            await core.platforms.disconnect_etsy()
            if core.platforms.etsy is not None:
                print(
                    "Etsy is still connected: its tokens come from a store POD Studio cannot "
                    f"change ({core.platforms.describe_secrets()}); remove them there."
                )
                return exits.FAILED
            if was_connected:
                print("Etsy disconnected: its tokens were removed from the secret store")
            else:
                print("Etsy was not connected: there were no tokens to remove")
            return exits.OK
        if args.action == "status":
            if core.platforms.etsy is None:
                print(core.platforms.problems["etsy"])
                return exits.FAILED
            ok, text = await core.platforms.etsy.health_check()
            print(text)
            return exits.OK if ok else exits.UNREACHABLE

        def show(url: str) -> None:
            print(f"Open this address to approve POD Studio on Etsy:\n  {url}", flush=True)
            if not args.no_browser:
                webbrowser.open(url)

        shop = await core.platforms.connect_etsy(show)
    print(f"Etsy connected: {shop}")
    return exits.OK
