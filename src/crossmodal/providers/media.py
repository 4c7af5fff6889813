"""Saving generated images and videos: the file, plus a JSON sidecar of prompt and provider.

Files land in `<media dir>/images/` or `<media dir>/videos/` named by time and a hash of the
prompt, so two generations never overwrite each other. The sidecar (`<file>.json`) holds the
prompt, provider, model, task id and source URL; images are ordinary files that
`crossmodal index <media dir>/images` indexes like any photo (the prompt then serves as the
caption through `captions_for`).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from crossmodal.providers.base import GeneratedMedia, ProviderError

__all__ = ["captions_for", "save_media"]

_VIDEO_MAGIC = (b"ftyp", b"\x1a\x45\xdf\xa3")  # MP4 box at offset 4, WebM/Matroska at 0


def _image_suffix(data: bytes, provider: str) -> str:
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = (img.format or "").lower()
    except (UnidentifiedImageError, OSError):
        raise ProviderError(provider, "the generated image is not a readable image file") from None
    return {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}.get(fmt, ".png")


def _video_suffix(data: bytes, provider: str) -> str:
    if data[4:8] == _VIDEO_MAGIC[0]:
        return ".mp4"
    if data[:4] == _VIDEO_MAGIC[1]:
        return ".webm"
    raise ProviderError(provider, "the generated video is neither MP4 nor WebM")


def save_media(
    data: bytes,
    kind: str,
    out_dir: Path,
    *,
    prompt: str,
    provider: str,
    model: str,
    source_url: str | None = None,
    cover_url: str | None = None,
    task_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> GeneratedMedia:
    suffix = _image_suffix(data, provider) if kind == "image" else _video_suffix(data, provider)
    folder = Path(out_dir).expanduser() / ("images" if kind == "image" else "videos")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha1(f"{prompt}\0{time.time_ns()}".encode()).hexdigest()[:8]
    path = folder / f"{stamp}-{digest}{suffix}"
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # a reader never sees half a file
    media = GeneratedMedia(
        kind=kind,
        path=path,
        prompt=prompt,
        provider=provider,
        model=model,
        source_url=source_url,
        cover_url=cover_url,
        task_id=task_id,
        meta={"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "bytes": len(data), **(meta or {})},
    )
    sidecar = media.to_dict()
    sidecar.pop("sidecar")
    sidecar["path"] = path.name
    media.sidecar.write_text(json.dumps(sidecar, ensure_ascii=False, indent=2), encoding="utf-8")
    if kind == "image":
        _append_caption(folder / CAPTIONS_FILE, path.name, prompt)
    return media


#: `image<TAB>caption` of every generated image, so `crossmodal index <dir> --captions
#: <dir>/captions.tsv` indexes them with their prompts as captions
CAPTIONS_FILE = "captions.tsv"


def _append_caption(file: Path, name: str, prompt: str) -> None:
    caption = " ".join(prompt.split())
    new = not file.exists()
    with file.open("a", encoding="utf-8") as out:
        if new:
            out.write("image\tcaption\n")
        out.write(f"{name}\t{caption}\n")


def captions_for(folder: Path) -> dict[str, list[str]]:
    """{file name: [prompt]} of the generated images in `folder`, from their sidecars."""
    out: dict[str, list[str]] = {}
    for side in sorted(Path(folder).glob("*.json")):
        try:
            info = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(info, dict) and info.get("prompt") and info.get("path"):
            out[str(info["path"])] = [str(info["prompt"])]
    return out
