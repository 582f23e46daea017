# ruff: noqa: PTH100, PTH118, PTH119, PTH120
"""Sandbox layer: the node classes the simulated ComfyUI server knows.

Holds each class's ``/object_info`` entry (copied from a stock ComfyUI 0.3.64 where recorded),
its output types, whether it is an output node, and a small async implementation working on
Pillow images. ``IMAGE`` values are lists of RGB images (a batch), ``LATENT`` values are dicts.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageFilter, ImageOps, PngImagePlugin

from pod_studio.sandbox import _comfy_render as render
from pod_studio.sandbox._comfy_recorded import RECORDED

EXTRA: dict[str, dict[str, Any]] = {
    "CheckpointLoaderSimple": {
        "input": {
            "required": {
                "ckpt_name": [[], {"tooltip": "The name of the checkpoint (model) to load."}]
            }
        },
        "input_order": {"required": ["ckpt_name"]},
        "output": ["MODEL", "CLIP", "VAE"],
        "output_is_list": [False, False, False],
        "output_name": ["MODEL", "CLIP", "VAE"],
        "name": "CheckpointLoaderSimple",
        "display_name": "Load Checkpoint",
        "description": "Loads a diffusion model checkpoint, diffusion models are used to denoise "
        "latents.",
        "python_module": "nodes",
        "category": "loaders",
        "output_node": False,
        "output_tooltips": [
            "The model used for denoising latents.",
            "The CLIP model used for encoding text prompts.",
            "The VAE model used for encoding and decoding images to and from latent space.",
        ],
    },
    "CLIPTextEncode": {
        "input": {
            "required": {
                "text": [
                    "STRING",
                    {
                        "multiline": True,
                        "dynamicPrompts": True,
                        "tooltip": "The text to be encoded.",
                    },
                ],
                "clip": ["CLIP", {"tooltip": "The CLIP model used for encoding the text."}],
            }
        },
        "input_order": {"required": ["text", "clip"]},
        "output": ["CONDITIONING"],
        "output_is_list": [False],
        "output_name": ["CONDITIONING"],
        "name": "CLIPTextEncode",
        "display_name": "CLIP Text Encode (Prompt)",
        "description": "Encodes a text prompt using a CLIP model into an embedding that can be "
        "used to guide the diffusion model towards generating specific images.",
        "python_module": "nodes",
        "category": "conditioning",
        "output_node": False,
        "output_tooltips": [
            "A conditioning containing the embedded text used to guide the diffusion model."
        ],
    },
    "EmptyLatentImage": {
        "input": {
            "required": {
                "width": [
                    "INT",
                    {
                        "default": 512,
                        "min": 16,
                        "max": 16384,
                        "step": 8,
                        "tooltip": "The width of the latent images in pixels.",
                    },
                ],
                "height": [
                    "INT",
                    {
                        "default": 512,
                        "min": 16,
                        "max": 16384,
                        "step": 8,
                        "tooltip": "The height of the latent images in pixels.",
                    },
                ],
                "batch_size": [
                    "INT",
                    {
                        "default": 1,
                        "min": 1,
                        "max": 4096,
                        "tooltip": "The number of latent images in the batch.",
                    },
                ],
            }
        },
        "input_order": {"required": ["width", "height", "batch_size"]},
        "output": ["LATENT"],
        "output_is_list": [False],
        "output_name": ["LATENT"],
        "name": "EmptyLatentImage",
        "display_name": "Empty Latent Image",
        "description": "Create a new batch of empty latent images to be denoised via sampling.",
        "python_module": "nodes",
        "category": "latent",
        "output_node": False,
        "output_tooltips": ["The empty latent image batch."],
    },
    "VAEDecode": {
        "input": {
            "required": {
                "samples": ["LATENT", {"tooltip": "The latent to be decoded."}],
                "vae": ["VAE", {"tooltip": "The VAE model used for decoding the latent."}],
            }
        },
        "input_order": {"required": ["samples", "vae"]},
        "output": ["IMAGE"],
        "output_is_list": [False],
        "output_name": ["IMAGE"],
        "name": "VAEDecode",
        "display_name": "VAE Decode",
        "description": "Decodes latent images back into pixel space images.",
        "python_module": "nodes",
        "category": "latent",
        "output_node": False,
        "output_tooltips": ["The decoded image."],
    },
    "GetImageSize": {
        "input": {"required": {"image": ["IMAGE", {}]}, "hidden": {"unique_id": "UNIQUE_ID"}},
        "input_order": {"required": ["image"], "hidden": ["unique_id"]},
        "output": ["INT", "INT", "INT"],
        "output_is_list": [False, False, False],
        "output_name": ["width", "height", "batch_size"],
        "output_tooltips": [None, None, None],
        "name": "GetImageSize",
        "display_name": "Get Image Size",
        "description": "Returns width and height of the image, and passes it through unchanged.",
        "python_module": "comfy_extras.nodes_images",
        "category": "image",
        "output_node": False,
        "deprecated": False,
        "experimental": False,
        "api_node": False,
    },
}

EXTRA["UpscaleModelLoader"] = {
    "input": {"required": {"model_name": [[], {}]}},
    "input_order": {"required": ["model_name"]},
    "output": ["UPSCALE_MODEL"],
    "output_is_list": [False],
    "output_name": ["UPSCALE_MODEL"],
    "name": "UpscaleModelLoader",
    "display_name": "Load Upscale Model",
    "description": "",
    "python_module": "comfy_extras.nodes_upscale_model",
    "category": "loaders",
    "output_node": False,
}
EXTRA["ImageUpscaleWithModel"] = {
    "input": {"required": {"upscale_model": ["UPSCALE_MODEL"], "image": ["IMAGE"]}},
    "input_order": {"required": ["upscale_model", "image"]},
    "output": ["IMAGE"],
    "output_is_list": [False],
    "output_name": ["IMAGE"],
    "name": "ImageUpscaleWithModel",
    "display_name": "Upscale Image (using Model)",
    "description": "",
    "python_module": "comfy_extras.nodes_upscale_model",
    "category": "image/upscaling",
    "output_node": False,
}

MODEL_FOLDERS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
    "upscale_models", "custom_nodes", "hypernetworks", "photomaker", "classifiers",
    "model_patches", "audio_encoders",
]  # fmt: skip

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


class NodeError(Exception):
    """A failure raised inside a node (becomes ``execution_error``)."""

    def __init__(self, message: str, exception_type: str = "Exception") -> None:
        super().__init__(message)
        self.exception_type = exception_type


class NodeContext(Protocol):
    """What a running node may ask of the executor."""

    node_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    output_dir: Path
    temp_dir: Path
    input_dir: Path
    sampler_steps: int
    seconds_per_job: float
    preview_every: int

    async def checkpoint(self) -> None: ...

    async def progress(
        self, value: int, total: int, preview: tuple[str, Image.Image] | None
    ) -> None: ...

    async def progress_text(self, text: str) -> None: ...

    async def render(self, text: str, seed: int, width: int, height: int) -> Image.Image: ...


Outputs = tuple[Any, ...]
UI = dict[str, Any] | None
NodeFn = Callable[[NodeContext, dict[str, Any]], Awaitable[tuple[Outputs, UI]]]


@dataclass
class NodeSpec:
    name: str
    run: NodeFn
    output_node: bool = False
    never_cached: bool = False
    hidden: dict[str, str] = field(default_factory=dict)


def object_info_entry(
    name: str,
    checkpoints: Sequence[str],
    input_dir: Path,
    upscale_models: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``/object_info`` entry for ``name``, with its dynamic choice lists filled in."""
    base = RECORDED.get(name) or EXTRA[name]
    entry = copy.deepcopy(base)
    if name == "CheckpointLoaderSimple":
        entry["input"]["required"]["ckpt_name"][0] = list(checkpoints)
    elif name == "UpscaleModelLoader":
        entry["input"]["required"]["model_name"][0] = list(upscale_models)
    elif name == "LoadImage":
        entry["input"]["required"]["image"][0] = list_input_images(input_dir)
    return entry


def list_input_images(input_dir: Path) -> list[str]:
    try:
        names = [p.name for p in input_dir.iterdir() if p.is_file()]
    except OSError:
        return []
    return sorted(n for n in names if n.lower().endswith(IMAGE_EXTENSIONS))


def annotated_path(name: str, dirs: dict[str, Path]) -> tuple[str, Path]:
    """Split ``"sub/name.png [output]"`` into the name and its base folder (input by default)."""
    for kind in ("input", "output", "temp"):
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], dirs[kind]
    return name, dirs["input"]


def resolve_input_image(name: str, dirs: dict[str, Path]) -> Path | None:
    rel, base = annotated_path(name, dirs)
    candidate = (base / rel).resolve()
    root = base.resolve()
    if os.path.commonpath((root, candidate)) != str(root) or not candidate.is_file():
        return None
    return candidate


def fake_tensor(images: list[Image.Image]) -> str:
    """``str()`` of a torch tensor holding ``images`` (first rows only), like the real error."""
    if not images:
        return "tensor([])"
    first = images[0].convert("RGB")
    rows = []
    for y in range(min(first.height, 16)):
        pixels = []
        for x in range(min(first.width, 3)):
            r, g, b = first.getpixel((x, y))  # type: ignore[misc]
            pixels.append(f"[{r / 255:.4f}, {g / 255:.4f}, {b / 255:.4f}]")
        rows.append("[" + ",\n           ".join(pixels) + "]")
    return "tensor([[" + ",\n\n         ".join(rows) + "]])"


def _prefix_parts(prefix: str) -> tuple[str, str]:
    normalised = os.path.normpath(prefix)
    return os.path.dirname(normalised), os.path.basename(normalised)


def _next_counter(folder: Path, filename: str) -> int:
    pattern = re.compile(re.escape(filename) + r"_(\d+)")
    highest = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 1
    for entry in entries:
        match = pattern.match(entry.name)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest + 1


def save_images(
    images: list[Image.Image],
    prefix: str,
    base: Path,
    kind: str,
    prompt: dict[str, Any],
    extra_data: dict[str, Any],
) -> list[dict[str, str]]:
    """ComfyUI's ``get_save_image_path`` + PNG writing with ``prompt``/extra tEXt chunks."""
    subfolder, filename = _prefix_parts(prefix)
    output_dir = os.path.abspath(base)
    full_folder = os.path.abspath(os.path.join(output_dir, subfolder))
    common = os.path.commonpath((output_dir, full_folder))
    if common != output_dir:
        raise NodeError(
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {full_folder}"
            f"\n         output_dir: {output_dir}"
            f"\n         commonpath: {common}"
        )
    folder = Path(full_folder)
    folder.mkdir(parents=True, exist_ok=True)
    counter = _next_counter(folder, filename)
    results = []
    for image in images:
        info = PngImagePlugin.PngInfo()
        info.add_text("prompt", json.dumps(prompt))
        extra = extra_data.get("extra_pnginfo")
        if isinstance(extra, dict):
            for key, value in extra.items():
                info.add_text(str(key), json.dumps(value))
        name = f"{filename}_{counter:05}_.png"
        image.save(folder / name, pnginfo=info, compress_level=4)
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return results


def _images(value: Any) -> list[Image.Image]:
    if isinstance(value, list) and all(isinstance(v, Image.Image) for v in value):
        return list(value)
    raise NodeError(f"expected an IMAGE batch, got {type(value).__name__}", "TypeError")


async def _checkpoint_loader(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    name = str(inputs["ckpt_name"])
    return ({"model": name}, {"clip": name}, {"vae": name}), None


async def _clip_text_encode(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    return ({"text": str(inputs["text"])},), None


async def _empty_latent(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    latent = {
        "width": int(inputs["width"]),
        "height": int(inputs["height"]),
        "batch_size": int(inputs["batch_size"]),
        "images": None,
    }
    return (latent,), None


async def _ksampler(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    latent = inputs["latent_image"]
    positive = inputs["positive"]
    text = positive.get("text", "") if isinstance(positive, dict) else str(positive)
    seed = int(inputs["seed"])
    width = int(latent.get("width", 512))
    height = int(latent.get("height", 512))
    batch = int(latent.get("batch_size", 1))
    finals = [await ctx.render(text, seed + i, width, height) for i in range(batch)]
    steps = max(1, ctx.sampler_steps)
    pause = ctx.seconds_per_job / steps
    every = max(1, ctx.preview_every)
    for step in range(1, steps + 1):
        await ctx.checkpoint()
        if pause > 0:
            await asyncio.sleep(pause)
        await ctx.checkpoint()
        preview = None
        if step % every == 0:
            preview = ("JPEG", render.noisy_preview(finals[0], step / steps, seed + step))
        await ctx.progress(step, steps, preview)
    out = {"width": width, "height": height, "batch_size": batch, "images": finals, "seed": seed}
    return (out,), None


async def _vae_decode(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    latent = inputs["samples"]
    images = latent.get("images") if isinstance(latent, dict) else None
    if not images:
        width = int(latent.get("width", 512)) if isinstance(latent, dict) else 512
        height = int(latent.get("height", 512)) if isinstance(latent, dict) else 512
        batch = int(latent.get("batch_size", 1)) if isinstance(latent, dict) else 1
        images = [render.solid(width, height, 0x808080) for _ in range(batch)]
    return ([img.copy() for img in images],), None


async def _save_image(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    images = _images(inputs["images"])
    prefix = str(inputs.get("filename_prefix", "ComfyUI"))
    saved = save_images(images, prefix, ctx.output_dir, "output", ctx.prompt, ctx.extra_data)
    return (), {"images": saved}


async def _preview_image(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    images = _images(inputs["images"])
    tag = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
    prefix = f"ComfyUI_temp_{tag}"
    saved = save_images(images, prefix, ctx.temp_dir, "temp", ctx.prompt, ctx.extra_data)
    return (), {"images": saved}


async def _save_image_websocket(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    images = _images(inputs["images"])
    total = len(images)
    for step, image in enumerate(images):
        await ctx.progress(step, total, ("PNG", image))
    return (), {}


async def _empty_image(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    width, height = int(inputs["width"]), int(inputs["height"])
    color = int(inputs.get("color", 0))
    batch = int(inputs["batch_size"])
    return ([render.solid(width, height, color) for _ in range(batch)],), None


async def _image_invert(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    return ([ImageOps.invert(img.convert("RGB")) for img in _images(inputs["image"])],), None


async def _image_blur(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    sigma = float(inputs.get("sigma", 1.0))
    blur = ImageFilter.GaussianBlur(radius=sigma)
    return ([img.filter(blur) for img in _images(inputs["image"])],), None


_RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


async def _image_scale(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    method = _RESAMPLE.get(str(inputs.get("upscale_method")), Image.Resampling.BILINEAR)
    out = []
    for img in _images(inputs["image"]):
        width, height = int(inputs["width"]), int(inputs["height"])
        if width == 0 and height == 0:
            out.append(img.copy())
            continue
        if width == 0:
            width = max(1, round(img.width * height / img.height))
        if height == 0:
            height = max(1, round(img.height * width / img.width))
        if inputs.get("crop") == "center":
            out.append(ImageOps.fit(img, (width, height), method))
        else:
            out.append(img.resize((width, height), method))
    return (out,), None


async def _load_image(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    dirs = {"input": ctx.input_dir, "output": ctx.output_dir, "temp": ctx.temp_dir}
    path = resolve_input_image(str(inputs["image"]), dirs)
    if path is None:
        raise NodeError(
            f"[Errno 2] No such file or directory: '{inputs['image']}'", "FileNotFoundError"
        )
    with Image.open(path) as img:
        image = img.convert("RGB")
    mask = Image.new("L", image.size, 0)
    return ([image], [mask]), None


def model_scale(name: str) -> int:
    """The factor an upscale model's file name announces ("4x-UltraSharp", "RealESRGAN_x2")."""
    match = re.search(r"(?:^|[^a-z0-9])(\d)x|x(\d)(?:[^0-9]|$)", name.lower())
    if match is None:
        return 4
    return max(1, int(match.group(1) or match.group(2)))


async def _upscale_model_loader(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    name = str(inputs["model_name"])
    return ({"upscale_model": name, "scale": model_scale(name)},), None


async def _image_upscale_with_model(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    model = inputs["upscale_model"]
    if not isinstance(model, dict) or "scale" not in model:
        raise NodeError("expected an UPSCALE_MODEL", "TypeError")
    scale = int(model["scale"])
    images = _images(inputs["image"])
    out = []
    for index, img in enumerate(images):
        await ctx.progress(index, len(images), None)
        size = (img.width * scale, img.height * scale)
        out.append(await asyncio.to_thread(img.resize, size, Image.Resampling.LANCZOS))
    await ctx.progress(len(images), len(images), None)
    return (out,), None


async def _get_image_size(ctx: NodeContext, inputs: dict[str, Any]) -> tuple[Outputs, UI]:
    images = _images(inputs["image"])
    width, height = images[0].size
    batch = len(images)
    await ctx.progress_text(f"width: {width}, height: {height}\n batch size: {batch}")
    return (width, height, batch), None


NODES: dict[str, NodeSpec] = {
    spec.name: spec
    for spec in (
        NodeSpec("CheckpointLoaderSimple", _checkpoint_loader),
        NodeSpec("CLIPTextEncode", _clip_text_encode),
        NodeSpec("EmptyLatentImage", _empty_latent),
        NodeSpec("KSampler", _ksampler),
        NodeSpec("VAEDecode", _vae_decode),
        NodeSpec(
            "SaveImage",
            _save_image,
            output_node=True,
            hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        ),
        NodeSpec(
            "PreviewImage",
            _preview_image,
            output_node=True,
            hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        ),
        NodeSpec("SaveImageWebsocket", _save_image_websocket, output_node=True, never_cached=True),
        NodeSpec("EmptyImage", _empty_image),
        NodeSpec("ImageInvert", _image_invert),
        NodeSpec("ImageBlur", _image_blur),
        NodeSpec("ImageScale", _image_scale),
        NodeSpec("LoadImage", _load_image),
        NodeSpec("UpscaleModelLoader", _upscale_model_loader),
        NodeSpec("ImageUpscaleWithModel", _image_upscale_with_model),
        NodeSpec("GetImageSize", _get_image_size, hidden={"unique_id": "UNIQUE_ID"}),
    )
}


def return_types(name: str) -> list[str]:
    base = RECORDED.get(name) or EXTRA[name]
    return list(base["output"])


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
