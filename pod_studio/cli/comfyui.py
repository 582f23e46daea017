"""CLI layer: ``pod-studio comfyui start|stop|status`` — the local ComfyUI server, headless.

``start`` launches ComfyUI from the folder and Python in Settings → ComfyUI server process and
leaves it running (its state file lets ``stop``/``status`` and the window find it); ``stop``
stops it gracefully (SIGINT, then SIGTERM, then SIGKILL on its process group).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from pod_studio.cli import exits


def add_command(sub: Any) -> None:
    c = sub.add_parser(
        "comfyui",
        help="start, stop or check the local ComfyUI server",
        description="Runs the ComfyUI configured in Settings (folder, Python, port, extra "
        "arguments) as a server POD Studio looks after. " + exits.POLICY,
    )
    c.add_argument("action", choices=["start", "stop", "status"], help="what to do")
    c.add_argument(
        "--ready-timeout",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="how long `start` waits for /system_stats to answer (default 180)",
    )


async def run(args: argparse.Namespace) -> int:
    from pod_studio.composition.comfyui_process import run_comfyui_command_async
    from pod_studio.composition.core import comfyui_state_dir, load_settings

    settings, _warnings, _store = await asyncio.to_thread(load_settings)

    return await run_comfyui_command_async(
        args.action,
        settings.comfyui_process,
        comfyui_state_dir(),
        out=sys.stdout,
        err=sys.stderr,
        ready_timeout=args.ready_timeout,
    )
