"""Composition (Qt-free): demo mode's stand-in servers.

``pod-studio --demo`` (and "Try demo mode" in the window) runs the whole app on the sandbox
servers in ``pod_studio.sandbox``, each in its own thread on 127.0.0.1, so anyone can try
POD Studio without a GPU or an account.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pod_studio.sandbox.threaded import ServerThread


class DemoServers:
    """The sandbox ComfyUI the app runs on in demo mode, in its own thread. The sandbox (and
    aiohttp) is imported on the first ``start()``: a window on real servers never loads it."""

    def __init__(self) -> None:
        self.thread: ServerThread | None = None

    async def start(self) -> str:
        if self.thread is None:
            from pod_studio.sandbox.comfyui import ComfyUISandbox
            from pod_studio.sandbox.threaded import ServerThread

            thread = ServerThread(ComfyUISandbox(seconds_per_job=1.5, steps=10, preview_every=2))
            await asyncio.to_thread(thread.start)
            self.thread = thread
        return self.thread.url

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None
