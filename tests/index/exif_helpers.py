"""Fixture photos with EXIF written by Pillow (dates, offsets, cameras, GPS), for the filters."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

from tests.index.helpers import COLORS


@dataclass(frozen=True)
class Shot:
    """One fixture photo: where it goes and what its EXIF says (None: not written)."""

    relpath: str
    fmt: str = "JPEG"
    taken: str | None = None  # "2024:05:01 12:30:00"
    offset: str | None = None  # "+02:00"
    ifd0_date: bool = False  # write the date as IFD0 DateTime instead of DateTimeOriginal
    make: str | None = None
    model: str | None = None
    gps: tuple[float, float] | None = None
    size: tuple[int, int] = (64, 48)
    mtime: str | None = None  # the file's modification time, "2022-02-02 08:00:00" (local)


#: a small library: several cameras, places, years, folders and formats
SHOTS = [
    Shot("a/paris.jpg", taken="2023:06:01 09:15:00", offset="+02:00", make="Google",
         model="Pixel 7", gps=(48.8584, 2.2945)),
    Shot("a/office.jpg", taken="2024:01:15 10:00:00", make="Canon", model="Canon EOS R5"),
    Shot("b/nyc.png", fmt="PNG", taken="2024:03:02 18:00:00", make="Google", model="Pixel 8",
         gps=(40.7128, -74.0060)),
    Shot("b/scan.jpg", mtime="2022-02-02 08:00:00"),
    Shot("b/c/tokyo.webp", fmt="WEBP", taken="2024:12:31 23:00:00", offset="+09:00",
         make="Apple", model="iPhone 15", gps=(35.6762, 139.6503)),
    Shot("a/fiji.jpg", taken="2025:02:01 07:00:00", make="Canon", model="EOS 90D",
         gps=(-17.7134, 178.0650)),
    Shot("a/renamed.png", fmt="JPEG", taken="2024:07:04 12:00:00", ifd0_date=True,
         make="NIKON CORPORATION", model="NIKON Z 6"),
    Shot("b/big.jpg", taken="2021:08:08 08:08:08", size=(640, 480)),
]  # fmt: skip


def _pixels(n: int, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    rng = np.random.default_rng(n)
    base = np.array(COLORS[n % len(COLORS)], np.float32)
    stripes = ((np.arange(w) // (4 + n)) % 2).astype(np.float32)[None, :, None]
    noise = rng.uniform(0.6, 1.0, size=(h, w, 1)).astype(np.float32)
    return np.clip(base * (0.5 + 0.5 * stripes) * noise, 0, 255).astype(np.uint8)


def write_shot(folder: Path, n: int, shot: Shot) -> Path:
    path = folder / shot.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if shot.make:
        exif[0x010F] = shot.make
    if shot.model:
        exif[0x0110] = shot.model
    if shot.taken and shot.ifd0_date:
        exif[0x0132] = shot.taken
    elif shot.taken:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        sub[0x9003] = shot.taken
        if shot.offset:
            sub[0x9011] = shot.offset
    if shot.gps:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        lat, lon = shot.gps
        gps[1], gps[2] = ("N" if lat >= 0 else "S"), _dms(abs(lat))
        gps[3], gps[4] = ("E" if lon >= 0 else "W"), _dms(abs(lon))
    image = Image.fromarray(_pixels(n, shot.size))
    image.save(path, shot.fmt, exif=exif, **({"quality": 95} if shot.fmt == "JPEG" else {}))
    if shot.mtime:
        stamp = dt.datetime.strptime(shot.mtime, "%Y-%m-%d %H:%M:%S").timestamp()
        os.utime(path, (stamp, stamp))
    return path


def _dms(degrees: float) -> tuple[float, float, float]:
    d = int(degrees)
    m = int((degrees - d) * 60)
    return (float(d), float(m), round((degrees - d - m / 60) * 3600, 4))


def write_library(folder: Path) -> dict[str, Path]:
    """Every shot of SHOTS under `folder`: relpath -> path."""
    return {shot.relpath: write_shot(folder, n, shot) for n, shot in enumerate(SHOTS)}
