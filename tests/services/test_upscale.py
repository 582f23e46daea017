"""The upscale use case against the sandbox ComfyUI (real sockets), both graph paths: the
result is kept as the design's print file and the DPI is judged from its pixels."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.adapters.storage.images import GalleryImageStore
from pod_studio.app.mockups import mockup_spec
from pod_studio.domain.errors import ServiceError, ValidationError
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.preflight import PreflightBadge, upscale_target
from pod_studio.domain.products import default_templates
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.services.upscale import target_size, upscale_design, upscale_graph
from tests.adapters.test_comfyui_client import FAST

pytestmark = pytest.mark.timeout(120)

TEE, HOODIE = default_templates()


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[ComfyUISandbox]:
    async with ComfyUISandbox(seconds_per_job=0.05) as sb:
        yield sb


@pytest_asyncio.fixture
async def client(sandbox: ComfyUISandbox) -> AsyncIterator[ComfyUIClient]:
    c = ComfyUIClient(sandbox.url, **FAST)
    try:
        yield c
    finally:
        await c.aclose()


@pytest_asyncio.fixture
async def design(tmp_path: Path) -> tuple[GalleryImageStore, GeneratedImage]:
    src = tmp_path / "design.png"
    Image.new("RGB", (1024, 1024), (30, 120, 200)).save(src)
    store = GalleryImageStore(tmp_path / "images")
    image = await store.import_file(str(src), prompt="a blue square")
    return store, image


def test_target_is_300_dpi_on_the_widest_area_within_the_limit() -> None:
    image = GeneratedImage.model_validate(
        {
            "image_id": "a" * 32, "job_id": "j", "prompt": "p", "seed": 1, "width": 1024,
            "height": 768, "file": "/x.png", "sha256": "0", "server": "s", "prompt_id": "p",
            "seconds": 0.0,
        }
    )  # fmt: skip
    assert target_size(image, [TEE]) == (4500, 3375)
    assert target_size(image, [HOODIE]) == (4050, 3037)  # scale 0.9 prints narrower
    assert target_size(image, [HOODIE, TEE]) == (4500, 3375)
    w, h = upscale_target((1000, 1000), [20000.0], 40_000_000)
    assert w * h <= 40_000_000 and w == h and w > 6000
    assert upscale_target((5000, 5000), [4500.0], 40_000_000) == (5000, 5000)


def test_graph_shapes() -> None:
    plain = upscale_graph("pod_studio/x.png", 10, 20)
    assert [n["class_type"] for n in plain.values()] == ["LoadImage", "ImageScale", "SaveImage"]
    assert plain["4"]["inputs"] == {
        "image": ["1", 0], "upscale_method": "lanczos", "width": 10, "height": 20,
        "crop": "disabled",
    }  # fmt: skip
    model = upscale_graph("x.png", 10, 20, "4x-UltraSharp.pth")
    assert model["3"]["inputs"] == {"upscale_model": ["2", 0], "image": ["1", 0]}
    assert model["4"]["inputs"]["image"] == ["3", 0]


async def _check_print_file(
    store: GalleryImageStore, before: GeneratedImage, after: GeneratedImage
) -> None:
    assert after.image_id == before.image_id
    assert after.file == before.file and after.sha256 == before.sha256
    assert (
        after.print_file is not None and Path(after.print_file).parent == Path(before.file).parent
    )
    with Image.open(after.print_file) as im:
        assert im.size == (4500, 4500) == after.print_size
        assert "dpi" not in im.info  # no DPI tag the server did not write
    # the record on disk says so too, and the listing reads it back
    record = json.loads((store.images_dir / f"{before.image_id}.json").read_text())
    assert record["print_width"] == 4500
    (listed,) = await store.list_images()
    assert listed.print_file == after.print_file
    spec_before = mockup_spec(before, TEE)
    spec_after = mockup_spec(after, TEE)
    assert spec_before.level is PreflightBadge.WARN and round(spec_before.dpi) == 68
    assert spec_after.dpi == 300.0 and spec_after.level is PreflightBadge.PASS
    assert not spec_after.low_resolution


@pytest.mark.asyncio
async def test_upscale_without_a_model_scales_with_lanczos(
    client: ComfyUIClient,
    sandbox: ComfyUISandbox,
    design: tuple[GalleryImageStore, GeneratedImage],
) -> None:
    store, image = design
    after = await upscale_design(image, [TEE, HOODIE], [client], store)
    await _check_print_file(store, image, after)
    assert sandbox.request_counts["POST /upload/image"] == 1
    # uploaded under the app's own subfolder, run as LoadImage -> ImageScale -> SaveImage
    assert list((sandbox.input_dir / "pod_studio").iterdir())
    saved = list((sandbox.output_dir / "pod_studio").glob("upscaled*.png"))
    assert len(saved) == 1
    with Image.open(saved[0]) as im:
        graph = json.loads(im.info["prompt"])
    assert sorted(n["class_type"] for n in graph.values()) == [
        "ImageScale", "LoadImage", "SaveImage",
    ]  # fmt: skip


@pytest.mark.asyncio
async def test_upscale_with_a_model_goes_through_it(
    client: ComfyUIClient,
    sandbox: ComfyUISandbox,
    design: tuple[GalleryImageStore, GeneratedImage],
) -> None:
    sandbox.upscale_models = ["4x-UltraSharp.pth"]
    store, image = design
    after = await upscale_design(image, [TEE], [client], store)
    await _check_print_file(store, image, after)
    (saved,) = list((sandbox.output_dir / "pod_studio").glob("upscaled*.png"))
    with Image.open(saved) as im:
        graph = json.loads(im.info["prompt"])
    classes = {n["class_type"]: n["inputs"] for n in graph.values()}
    assert classes["UpscaleModelLoader"] == {"model_name": "4x-UltraSharp.pth"}
    assert classes["ImageScale"]["width"] == 4500
    assert classes["ImageScale"]["image"] == ["3", 0]  # after the model's 4x (4096 px)


@pytest.mark.asyncio
async def test_errors_are_clear_and_nothing_is_lost(
    client: ComfyUIClient,
    sandbox: ComfyUISandbox,
    design: tuple[GalleryImageStore, GeneratedImage],
) -> None:
    store, image = design
    with pytest.raises(ValidationError) as no_server:
        await upscale_design(image, [TEE], [], store)
    assert "No ComfyUI server" in no_server.value.user_message
    with pytest.raises(ValidationError) as enough:
        big = image.model_copy(update={"width": 4500, "height": 4500})
        await upscale_design(big, [TEE], [client], store)
    assert "already has enough pixels" in enough.value.user_message

    # the server refuses the graph: the model it listed is gone when the prompt arrives
    class StaleModels:
        url = client.url
        upload_image = client.upload_image
        run = client.run

        async def upscale_models(self) -> list[str]:
            return ["removed-4x.pth"]

    with pytest.raises(ValidationError) as refused:
        await upscale_design(image, [TEE], [StaleModels()], store)
    assert "removed-4x.pth" in str(refused.value)

    offline = ComfyUIClient("http://127.0.0.1:9", **FAST)
    try:
        with pytest.raises(ServiceError) as down:
            await upscale_design(image, [TEE], [offline], store)
        assert "Could not upscale" in down.value.user_message
        (listed,) = await store.list_images()
        assert listed.print_file is None
        assert await asyncio.to_thread(Path(listed.file).exists)
        # an offline server is skipped for the next one
        after = await upscale_design(image, [TEE], [offline, client], store)
        assert after.print_size == (4500, 4500)
    finally:
        await offline.aclose()


@pytest.mark.asyncio
async def test_store_keeps_one_print_file_and_old_records_load(
    design: tuple[GalleryImageStore, GeneratedImage],
) -> None:
    store, image = design

    def png(size: tuple[int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", size, (9, 9, 9)).save(out, "PNG")
        return out.getvalue()

    first = await store.set_print_file(image.image_id, png((2048, 2048)))
    second = await store.set_print_file(image.image_id, png((4096, 4096)))
    assert second.print_size == (4096, 4096) and second.print_path == second.print_file
    assert first.print_file != second.print_file
    assert not await asyncio.to_thread(Path(first.print_file or "").exists)  # replaced
    with pytest.raises(ValidationError):
        await store.set_print_file(image.image_id, b"not an image")
    # a record written before print files existed loads, printing the design itself
    sidecar = store.images_dir / f"{image.image_id}.json"
    record = json.loads(await asyncio.to_thread(sidecar.read_text))
    for key in ("print_file", "print_width", "print_height"):
        record.pop(key)
    old = GeneratedImage.model_validate(record)
    assert old.print_file is None and old.print_path == old.file
    assert old.print_size == (1024, 1024)
    # trashing a design takes its print file along
    await store.move_to_trash(image.image_id)
    trash = store.images_dir / "trash"
    assert await asyncio.to_thread((trash / Path(second.print_file or "").name).exists)
