from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmodal.data import IMAGE_EXTENSIONS, is_image_file, load_image
from crossmodal.errors import CrossmodalError, ImageLoadError

from .corpus import write_jpeg


def _noisy(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_extensions() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"} == IMAGE_EXTENSIONS
    assert is_image_file("a/B.JPG") and is_image_file("x.tiff")
    assert not is_image_file("notes.txt") and not is_image_file(".hidden.jpg")


def test_good_jpeg(tmp_path: Path) -> None:
    p = write_jpeg(tmp_path / "a.jpg", size=(30, 20), color=(250, 10, 10))
    im = load_image(p)
    assert im.mode == "RGB" and im.size == (30, 20)
    r, g, b = im.getpixel((15, 10))
    assert r > 200 and g < 50 and b < 50
    # fully decoded and detached: works after the file is gone
    p.unlink()
    assert np.asarray(im).shape == (20, 30, 3)


def test_png_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 20))  # white strip on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    p = tmp_path / "rotated.png"
    im.save(p, exif=exif)
    with Image.open(p) as raw:
        assert raw.size == (40, 20)  # the file itself is landscape
    out = load_image(p)
    assert out.size == (20, 40)
    # after a clockwise turn the left strip is on top
    assert out.getpixel((10, 2)) == (255, 255, 255)
    assert out.getpixel((10, 37)) == (0, 0, 0)


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(p) as raw:
        assert raw.n_frames == 2
    out = load_image(p)
    assert out.mode == "RGB"
    assert out.getpixel((4, 4)) == (255, 0, 0)


def test_transparency_becomes_white_and_grey_becomes_rgb(tmp_path: Path) -> None:
    p = tmp_path / "t.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(p)
    assert load_image(p).getpixel((1, 1)) == (255, 255, 255)
    g = tmp_path / "g.png"
    Image.new("L", (4, 4), 77).save(g)
    out = load_image(g)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (77, 77, 77)


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.touch()
    with pytest.raises(ImageLoadError) as e:
        load_image(p)
    assert str(e.value) == "empty file (0 bytes)"


def test_text_file_named_jpg(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("these are not pixels\n")
    with pytest.raises(ImageLoadError) as e:
        load_image(p)
    assert str(e.value) == "not an image (cannot identify format)"


def test_truncated_jpeg(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _noisy((64, 64)).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError) as e:
        load_image(p)
    assert str(e.value).startswith("truncated or corrupt: ")
    assert "truncated" in str(e.value)[len("truncated or corrupt: ") :]


def test_pixel_limit(tmp_path: Path) -> None:
    p = write_jpeg(tmp_path / "big.jpg", size=(100, 60))
    with pytest.raises(ImageLoadError) as e:
        load_image(p, max_pixels=5999)
    assert str(e.value) == "too large: 100 x 60 pixels exceeds the limit of 5999"
    assert load_image(p, max_pixels=6000).size == (100, 60)


def test_pixel_limit_beyond_pillows_own_hard_limit(tmp_path: Path) -> None:
    # A 20000 x 20000 PNG header: Pillow itself refuses it as a decompression bomb before we
    # see the size; we still report the dimensions.
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    p = tmp_path / "bomb.png"
    p.write_bytes(png)
    with pytest.raises(ImageLoadError) as e:
        load_image(p)
    assert str(e.value) == "too large: 20000 x 20000 pixels exceeds the limit of 89478485"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as e:
        load_image(tmp_path / "nope.jpg")
    assert str(e.value) == "file not found"
    with pytest.raises(CrossmodalError):
        load_image(tmp_path)


def test_decode_bytes_is_load_image_for_memory_with_a_kind_per_failure() -> None:
    from crossmodal.data.images import decode_bytes

    buf = io.BytesIO()
    Image.new("RGB", (30, 20), (10, 200, 10)).save(buf, "PNG")
    good = buf.getvalue()
    im = decode_bytes(good)
    assert im.mode == "RGB" and im.size == (30, 20)
    cases = {
        b"": ("empty", "empty file (0 bytes)"),
        b"just text": ("not_image", "not an image (cannot identify format)"),
        good[: len(good) // 2]: ("corrupt", "truncated or corrupt: "),
    }
    for data, (kind, words) in cases.items():
        with pytest.raises(ImageLoadError) as e:
            decode_bytes(data)
        assert e.value.kind == kind and str(e.value).startswith(words)
    with pytest.raises(ImageLoadError) as e:
        decode_bytes(good, max_pixels=599)
    assert e.value.kind == "too_large" and e.value.size == (30, 20)
    assert str(e.value) == "too large: 30 x 20 pixels exceeds the limit of 599"
    # a format outside the allowed list is not opened at all
    with pytest.raises(ImageLoadError) as e:
        decode_bytes(good, formats=("JPEG",))
    assert e.value.kind == "not_image"
