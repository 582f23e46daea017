"""Test doubles for the app and ui tests: an in-memory ComfyUI, image store and settings."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

from PIL import Image

from pod_studio.domain.errors import ServiceError
from pod_studio.domain.models import GeneratedImage, ImageRef, JobSpec, ServerInfo
from pod_studio.domain.ports import RunResult, RunUpdate, UpdateCallback
from pod_studio.domain.workflow import WorkflowTemplate

GRAPH: dict[str, Any] = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 1,
            "steps": 4,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 512, "height": 512, "batch_size": 1},
    },
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}},
}


def template() -> WorkflowTemplate:
    return WorkflowTemplate.from_graph(GRAPH, name="test")


def png_bytes(colour: tuple[int, int, int] = (200, 30, 30), side: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(out, format="PNG")
    return out.getvalue()


class FakeGenerator:
    """An in-memory ImageGenerator: progress, one preview, then a tiny PNG.

    With ``hold=True`` every run waits for ``release`` (so tests can cancel running jobs).
    ``fail_prompts`` makes runs whose graph contains that prompt text fail (not retryable);
    the next ``transient_failures`` runs fail with a retryable error.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8188",
        *,
        hold: bool = False,
        fail_prompts: tuple[str, ...] = (),
        transient_failures: int = 0,
    ) -> None:
        self._url = url
        self.hold = hold
        self.release = asyncio.Event()
        self.fail_prompts = fail_prompts
        self.transient_failures = transient_failures
        self.running: set[str] = set()
        self.cancelled: list[str] = []
        self.runs = 0

    @property
    def url(self) -> str:
        return self._url

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def system_info(self) -> ServerInfo:
        return ServerInfo(url=self._url)

    async def object_info(self) -> dict[str, Any]:
        """Every node class the test workflow uses (so a preflight passes)."""
        return {str(n["class_type"]): {"input": {"required": {}}} for n in GRAPH.values()}

    async def checkpoints(self) -> list[str]:
        return ["b.safetensors", "a.safetensors"]

    async def run(
        self, graph: dict[str, Any], *, prompt_id: str, on_update: UpdateCallback
    ) -> RunResult:
        self.runs += 1
        text = str(graph["6"]["inputs"]["text"])
        on_update(RunUpdate(kind="started", prompt_id=prompt_id))
        on_update(RunUpdate(kind="executing", prompt_id=prompt_id, node="3"))
        on_update(RunUpdate(kind="progress", prompt_id=prompt_id, node="3", value=1, max=4))
        on_update(
            RunUpdate(
                kind="preview",
                prompt_id=prompt_id,
                mime="image/png",
                data=png_bytes((0, 0, 200), 8),
            )
        )
        self.running.add(prompt_id)
        try:
            if self.hold:
                await self.release.wait()
            else:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append(prompt_id)
            raise
        finally:
            self.running.discard(prompt_id)
        if self.transient_failures > 0:
            self.transient_failures -= 1
            raise ServiceError(
                "busy", service="comfyui", user_message="the server is busy", retryable=True
            )
        if any(p in text for p in self.fail_prompts):
            raise ServiceError(
                "boom", service="comfyui", user_message="the GPU fell over", retryable=False
            )
        on_update(RunUpdate(kind="progress", prompt_id=prompt_id, node="3", value=4, max=4))
        ref = ImageRef(filename=f"{prompt_id}.png", node_id="9")
        colour = tuple(
            hashlib.sha256(prompt_id.encode()).digest()[:3]
        )  # a different image each run
        data = png_bytes((colour[0], colour[1], colour[2]))
        return RunResult(prompt_id=prompt_id, server=self._url, images=[(ref, data)], seconds=0.5)

    async def cancel(self, prompt_id: str) -> None:
        self.cancelled.append(prompt_id)


class MemoryStore:
    """An ImageStore that keeps metadata in memory and writes the PNGs under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.images: dict[str, GeneratedImage] = {}

    async def save(
        self,
        job: JobSpec,
        data: bytes,
        *,
        ref: ImageRef,
        server: str,
        prompt_id: str,
        seconds: float,
    ) -> GeneratedImage:
        image_id = uuid.uuid4().hex[:12]
        path = self.root / f"{image_id}.png"
        path.write_bytes(data)
        image = GeneratedImage(
            image_id=image_id,
            job_id=job.job_id,
            prompt=job.prompt,
            negative=job.negative,
            seed=job.seed,
            width=job.width or 16,
            height=job.height or 16,
            file=str(path),
            sha256=hashlib.sha256(data).hexdigest(),
            server=server,
            prompt_id=prompt_id,
            seconds=seconds,
        )
        self.images[image_id] = image
        return image

    async def list_images(self) -> list[GeneratedImage]:
        return list(self.images.values())

    async def set_approved(self, image_id: str, approved: bool | None) -> GeneratedImage:
        image = self.images[image_id].model_copy(update={"approved": approved})
        self.images[image_id] = image
        return image


class SettingsBox:
    """A settings getter/saver pair over an AppSettings value."""

    def __init__(self) -> None:
        from pod_studio.domain.settings import AppSettings

        self.value: Any = AppSettings()
        self.saved: list[Any] = []

    def get(self) -> Any:
        return self.value

    async def save(self, settings: Any) -> None:
        self.value = settings
        self.saved.append(settings)
