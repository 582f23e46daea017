"""Services layer: upscale a design on a ComfyUI server into its print file.

A design below the print warning level (``domain.preflight.SOFT_DPI``) on a chosen product is
uploaded to a ComfyUI server (``POST /upload/image``), taken through a small graph and the
result kept as the design's print file (``PrintFileStore.set_print_file``): the design keeps
its id, prompt and hash, and its DPI is judged from the print file's pixels from then on.

The graph: when the server lists an upscale model, ``LoadImage → UpscaleModelLoader +
ImageUpscaleWithModel → ImageScale → SaveImage`` (the model adds detail, the scale lands on the
target size); otherwise ``LoadImage → ImageScale (lanczos) → SaveImage``. The target is enough
pixels for 300 DPI on the widest chosen print area, aspect kept, within the pixel limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pod_studio.domain.errors import PodStudioError, ServiceError, TimeoutError, ValidationError
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.ports import ImageUpscaler, PrintFileStore, RunUpdate
from pod_studio.domain.preflight import typical_print_area, upscale_target
from pod_studio.domain.products import ProductTemplate

log = logging.getLogger(__name__)

MAX_PRINT_PIXELS = 40_000_000  # the gallery's pixel limit for a stored image
UPLOAD_SUBFOLDER = "pod_studio"
OUTPUT_PREFIX = "pod_studio/upscaled"


@dataclass(frozen=True)
class UpscalePlan:
    """What an upscale will make: the target size and, if any, the model used."""

    width: int
    height: int
    model: str | None


def print_widths(templates: Sequence[ProductTemplate]) -> list[float]:
    """Each product's printed width in px at 300 DPI (usual print area x placement scale),
    the same figures the publish panel's preview judges the DPI by."""
    return [typical_print_area(t.product_type)[0] * t.placement.scale for t in templates]


def target_size(
    image: GeneratedImage,
    templates: Sequence[ProductTemplate],
    max_pixels: int = MAX_PRINT_PIXELS,
) -> tuple[int, int]:
    """The print file's pixel size: 300 DPI on the widest chosen product, aspect kept."""
    return upscale_target((image.width, image.height), print_widths(templates), max_pixels)


def upscale_graph(
    image_name: str, width: int, height: int, model: str | None = None
) -> dict[str, Any]:
    """The API-format graph for an uploaded image ``image_name`` (what ``upload_image``
    returned) scaled to ``width`` x ``height``, through ``model`` first when given."""
    graph: dict[str, Any] = {"1": {"class_type": "LoadImage", "inputs": {"image": image_name}}}
    source: list[Any] = ["1", 0]
    if model is not None:
        graph["2"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}}
        graph["3"] = {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": source},
        }
        source = ["3", 0]
    graph["4"] = {
        "class_type": "ImageScale",
        "inputs": {
            "image": source,
            "upscale_method": "lanczos",
            "width": width,
            "height": height,
            "crop": "disabled",
        },
    }
    graph["5"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["4", 0], "filename_prefix": OUTPUT_PREFIX},
    }
    return graph


def _no_progress(update: RunUpdate) -> None:
    del update


async def upscale_design(
    image: GeneratedImage,
    templates: Sequence[ProductTemplate],
    servers: Sequence[ImageUpscaler],
    store: PrintFileStore,
    *,
    max_pixels: int = MAX_PRINT_PIXELS,
) -> GeneratedImage:
    """Upscale ``image`` for ``templates`` on the first of ``servers`` that answers and keep
    the result as its print file; returns the updated design.

    Raises ``ValidationError`` (nothing to do, no server set up, the server refused the
    graph or the upload) or the last server's error when none could run it.
    """
    if not templates:
        raise ValidationError(
            "upscale: no product chosen",
            service="upscale",
            user_message="Choose a product first: the upscale aims at its print area.",
        )
    width, height = target_size(image, templates, max_pixels)
    current_w = image.print_size[0]
    if width <= image.width or width <= current_w:
        raise ValidationError(
            f"upscale: {image.image_id} already has {current_w} px for {width} px",
            service="upscale",
            user_message="This design already has enough pixels for these products.",
        )
    if not servers:
        raise ValidationError(
            "upscale: no ComfyUI server",
            service="upscale",
            user_message="No ComfyUI server is set up: add one in Settings → ComfyUI to "
            "upscale designs.",
        )
    data = await asyncio.to_thread(Path(image.file).read_bytes)
    digest = hashlib.sha256(data).hexdigest()[:16]
    last: PodStudioError | None = None
    for server in servers:
        try:
            result = await _run_on(server, data, f"pod_upscale_{digest}.png", width, height)
        except (ServiceError, TimeoutError) as exc:
            log.warning("upscale on %s failed: %s", server.url, exc)
            last = exc
            continue
        return await store.set_print_file(image.image_id, result)
    assert last is not None
    raise ServiceError(
        f"upscale: no ComfyUI server could run it: {last}",
        service="upscale",
        user_message=f"Could not upscale: {last.user_message}",
    ) from last


async def _run_on(
    server: ImageUpscaler, data: bytes, filename: str, width: int, height: int
) -> bytes:
    models = await server.upscale_models()
    model = models[0] if models else None
    name = await server.upload_image(data, filename, subfolder=UPLOAD_SUBFOLDER)
    graph = upscale_graph(name, width, height, model)
    log.info(
        "upscaling %s to %dx%d on %s (%s)",
        filename,
        width,
        height,
        server.url,
        f"model {model}" if model else "lanczos",
    )
    run = await server.run(graph, prompt_id=str(uuid.uuid4()), on_update=_no_progress)
    if not run.images:
        raise ValidationError(
            "upscale: the server returned no image",
            service="upscale",
            user_message="ComfyUI finished the upscale but returned no image.",
        )
    return run.images[0][1]
