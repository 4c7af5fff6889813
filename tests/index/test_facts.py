"""Photo facts read from headers: EXIF date and offset, camera, GPS, type; file time fallback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from PIL import Image

from crossmodal.index.facts import PhotoFacts, file_facts, header_facts, normalise_type
from crossmodal.index.pipeline import header_of
from tests.index.exif_helpers import SHOTS, Shot, write_library, write_shot


def _facts(path: Path) -> PhotoFacts:
    facts = file_facts(path, path.stat().st_mtime_ns)
    assert facts is not None
    return facts


def test_exif_date_offset_camera_and_gps(tmp_path: Path):
    paths = write_library(tmp_path)
    paris = _facts(paths["a/paris.jpg"])
    assert (paris.taken, paris.taken_offset, paris.taken_source) == (
        "2023-06-01 09:15:00",
        "+02:00",
        "exif",
    )
    assert (paris.camera_make, paris.camera_model, paris.camera) == ("Google", "Pixel 7",
                                                                      "Google Pixel 7")  # fmt: skip
    assert abs(paris.gps_lat - 48.8584) < 1e-3 and abs(paris.gps_lon - 2.2945) < 1e-3
    nyc = _facts(paths["b/nyc.png"])
    assert nyc.file_type == "png" and nyc.gps_lon is not None and nyc.gps_lon < 0
    fiji = _facts(paths["a/fiji.jpg"])
    assert fiji.gps_lat is not None and fiji.gps_lat < 0 and fiji.taken_offset is None
    tokyo = _facts(paths["b/c/tokyo.webp"])
    assert tokyo.file_type == "webp" and tokyo.taken_offset == "+09:00"
    # a model that repeats the make is not doubled
    assert _facts(paths["a/office.jpg"]).camera == "Canon EOS R5"


def test_ifd0_date_and_type_from_content_not_suffix(tmp_path: Path):
    renamed = write_library(tmp_path)["a/renamed.png"]
    facts = _facts(renamed)
    assert facts.file_type == "jpg"  # JPEG bytes under a .png name
    assert (facts.taken, facts.taken_source) == ("2024-07-04 12:00:00", "exif")


def test_no_exif_falls_back_to_the_file_time_and_says_so(tmp_path: Path):
    scan = write_library(tmp_path)["b/scan.jpg"]
    facts = _facts(scan)
    assert facts.taken_source == "file"
    assert facts.taken == "2022-02-02 08:00:00"  # the local time utime set
    assert facts.camera_make is None and facts.gps_lat is None


def test_blank_and_nonsense_exif_values_are_ignored(tmp_path: Path):
    path = write_shot(tmp_path, 0, Shot("x.jpg", taken="0000:00:00 00:00:00", make="  "))
    facts = _facts(path)
    assert facts.taken_source == "file" and facts.camera_make is None
    path = write_shot(tmp_path, 1, Shot("y.jpg", taken="2024:13:45 99:00:00"))
    assert _facts(path).taken_source == "file"


def test_pipeline_header_read_gives_size_and_facts(tmp_path: Path):
    paths = write_library(tmp_path)
    size, facts = header_of(paths["b/big.jpg"])
    assert size == (640, 480) and facts is not None and facts.taken == "2021-08-08 08:08:08"
    assert header_of(tmp_path / "missing.jpg") == (None, None)
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    assert header_of(tmp_path / "junk.jpg") == (None, None)


def test_rotated_size_and_every_fixture_has_a_date(tmp_path: Path):
    paths = write_library(tmp_path)
    for shot in SHOTS:
        facts = _facts(paths[shot.relpath])
        assert facts.taken is not None
        assert facts.taken_source == ("exif" if shot.taken else "file")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: displayed size swaps
    Image.new("RGB", (40, 20)).save(tmp_path / "r.jpg", exif=exif)
    with Image.open(tmp_path / "r.jpg") as im:
        assert header_facts(im, 0)[0] == (20, 40)


def test_normalise_type():
    assert [normalise_type(t) for t in ("JPEG", ".jpeg", "jpg", "TIFF", "Png")] == [
        "jpg", "jpg", "jpg", "tif", "png",
    ]  # fmt: skip


def test_file_time_is_local_wall_clock(tmp_path: Path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    mtime = path.stat().st_mtime_ns
    expected = dt.datetime.fromtimestamp(mtime / 1e9).strftime("%Y-%m-%d %H:%M:%S")
    assert _facts(path).taken == expected
