"""Print-file preparation, image inspection and preflight badges."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from pod_studio.adapters import imaging
from pod_studio.adapters.imaging import prepare_print_file, read_image_info
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.preflight import (
    ImageInfo,
    PreflightBadge,
    effective_dpi,
    preflight,
)


def _pixels(im: Image.Image) -> list[tuple[int, ...]]:
    w, h = im.size
    out = []
    for y in range(h):
        for x in range(w):
            px = im.getpixel((x, y))
            assert isinstance(px, tuple)
            out.append(px)
    return out


def _red_background_design(path: Path, size: int = 64) -> None:
    """An opaque blue square on a fully transparent *red* background (worst case for halos)."""
    im = Image.new("RGBA", (size, size), (255, 0, 0, 0))
    q = size // 4
    im.paste((0, 0, 255, 255), (q, q, size - q, size - q))
    im.save(path)


# --- prepare_print_file ------------------------------------------------------------------------


def test_upscaled_rgba_has_no_red_fringe_and_a_clean_transparent_canvas(tmp_path: Path) -> None:
    src, dst = tmp_path / "design.png", tmp_path / "print.png"
    _red_background_design(src)
    info = prepare_print_file(src, dst, 300, 360)

    assert info.width == 300
    assert info.height == 360
    assert info.content_box == (0, 30, 300, 300)
    assert info.has_transparency
    assert info.source.width == 64
    assert info.source.mode == "RGBA"
    with Image.open(dst) as out:
        assert out.mode == "RGBA"
        assert out.size == (300, 360)
        pixels = _pixels(out)
    assert all(p[0] == 0 for p in pixels), "red leaked from the transparent background"
    edges = [p for p in pixels if 0 < p[3] < 255]
    assert edges, "a LANCZOS upscale should produce semi-transparent edge pixels"
    assert all(p[3] > 0 or p[:3] == (0, 0, 0) for p in pixels)  # transparent = (0,0,0,0)
    assert pixels[0] == (0, 0, 0, 0)  # the band above the design is transparent canvas
    assert info.file_size == dst.stat().st_size
    assert info.sha256 == hashlib.sha256(dst.read_bytes()).hexdigest()


def test_transparent_colour_is_cleared_even_without_resampling(tmp_path: Path) -> None:
    src, dst = tmp_path / "d.png", tmp_path / "p.png"
    _red_background_design(src, size=32)
    prepare_print_file(src, dst, 32, 32)
    with Image.open(dst) as out:
        assert out.getpixel((0, 0)) == (0, 0, 0, 0)
        assert out.getpixel((16, 16)) == (0, 0, 255, 255)


def test_dpi_and_srgb_profile_are_written(tmp_path: Path) -> None:
    src, dst = tmp_path / "d.png", tmp_path / "p.png"
    Image.new("RGB", (40, 50), (10, 200, 30)).save(src)
    info = prepare_print_file(src, dst, 80, 100, dpi=300)
    assert info.dpi == 300
    with Image.open(dst) as out:
        dpi = out.info["dpi"]
        assert (round(dpi[0]), round(dpi[1])) == (300, 300)  # PNG stores pixels per metre
        assert out.info.get("icc_profile") == imaging.SRGB_ICC
    read = read_image_info(dst)
    assert read.dpi is not None
    assert round(read.dpi[0]) == 300
    assert not read.has_transparency  # the design fills the canvas exactly


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    src, dst = tmp_path / "g16.png", tmp_path / "p.png"
    im = Image.new("I;16", (2, 2), 0)
    im.putpixel((0, 0), 32768)
    im.putpixel((1, 0), 65535)
    im.putpixel((0, 1), 200)
    im.save(src)
    with Image.open(src) as check:
        assert check.mode == "I;16"
    info = prepare_print_file(src, dst, 2, 2)
    assert info.source.mode == "I;16"
    with Image.open(dst) as out:
        assert out.getpixel((0, 0)) == (128, 128, 128, 255)  # 32768 / 257, not clipped to 255
        assert out.getpixel((1, 0)) == (255, 255, 255, 255)
        assert out.getpixel((0, 1)) == (1, 1, 1, 255)  # 200 / 257 rounds to 1, not kept at 200
        assert out.getpixel((1, 1)) == (0, 0, 0, 255)


def _palette_with_transparency(path: Path) -> None:
    im = Image.new("P", (8, 8), 0)
    im.putpalette([255, 255, 255, 200, 30, 30] + [0] * 762)
    im.paste(1, (2, 2, 6, 6))
    im.save(path, transparency=0)


@pytest.mark.parametrize(
    ("name", "make", "centre", "corner_alpha"),
    [
        ("p.png", _palette_with_transparency, (200, 30, 30, 255), 0),
        (
            "la.png",
            lambda p: Image.new("LA", (8, 8), (100, 128)).save(p),
            (100, 100, 100, 128),
            128,
        ),
        ("cmyk.jpg", lambda p: Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(p), None, 255),
        ("l.png", lambda p: Image.new("L", (8, 8), 77).save(p), (77, 77, 77, 255), 255),
    ],
)
def test_other_modes_convert_to_rgba(
    tmp_path: Path,
    name: str,
    make: object,
    centre: tuple[int, int, int, int] | None,
    corner_alpha: int,
) -> None:
    src, dst = tmp_path / name, tmp_path / "p.png"
    make(src)  # type: ignore[operator]
    info = prepare_print_file(src, dst, 8, 8)
    with Image.open(dst) as out:
        assert out.mode == "RGBA"
        assert out.size == (8, 8)
        corner = out.getpixel((0, 0))
        mid = out.getpixel((4, 4))
    assert isinstance(corner, tuple)
    assert isinstance(mid, tuple)
    assert corner[3] == corner_alpha
    if centre is not None:
        assert mid == centre
    else:  # CMYK white
        assert min(mid[:3]) >= 250
    assert info.has_transparency == (corner_alpha < 255)


def test_embedded_profile_is_converted_to_srgb(tmp_path: Path) -> None:
    src, dst = tmp_path / "icc.png", tmp_path / "p.png"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGBA", (4, 4), (120, 60, 30, 200)).save(src, icc_profile=srgb)
    info = prepare_print_file(src, dst, 4, 4)
    assert info.icc_converted
    with Image.open(dst) as out:
        px = out.getpixel((1, 1))
    assert isinstance(px, tuple)
    assert px[3] == 200  # alpha survives the colour conversion
    assert all(abs(a - b) <= 2 for a, b in zip(px[:3], (120, 60, 30), strict=True))


def test_unusable_profile_is_ignored_not_fatal(tmp_path: Path) -> None:
    src, dst = tmp_path / "badicc.png", tmp_path / "p.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(src, icc_profile=b"not a profile at all")
    info = prepare_print_file(src, dst, 4, 4)
    assert not info.icc_converted
    with Image.open(dst) as out:
        assert out.getpixel((0, 0)) == (1, 2, 3, 255)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty \(0 bytes\)"),
        (b"hello, I am a text file\n", "not an image"),
    ],
)
def test_empty_and_non_image_files_are_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    src = tmp_path / "bad.png"
    src.write_bytes(content)
    for call in (
        lambda: prepare_print_file(src, tmp_path / "o.png", 8, 8),
        lambda: read_image_info(src),
    ):
        with pytest.raises(ValidationError, match=message) as info:
            call()
        assert "bad.png" in info.value.user_message
    assert not (tmp_path / "o.png").exists()


def test_truncated_image_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    src = tmp_path / "cut.png"
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValidationError, match="damaged"):
        prepare_print_file(src, tmp_path / "o.png", 8, 8)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        read_image_info(tmp_path / "nope.png")


@pytest.mark.parametrize("limit", [1000, 700])  # 1600 px: above 1x (warning) and 2x (error)
@pytest.mark.parametrize("warnings_as_errors", [False, True])
def test_too_many_pixels_is_a_validation_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, warnings_as_errors: bool
) -> None:
    src = tmp_path / "big.png"
    Image.new("L", (40, 40)).save(src)
    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", limit)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with warnings.catch_warnings():
        warnings.simplefilter("error" if warnings_as_errors else "ignore")
        with pytest.raises(ValidationError, match=f"above the {limit:,} pixel limit"):
            prepare_print_file(src, tmp_path / "o.png", 8, 8)
    assert not (tmp_path / "o.png").exists()


def test_pillow_limit_is_set_explicitly() -> None:
    assert Image.MAX_IMAGE_PIXELS == imaging.MAX_IMAGE_PIXELS


@pytest.mark.parametrize(("w", "h", "dpi"), [(0, 10, 300), (10, -1, 300), (10, 10, 10)])
def test_bad_canvas_arguments(tmp_path: Path, w: int, h: int, dpi: int) -> None:
    src = tmp_path / "d.png"
    Image.new("RGB", (4, 4)).save(src)
    with pytest.raises(ValidationError):
        prepare_print_file(src, tmp_path / "o.png", w, h, dpi=dpi)


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    src = tmp_path / "d.png"
    Image.new("RGB", (4, 4)).save(src)
    dst = tmp_path / "out.png"
    dst.mkdir()  # os.replace onto a directory fails
    with pytest.raises(OSError):
        prepare_print_file(src, dst, 8, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "out.png"]


def test_read_image_info(tmp_path: Path) -> None:
    white = tmp_path / "white.png"
    im = Image.new("RGB", (30, 20), (255, 255, 255))
    im.paste((0, 0, 0), (10, 5, 20, 15))
    im.save(white, dpi=(72, 72))
    info = read_image_info(white)
    assert (info.width, info.height, info.mode) == (30, 20, "RGB")
    assert not info.has_alpha
    assert not info.has_transparency
    assert info.opaque_white_background
    assert info.file_size == white.stat().st_size
    assert info.dpi is not None
    assert round(info.dpi[0]) == 72

    rgba = tmp_path / "rgba.png"
    _red_background_design(rgba, 16)
    info2 = read_image_info(rgba)
    assert info2.has_alpha
    assert info2.has_transparency
    assert not info2.opaque_white_background
    assert info2.dpi is None


# --- preflight ----------------------------------------------------------------------------------


def _info(w: int, h: int, **kw: object) -> ImageInfo:
    base: dict[str, object] = {
        "mode": "RGBA",
        "has_alpha": True,
        "has_transparency": True,
        "file_size": 1000,
    }
    base.update(kw)
    return ImageInfo(width=w, height=h, **base)  # type: ignore[arg-type]


def test_effective_dpi() -> None:
    assert effective_dpi(4500, 4500) == 300
    assert effective_dpi(2250, 4500) == 150
    assert effective_dpi(2250, 4500, scale=0.5) == 300


@pytest.mark.parametrize(
    ("width", "height", "badge", "dpi"),
    [
        (4500, 5400, PreflightBadge.PASS, 300.0),
        (3000, 3600, PreflightBadge.WARN, 200.0),
        (2250, 2700, PreflightBadge.WARN, 150.0),  # exactly 150 is not a failure
        (1024, 1229, PreflightBadge.WARN, 68.3),  # a typical SDXL design: soft, not refused
        (800, 960, PreflightBadge.FAIL, 53.3),
    ],
)
def test_preflight_dpi_badges(width: int, height: int, badge: PreflightBadge, dpi: float) -> None:
    result = preflight(_info(width, height), (4500, 5400), 50_000_000)
    assert result.badge is badge
    assert result.effective_dpi == dpi
    assert (len(result.reasons) == 0) == (badge is PreflightBadge.PASS)
    if badge is PreflightBadge.FAIL:
        assert "Resolution too low" in result.reasons[0]


def test_preflight_aspect_mismatch_warns() -> None:
    square = preflight(_info(5400, 5400), (4500, 5400), 50_000_000)
    assert square.badge is PreflightBadge.WARN
    assert square.aspect_ratio_delta == pytest.approx(0.2)
    assert "shape" in square.reasons[0]
    near = preflight(_info(4700, 5400), (4500, 5400), 50_000_000)
    assert near.badge is PreflightBadge.PASS
    assert near.aspect_ratio_delta < 0.10


def test_preflight_file_too_big_fails() -> None:
    result = preflight(_info(4500, 5400, file_size=30 * 1024 * 1024), (4500, 5400), 20_000_000)
    assert result.badge is PreflightBadge.FAIL
    assert "30.0 MB" in result.reasons[0]
    assert result.file_size == 30 * 1024 * 1024


def test_preflight_white_background_warns_for_garments_only() -> None:
    info = _info(
        4500,
        5400,
        mode="RGB",
        has_alpha=False,
        has_transparency=False,
        opaque_white_background=True,
    )
    garment = preflight(info, (4500, 5400), 50_000_000)
    assert garment.badge is PreflightBadge.WARN
    assert "white background" in garment.reasons[0]
    assert not garment.has_transparency
    poster = preflight(info, (4500, 5400), 50_000_000, garment=False)
    assert poster.badge is PreflightBadge.PASS


def test_preflight_fail_reasons_come_first() -> None:
    result = preflight(_info(500, 500, file_size=10**9), (4500, 5400), 10**6)
    assert result.badge is PreflightBadge.FAIL
    assert len(result.reasons) == 3
    assert result.reasons[0].startswith("Resolution too low")
    assert "limit" in result.reasons[1]
    assert "shape" in result.reasons[2]


def test_prepared_file_is_judged_by_its_source(tmp_path: Path) -> None:
    src, dst = tmp_path / "d.png", tmp_path / "p.png"
    _red_background_design(src, 50)
    info = prepare_print_file(src, dst, 300, 360)
    # The print file is 300 px wide, but the design behind it has only 50 px.
    result = preflight(info, (300, 360), 10_000_000)
    assert result.effective_dpi == 50.0
    assert result.badge is PreflightBadge.FAIL
    assert result.file_size == info.file_size
    assert result.has_transparency
