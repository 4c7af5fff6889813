"""Issue 19's defects of the catalogue and the CLI, each with the input that showed it:
symlinks deleted through their target, a non-UTF-8 name aborting a run, ids past 64 bits,
silent skips and the exit status that hid them, a newline in a name in `--paths-only`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmodal import Collection
from crossmodal.cli import app
from crossmodal.index.scan import scan_folder
from crossmodal.models import load_model
from crossmodal.models.base import Encoder
from tests.index.helpers import make_pattern, make_photos, one_torch_thread, tiny_model_dir

runner = CliRunner()
LATIN1 = os.fsdecode(b"latin1_\xe9t\xe9.jpg")  # what os.listdir gives for that name


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def tiny() -> Encoder:
    return load_model(str(tiny_model_dir(0)))


def ids_by_path(col: Collection) -> dict[str, int]:
    return {h.path: h.id for h in col.search(text="x", k=100)}


def test_a_link_and_its_target_are_two_entries_and_delete_acts_on_the_one_asked(
    tmp_path: Path, tiny: Encoder
):
    photos = tmp_path / "photos"
    target = make_pattern(photos / "targets" / "IMG1.jpg", 1)
    make_pattern(photos / "targets" / "IMG2.jpg", 2)
    (photos / "links").mkdir()
    (photos / "links" / "IMG1.jpg").symlink_to(target)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    report = col.index(photos, show_progress=False)
    assert report.added == 3 and not report.failed
    ids = ids_by_path(col)
    link_id = ids[str(photos / "links" / "IMG1.jpg")]
    target_id = ids[str(target)]
    assert link_id != target_id
    # by id: exactly that row goes
    assert col.remove_ids([link_id]) == 1
    assert set(ids_by_path(col)) == {str(target), str(photos / "targets" / "IMG2.jpg")}
    assert col.remove_ids([link_id]) == 0
    # by path: the link's path names the link's row, never its target's
    col.index(photos, show_progress=False)
    assert col.remove([photos / "links" / "IMG1.jpg"]) == 1
    assert str(target) in ids_by_path(col)


def test_a_folder_reached_through_a_link_is_stored_under_the_link(tmp_path: Path, tiny: Encoder):
    real = tmp_path / "real"
    make_photos(real, 2)
    (tmp_path / "alias").symlink_to(real)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    col.index(tmp_path / "alias", show_progress=False)
    assert col.stats()["roots"] == [str(tmp_path / "alias")]
    assert all(p.startswith(str(tmp_path / "alias")) for p in ids_by_path(col))


def test_a_non_utf8_name_is_indexed_losslessly_and_shown_escaped(tmp_path: Path, tiny: Encoder):
    photos = tmp_path / "photos"
    make_photos(photos, 3)
    odd = make_pattern(photos / LATIN1, 5)
    assert os.fsencode(odd.name) == b"latin1_\xe9t\xe9.jpg"
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    report = col.index(photos, show_progress=False)
    assert report.added == 4 and not report.failed
    hit = next(h for h in col.search(text="x", k=10) if "latin1" in h.path)
    assert hit.path == str(odd) and Path(hit.path).is_file()  # the exact bytes, openable
    assert hit.to_dict()["path"].endswith("latin1_\\xe9t\\xe9.jpg")  # JSON-safe text
    again = col.index(photos, show_progress=False)  # found again by its stored name
    assert again.unchanged == 4 and again.added == 0
    assert col.remove([odd]) == 1


def test_cli_index_of_a_non_utf8_name_and_paths_only_escapes_newlines(tmp_path: Path):
    photos = tmp_path / "photos"
    make_photos(photos, 2)
    make_pattern(photos / LATIN1, 5)
    make_pattern(photos / "two\nlines.jpg", 6)
    col = tmp_path / "col"
    model = str(tiny_model_dir(0))
    result = runner.invoke(app, ["index", str(photos), "-c", str(col), "-m", model, "-q"])
    assert result.exit_code == 0, result.output
    assert "4 added" in result.stdout
    listed = runner.invoke(app, ["search", "x", "-c", str(col), "-k", "10", "--paths-only"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert len(lines) == 4  # one line per hit, the newline escaped
    assert any(line.endswith("two\\nlines.jpg") for line in lines)
    assert any(line.endswith("latin1_\\xe9t\\xe9.jpg") for line in lines)
    raw = runner.invoke(app, ["search", "x", "-c", str(col), "-k", "10", "--print0"])
    names = raw.stdout_bytes.split(b"\0")[:-1]
    assert sorted(os.path.basename(n) for n in names) == sorted(
        [b"latin1_\xe9t\xe9.jpg", b"two\nlines.jpg", b"p000.jpg", b"p001.jpg"]
    )


def test_skips_are_reported_with_a_reason_and_exit_status_3(tmp_path: Path):
    photos = tmp_path / "photos"
    make_photos(photos, 2)
    (photos / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (photos / "self.jpg").symlink_to(photos / "self.jpg")
    (photos / "loop").symlink_to(photos)
    (photos / "empty.jpg").write_bytes(b"")
    col = tmp_path / "col"
    model = str(tiny_model_dir(0))
    result = runner.invoke(app, ["index", str(photos), "-c", str(col), "-m", model, "-q"])
    assert result.exit_code == 3, result.output
    assert "2 added" in result.stdout and "4 skipped" in result.stdout
    err = result.stderr
    assert "dangling.jpg: dangling symlink" in err
    assert "self.jpg: symlink loop" in err
    assert "loop: symlink loop" in err
    assert "empty.jpg: empty file" in err
    assert "4 skipped (exit status 3)" in err
    (photos / "dangling.jpg").unlink()
    (photos / "self.jpg").unlink()
    (photos / "loop").unlink()
    (photos / "empty.jpg").unlink()
    clean = runner.invoke(app, ["index", str(photos), "-c", str(col), "-q"])
    assert clean.exit_code == 0, clean.output


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_an_unreadable_folder_is_reported_and_keeps_its_rows(tmp_path: Path, tiny: Encoder):
    photos = tmp_path / "photos"
    make_photos(photos, 4)  # in d0/, d1/, d2/
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    assert col.index(photos, show_progress=False).added == 4
    locked = photos / "d1"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):  # root reads anything: make the listing fail otherwise
            pytest.skip("running as root: a folder without permissions is still readable")
        report = col.index(photos, show_progress=False)
    finally:
        locked.chmod(0o755)
    assert report.removed == 0
    assert [f.reason.startswith("cannot read folder") for f in report.failed] == [True]
    assert len(col) == 4


def test_an_unreadable_folder_without_root_powers(tmp_path: Path):
    """As root (CI containers) a folder without permissions is still readable: the scan runs
    in a child with root's power to bypass permissions dropped (`setpriv`)."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("not root (the test above covers it) or no setpriv")
    make_pattern(tmp_path / "ok" / "a.jpg", 1)
    make_pattern(tmp_path / "secret" / "b.jpg", 2)
    (tmp_path / "secret").chmod(0)
    code = (
        "import sys; from pathlib import Path; from crossmodal.index.scan import scan_folder; "
        "found, skipped = scan_folder(Path(sys.argv[1]), Path(sys.argv[1]), None, False); "
        "print(sorted(found)); print([f.message for f in skipped])"
    )
    drop = "-dac_override,-dac_read_search"
    command = ["setpriv", "--bounding-set", drop, "--inh-caps", drop, sys.executable, "-c", code]
    try:
        out = subprocess.run(
            [*command, str(tmp_path)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            timeout=120,
        )
    finally:
        (tmp_path / "secret").chmod(0o755)
    assert out.returncode == 0, out.stderr
    found, skipped = out.stdout.splitlines()
    assert found == "['ok/a.jpg']"
    assert "secret: cannot read folder: Permission denied" in skipped


def test_a_folder_unreadable_to_the_indexer_keeps_its_rows(tmp_path: Path, tiny: Encoder):
    """The whole `crossmodal index`, in a child without root's power over permissions: the
    photos of a folder it cannot list are reported, not deleted."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("not root (test_an_unreadable_folder_is_reported_... covers it)")
    photos = tmp_path / "photos"
    make_photos(photos, 4)  # d0/: 2, d1/: 1, d2/: 1
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    assert col.index(photos, show_progress=False).added == 4
    col.close()
    drop = "-dac_override,-dac_read_search"
    command = ["setpriv", "--bounding-set", drop, "--inh-caps", drop, sys.executable]
    (photos / "d1").chmod(0)
    try:
        out = subprocess.run(
            [*command, "-m", "crossmodal", "index", str(photos), "-c", str(col.path), "-q"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            timeout=300,
        )
    finally:
        (photos / "d1").chmod(0o755)
    assert out.returncode == 3, out.stderr
    assert "d1: cannot read folder: Permission denied" in out.stderr
    assert "0 removed" in out.stdout
    assert len(Collection.open(tmp_path / "col")) == 4


def test_a_huge_png_is_refused_without_pillows_warning(tmp_path: Path):
    """9500 x 9500 is over Pillow's warning threshold: our refusal, not its raw warning."""
    import struct
    import zlib

    from crossmodal.data import load_image
    from crossmodal.errors import ImageLoadError

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    head = struct.pack(">IIBBBBB", 9500, 9500, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IEND", b"")
    (tmp_path / "big.png").write_bytes(png)
    with pytest.raises(ImageLoadError, match="too large: 9500 x 9500"):
        load_image(tmp_path / "big.png")
    assert decode_stderr(tmp_path / "big.png") == ""  # as a user's terminal sees it


def test_scan_reports_without_following_folder_links(tmp_path: Path):
    make_pattern(tmp_path / "a" / "x.jpg", 1)
    (tmp_path / "a" / "up").symlink_to(tmp_path / "a")
    found, skipped = scan_folder(tmp_path / "a", tmp_path / "a", None, False)
    assert list(found) == ["x.jpg"]
    assert [f.reason.split(":")[0] for f in skipped] == ["symlink loop"]


def test_ids_past_64_bits_name_no_image(tmp_path: Path, tiny: Encoder):
    make_photos(tmp_path / "photos", 1)
    col = Collection.open(tmp_path / "col", model=tiny, create=True)
    col.index(tmp_path / "photos", show_progress=False)
    assert col.catalog.get_images([2**63, 2**64 + 5, -(2**70)]) == {}
    assert col.catalog.image_vector(2**63) is None
    assert col.remove_ids([2**63]) == 0
    with pytest.raises(Exception, match="no image with id"):
        col.get(2**63)


def test_a_broken_exif_block_decodes_without_a_raw_warning(tmp_path: Path):
    """Found by benchmarks/reliability.py: Pillow's "Corrupt EXIF data" UserWarning leaked
    into `crossmodal index`'s output."""
    from PIL import Image

    from crossmodal.data import load_image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 30), (200, 9, 3)).save(tmp_path / "rotated.jpg", exif=exif)
    broken = bytearray((tmp_path / "rotated.jpg").read_bytes())
    at = broken.find(b"Exif")
    broken[at + 10 : at + 30] = b"\xff" * 20
    (tmp_path / "bad-exif.jpg").write_bytes(bytes(broken))
    assert load_image(tmp_path / "bad-exif.jpg").size in ((40, 30), (30, 40))
    assert decode_stderr(tmp_path / "bad-exif.jpg") == ""  # as a user's terminal sees it
    assert load_image(tmp_path / "rotated.jpg").size == (30, 40)  # the tag still turns it


def decode_stderr(path: Path) -> str:
    """What decoding `path` prints to stderr in a fresh process, with Python's default warning
    filters (pytest's own would hide or show warnings differently)."""
    import subprocess

    code = (
        "import sys; from crossmodal.data import load_image\n"
        "try: load_image(sys.argv[1])\nexcept Exception as e: print(e)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=120,
    )
    return out.stderr
