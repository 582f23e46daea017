"""Sandbox layer: Pillow pictures for the simulated ComfyUI server.

Renders a deterministic "design" from a prompt text, a seed and a size (seeded colour gradient,
a few shapes and some words of the prompt), plus the noisy intermediate previews a sampler would
stream. Nothing here touches the network or the rest of the package.
"""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw, ImageFont, ImageOps

_FONT_CACHE: dict[int, ImageFont.ImageFont | ImageFont.FreeTypeFont] = {}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    size = max(8, min(size, 96))
    font = _FONT_CACHE.get(size)
    if font is None:
        try:
            font = ImageFont.load_default(size=size)
        except (OSError, TypeError, ValueError):
            font = ImageFont.load_default()
        _FONT_CACHE[size] = font
    return font


def _rng(text: str, seed: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{text}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def render_design(text: str, seed: int, width: int, height: int) -> Image.Image:
    """A picture that clearly differs between prompts and seeds (same inputs, same pixels)."""
    width = max(1, int(width))
    height = max(1, int(height))
    rng = _rng(text, seed)
    gradient = Image.linear_gradient("L").rotate(rng.choice((0, 45, 90, 135, 180, 270)))
    gradient = gradient.resize((width, height), Image.Resampling.BILINEAR)
    picture = ImageOps.colorize(gradient, _colour(rng), _colour(rng)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    short = min(width, height)
    for _ in range(rng.randint(3, 7)):
        size = max(2, int(short * rng.uniform(0.12, 0.45)))
        x = rng.randrange(-size // 2, max(1, width - size // 2))
        y = rng.randrange(-size // 2, max(1, height - size // 2))
        box = (x, y, x + size, y + size)
        shape = rng.choice(("ellipse", "rectangle", "triangle"))
        fill = _colour(rng)
        outline = _colour(rng)
        line = max(1, short // 96)
        if shape == "ellipse":
            draw.ellipse(box, fill=fill, outline=outline, width=line)
        elif shape == "rectangle":
            draw.rectangle(box, fill=fill, outline=outline, width=line)
        else:
            draw.polygon([(x + size // 2, y), (x + size, y + size), (x, y + size)], fill=fill)
    words = " ".join(text.split()[:4])
    if words and short >= 32:
        font = _font(short // 12)
        margin = max(2, short // 32)
        left, top, right, bottom = draw.textbbox((margin, margin), words, font=font)
        draw.rectangle(
            (left - 2, top - 2, right + 2, bottom + 2),
            fill=(0, 0, 0),
        )
        draw.text((margin, margin), words, fill=(255, 255, 255), font=font)
        stamp = f"seed {seed}"
        draw.text((margin, height - margin - short // 12), stamp, fill=(255, 255, 255), font=font)
    return picture


def noisy_preview(final: Image.Image, fraction: float, seed: int) -> Image.Image:
    """A small preview that goes from noise (fraction 0) to the final picture (fraction 1)."""
    width = max(8, final.width // 4)
    height = max(8, final.height // 4)
    small = final.resize((width, height), Image.Resampling.BILINEAR)
    rng = random.Random(seed)
    noise = Image.effect_noise((width, height), 40 + rng.randrange(40)).convert("RGB")
    return Image.blend(noise, small, max(0.0, min(1.0, fraction)))


def solid(width: int, height: int, color: int) -> Image.Image:
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    return Image.new("RGB", (max(1, int(width)), max(1, int(height))), rgb)


def encode(image: Image.Image, fmt: str) -> bytes:
    """Encode like ComfyUI's preview sender (JPEG quality 95, PNG compress level 1)."""
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
