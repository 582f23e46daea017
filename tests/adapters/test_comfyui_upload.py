"""ComfyUIClient.upload_image and upscale_models against the sandbox (real sockets)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.ports import ImageUpscaler, RunUpdate
from pod_studio.sandbox.comfyui import ComfyUISandbox
from tests.adapters.test_comfyui_client import FAST, new_id

pytestmark = pytest.mark.timeout(60)


def png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[ComfyUISandbox]:
    async with ComfyUISandbox(seconds_per_job=0.05, upscale_models=["4x-UltraSharp.pth"]) as sb:
        yield sb


@pytest_asyncio.fixture
async def client(sandbox: ComfyUISandbox) -> AsyncIterator[ComfyUIClient]:
    c = ComfyUIClient(sandbox.url, **FAST)
    try:
        yield c
    finally:
        await c.aclose()


def ignore(update: RunUpdate) -> None:
    del update


@pytest.mark.asyncio
async def test_upload_lands_in_the_input_folder_and_loads(
    client: ComfyUIClient, sandbox: ComfyUISandbox
) -> None:
    assert isinstance(client, ImageUpscaler)
    data = png((40, 30))
    name = await client.upload_image(data, "design.png", subfolder="pod_studio")
    assert name == "pod_studio/design.png"
    assert (sandbox.input_dir / "pod_studio" / "design.png").read_bytes() == data
    # overwrite=true: other bytes under the same name replace the file, same name back
    other = png((40, 30), (1, 2, 3))
    assert await client.upload_image(other, "design.png", subfolder="pod_studio") == name
    assert (sandbox.input_dir / "pod_studio" / "design.png").read_bytes() == other
    assert sandbox.request_counts  # the requests went over the socket
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "lanczos",
                "width": 80,
                "height": 60,
                "crop": "disabled",
            },
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}},
    }
    result = await client.run(graph, prompt_id=new_id(), on_update=ignore)
    with Image.open(io.BytesIO(result.images[0][1])) as im:
        assert im.size == (80, 60)
        assert im.getpixel((40, 30)) == (1, 2, 3)


@pytest.mark.asyncio
async def test_upload_without_subfolder_and_refusals(client: ComfyUIClient) -> None:
    assert await client.upload_image(png((8, 8)), "top.png") == "top.png"
    with pytest.raises(ValidationError):
        await client.upload_image(b"", "empty.png")
    with pytest.raises(ValidationError, match="refused the upload"):
        await client.upload_image(png((8, 8)), "x.png", subfolder="../../escape")


@pytest.mark.asyncio
async def test_upscale_models_listed_and_used(
    client: ComfyUIClient, sandbox: ComfyUISandbox
) -> None:
    assert await client.upscale_models() == ["4x-UltraSharp.pth"]
    sandbox.upscale_models = []
    assert await client.upscale_models() == []
    sandbox.upscale_models = ["RealESRGAN_x2plus.pth"]
    name = await client.upload_image(png((20, 10)), "m.png")
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {
            "class_type": "UpscaleModelLoader",
            "inputs": {"model_name": "RealESRGAN_x2plus.pth"},
        },
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "m"}},
    }
    result = await client.run(graph, prompt_id=new_id(), on_update=ignore)
    with Image.open(io.BytesIO(result.images[0][1])) as im:
        assert im.size == (40, 20)
    # a model the server does not list is refused at validation, like real ComfyUI
    graph["2"]["inputs"]["model_name"] = "missing.pth"
    with pytest.raises(ValidationError):
        await client.run(graph, prompt_id=new_id(), on_update=ignore)
