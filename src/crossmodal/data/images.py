"""Decoding image files into the one form every encoder accepts: a fully loaded RGB image.

Photo folders are messy (phone pictures rotated only by an EXIF tag, half-copied files, text
files with a .jpg name), so every failure becomes an `ImageLoadError` with a reason short enough
to print beside the file name in a skip list, instead of a PIL traceback in the middle of a run.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

from PIL import Image, ImageFile, UnidentifiedImageError

from crossmodal.errors import ImageLoadError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "decode_bytes",
    "decode_opened",
    "is_image_file",
    "load_image",
]

#: Suffixes (lower case) that gallery scans and dataset folders treat as images.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)

#: Same as Pillow's own warning threshold (about 89.5 megapixels, a 1/4 GiB RGBA buffer x 3).
DEFAULT_MAX_PIXELS = 89_478_485

# Everything Pillow's decoders are known to raise on damaged data. UnidentifiedImageError is an
# OSError too, so it has to be caught before this tuple.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    zlib.error,
)


def is_image_file(path: str | Path) -> bool:
    """Whether a directory scan should try to load this file (by suffix; dot-files excluded)."""
    p = Path(path)
    return not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def load_image(
    path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Fully decoded RGB image, upright as the camera meant it, or `ImageLoadError`.

    EXIF orientation is applied because phones store portrait shots as rotated landscape
    pixels, and an encoder shown a sideways photo retrieves badly. Only the first frame of
    animated images is used. The whole file is decoded here (not lazily) so that truncated
    files fail at load time, with their name, rather than later inside a batch. Transparent
    pixels are laid over white, since "RGBA -> RGB" alone turns them black.

    `draft_size=S` lets JPEGs decode at 1/2, 1/4 or 1/8 scale (in the DCT, several times
    faster) as long as both sides stay >= S: for a model that resizes to S anyway.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageLoadError("file not found", "unreadable") from None
    except OSError as e:
        raise ImageLoadError(f"cannot read: {e.strerror or e}", "unreadable") from None
    if not p.is_file():
        raise ImageLoadError("not a regular file", "unreadable")
    if st.st_size == 0:
        raise ImageLoadError("empty file (0 bytes)", "empty")

    im = _open(p, max_pixels)
    try:
        return decode_opened(im, max_pixels, draft_size)
    finally:
        im.close()


def decode_bytes(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
    formats: tuple[str, ...] | None = None,
) -> Image.Image:
    """`load_image` for bytes in memory (an upload): upright RGB, or `ImageLoadError` whose
    `kind` says why. `formats` limits which decoders may open the bytes (untrusted input
    should not reach, say, EPS, which runs Ghostscript). The format and pixel count come from
    the header before any pixel is decoded, so a decompression bomb costs nothing."""
    if not data:
        raise ImageLoadError("empty file (0 bytes)", "empty")
    try:
        im = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError:
        raise ImageLoadError(
            f"too large: exceeds the limit of {max_pixels} pixels", "too_large"
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError("not an image (cannot identify format)", "not_image") from None
    except _DECODE_ERRORS as e:
        raise ImageLoadError(f"truncated or corrupt: {e}", "corrupt") from None
    try:
        return decode_opened(im, max_pixels, draft_size)
    finally:
        im.close()


def decode_opened(
    im: ImageFile.ImageFile, max_pixels: int, draft_size: int | None = None
) -> Image.Image:
    """The one decoder of files and uploads: an opened image (its header read, no pixels
    yet) -> upright RGB, or `ImageLoadError`.

    Memory: the pixel count is checked from the header first; a JPEG is decoded at the
    smallest DCT scale that keeps both sides >= `draft_size` (1/2 .. 1/8); any other format
    is decoded whole (its decoders have no scaled mode), then box-reduced by the largest
    integer factor that keeps both sides >= `draft_size` before any further copy is made (the
    mode conversion, the EXIF rotation): the peak is one decoded frame, never three.
    """
    _check_size(im.size, max_pixels)
    if draft_size and im.format == "JPEG":
        im.draft(None, (draft_size, draft_size))
    try:
        im.load()
    except Image.DecompressionBombError:
        raise ImageLoadError(_too_large(im.size, max_pixels), "too_large", im.size) from None
    except _DECODE_ERRORS as e:
        raise ImageLoadError(f"truncated or corrupt: {e}", "corrupt") from None
    frame: Image.Image = im
    factor = min(im.size) // draft_size if draft_size else 0
    if factor >= 2 and im.mode in _REDUCIBLE:
        frame = im.reduce(factor)
    turn = _ORIENTATION.get(_orientation(im))
    return _to_rgb(frame.transpose(turn) if turn is not None else frame)


#: modes `Image.reduce` takes (a palette image is reduced after its conversion instead)
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBa", "La", "I", "F", "CMYK", "YCbCr"})

#: EXIF orientation -> the turn that makes the pixels upright (as `ImageOps.exif_transpose`)
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block should not cost the pixels, which decoded fine
        return 1


# Pillow warns about damage it reads past ("Corrupt EXIF data", "Truncated File Read"), and
# about sizes over its own threshold; this module either decodes the file or says why not in
# its own words, so those warnings would only be raw lines in the middle of an index run's
# output. Filtered once here, process-wide: `warnings.catch_warnings` around each decode is
# not thread-safe, and files are decoded on several threads.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _open(p: Path, max_pixels: int) -> ImageFile.ImageFile:
    """Image.open with our own messages, and without Pillow's hard limit overriding ours."""
    try:
        return Image.open(p)  # its warnings: filtered below
    except Image.DecompressionBombError:
        # Pillow refuses images over 2x its global limit before we can see their size.
        # Mutating Image.MAX_IMAGE_PIXELS would affect other threads, so read the header
        # through the format plugins directly instead.
        im = _open_unchecked(p)
        if im is None:
            raise ImageLoadError(
                f"too large: exceeds the limit of {max_pixels} pixels", "too_large"
            ) from None
        return im
    except UnidentifiedImageError:
        raise ImageLoadError("not an image (cannot identify format)", "not_image") from None
    except PermissionError as e:
        raise ImageLoadError(f"cannot read: {e.strerror or e}", "unreadable") from None
    except _DECODE_ERRORS as e:
        raise ImageLoadError(f"truncated or corrupt: {e}", "corrupt") from None


def _open_unchecked(p: Path) -> ImageFile.ImageFile | None:
    """Image.open minus the decompression-bomb check; None when no plugin takes the file."""
    Image.init()
    fp = open(p, "rb")  # noqa: SIM115 -- handed over to the image, which closes it
    try:
        prefix = fp.read(16)
        for fmt in Image.ID:
            factory, accept = Image.OPEN[fmt]
            try:
                ok = accept(prefix) if accept else True
                if ok and not isinstance(ok, str):
                    fp.seek(0)
                    im = factory(fp, os.fspath(p))
                    im._exclusive_fp = True  # so that im.close() closes fp
                    return im
            except _DECODE_ERRORS:
                continue
    except BaseException:
        fp.close()
        raise
    fp.close()
    return None


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageLoadError(_too_large(size, max_pixels), "too_large", size)


def _too_large(size: tuple[int, int], max_pixels: int) -> str:
    return f"too large: {size[0]} x {size[1]} pixels exceeds the limit of {max_pixels}"


def _to_rgb(im: Image.Image) -> Image.Image:
    """An RGB copy that no longer refers to the file (so the caller may close it)."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: convert("RGB") would clip everything above 255 to white.
        im = im.point(lambda v: v / 256).convert("L")
    return im.convert("RGB")
