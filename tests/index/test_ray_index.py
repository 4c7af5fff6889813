"""`crossmodal index --ray`: decoding and embedding on Ray actors, committed by the driver.

The slow tests (marked `ray`, `pytest -m ray`) start a local 2-worker Ray: the same vectors,
ids and failure rows as an in-process run, and a worker SIGKILLed mid-run loses and duplicates
nothing. The rest check the option's parsing without starting Ray.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from crossmodal import Collection
from crossmodal.cli.collection import with_ray_address
from crossmodal.errors import ConfigError
from crossmodal.index.ray_index import LOCAL, QUEUED_PER_ACTOR, RaySettings, check_ray_settings
from tests.index.helpers import make_photos, tiny_model_dir

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'crossmodal[ray]')")


# ---- the option, without a cluster -----------------------------------------------------------
def test_settings_parsed_and_refused_in_one_line():
    assert check_ray_settings(None, None) is None
    assert check_ray_settings("", None) == RaySettings(LOCAL, None)
    assert check_ray_settings("10.0.0.5:6379", 4) == RaySettings("10.0.0.5:6379", 4)
    assert check_ray_settings("ray://head:10001", None).address == "ray://head:10001"
    assert check_ray_settings("auto", None).address == "auto"
    for address in ("photos/", "http://x:1", "head"):
        with pytest.raises(ConfigError, match="is not one: give HOST:PORT"):
            check_ray_settings(address, None)
    with pytest.raises(ConfigError, match="at least 1"):
        check_ray_settings(LOCAL, 0)
    with pytest.raises(ConfigError, match="needs --ray"):
        check_ray_settings(None, 2)


def test_ray_flag_takes_an_optional_address():
    assert with_ray_address(["index", "photos", "--ray"]) == ["index", "photos", "--ray", "local"]
    assert with_ray_address(["index", "--ray", "photos"]) == ["index", "--ray", "local", "photos"]
    assert with_ray_address(["index", "p", "--ray", "-q"]) == ["index", "p", "--ray", "local", "-q"]
    assert with_ray_address(["index", "p", "--ray", "h:6379"]) == ["index", "p", "--ray", "h:6379"]
    assert with_ray_address(["search", "a dog"]) == ["search", "a dog"]


def test_cli_refuses_a_bad_address_before_loading_anything(tmp_path: Path):
    make_photos(tmp_path / "photos", 1)
    out = subprocess.run(
        [sys.executable, "-m", "crossmodal", "index", str(tmp_path / "photos"), "--ray",
         "--ray-workers", "0", "--collection", str(tmp_path / "col")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "--ray-workers must be at least 1" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "col").exists()


# ---- on a local Ray --------------------------------------------------------------------------
def _photos(folder: Path, count: int) -> Path:
    make_photos(folder, count)
    (folder / "bad.jpg").write_bytes(b"not an image")
    (folder / "empty.png").write_bytes(b"")
    return folder


def _rows(col_dir: Path) -> tuple[dict[str, tuple[int, np.ndarray]], dict[str, str]]:
    """(relpath -> (id, vector), relpath -> failure reason) read straight from the catalogue."""
    with Collection.open(col_dir) as col:
        ids, vectors = col.catalog.load_vectors("images", col.dim)[1:]
        by_id = dict(zip(ids, vectors, strict=True))
    con = sqlite3.connect(col_dir / "catalog.sqlite")
    try:
        rows = con.execute("SELECT id, relpath FROM images").fetchall()
        failures = dict(con.execute("SELECT relpath, reason FROM failures").fetchall())
    finally:
        con.close()
    assert len(rows) == len({r[1] for r in rows}), "a file was indexed twice"
    return {rel: (i, by_id[i]) for i, rel in rows}, failures


def _assert_same(got: Path, want: Path) -> None:
    rows, failures = _rows(got)
    expected, expected_failures = _rows(want)
    assert failures == expected_failures and len(failures) == 2
    assert {rel: i for rel, (i, _) in rows.items()} == {rel: i for rel, (i, _) in expected.items()}
    for rel, (_, vector) in rows.items():
        cosine = float(vector @ expected[rel][1])
        assert cosine > 0.9999, f"{rel}: cosine {cosine}"


@pytest.fixture(scope="module")
def indexed_in_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(photo folder, its collection indexed in this process): what the Ray runs must match
    (ids follow the files' order, whatever the batch size)."""
    folder = tmp_path_factory.mktemp("ray")
    photos = _photos(folder / "photos", 30)
    Collection.open(folder / "plain", model=str(tiny_model_dir(0)), create=True).index(
        photos, batch_size=4, show_progress=False
    )
    return photos, folder / "plain"


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_cli_ray_indexes_like_in_process(tmp_path: Path, indexed_in_process: tuple[Path, Path]):
    photos, plain = indexed_in_process
    model = str(tiny_model_dir(0))
    temp_before = set(Path("/tmp").glob("crossmodal-ray-*"))
    out = subprocess.run(
        [sys.executable, "-m", "crossmodal", "index", str(photos), "--collection",
         str(tmp_path / "on-ray"), "--model", model, "--batch-size", "4", "--quiet",
         "--ray", "--ray-workers", "2"],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert out.returncode == 3, out.stderr  # 3: the two bad files were skipped
    assert "bad.jpg: not an image (cannot identify format)" in out.stderr
    assert "empty.png: empty file (0 bytes)" in out.stderr
    assert "30 added" in out.stdout and "Traceback" not in out.stderr
    _assert_same(tmp_path / "on-ray", plain)
    # the local Ray it started is gone, with its temporary folder
    assert set(Path("/tmp").glob("crossmodal-ray-*")) <= temp_before


def _embedder_pids() -> list[int]:
    """Process ids of the Ray actors that embed (their process title names the class)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ray::_Embedder" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.ray
@pytest.mark.timeout(300)
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds workers in /proc")
def test_worker_killed_mid_run_loses_and_duplicates_nothing(
    tmp_path: Path, indexed_in_process: tuple[Path, Path]
):
    photos, plain = indexed_in_process
    model = str(tiny_model_dir(0))
    catalog = tmp_path / "on-ray" / "catalog.sqlite"
    killed: list[int] = []

    def kill_one_worker_after_the_first_commit() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            try:
                con = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=1)
                indexed = con.execute("SELECT count(*) FROM images").fetchone()[0]
                con.close()
            except sqlite3.Error:
                indexed = 0
            pids = _embedder_pids()
            if indexed and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(indexed)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker_after_the_first_commit, daemon=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        killer.start()
        report = Collection.open(tmp_path / "on-ray", model=model, create=True).index(
            photos, batch_size=2, show_progress=False, ray=LOCAL, ray_workers=2
        )
        killer.join(timeout=5)
    finally:
        ray.shutdown()
    assert killed and killed[0] < 30, "the run ended before a worker could be killed"
    assert report.added == 30 and len(report.failed) == 2
    _assert_same(tmp_path / "on-ray", plain)


# ---- the driver's queue, on a stand-in for Ray (no cluster) ----------------------------------
class _FakeRay:
    """`ray.wait`/`ray.get` over refs that finish in submission order, except that every
    batch sent to actor `dead` fails as if its worker were gone for good."""

    class exceptions:  # the shape of `ray.exceptions`
        class RayActorError(Exception):
            pass

        class ActorDiedError(RayActorError):
            pass

        class RayTaskError(Exception):
            cause: BaseException | None = None

    def __init__(self, dead: int) -> None:
        self.dead = dead
        self.sent: list[tuple[int, int, tuple[int, ...]]] = []

    def submit(self, actor: int, chunk: list[int]) -> tuple[int, int, tuple[int, ...]]:
        ref = (len(self.sent), actor, tuple(chunk))  # hashable and unique, as an ObjectRef
        self.sent.append(ref)
        return ref

    def wait(self, refs: list, num_returns: int) -> tuple[list, list]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: tuple[int, int, tuple[int, ...]]):
        _, actor, chunk = ref
        if actor == self.dead:
            raise self.exceptions.ActorDiedError("the actor died")
        return list(chunk), np.zeros((len(chunk), 2)), np.zeros((0, 2))


def test_batches_of_a_dead_worker_go_to_the_others_in_order():
    from crossmodal.index.ray_index import _run_in_order

    fake = _FakeRay(dead=0)
    chunks = [[2 * n, 2 * n + 1] for n in range(7)]
    results = list(_run_in_order(fake, [0, 1], chunks, fake.submit))
    assert [r[0] for r in results] == chunks  # each once, in order
    # the dead worker got only the batches sent before its first failure came back
    to_dead = [chunk for _, actor, chunk in fake.sent if actor == 0]
    assert 1 <= len(to_dead) <= QUEUED_PER_ACTOR + 1


def test_every_worker_dead_is_one_clear_error():
    from crossmodal.errors import CrossmodalError
    from crossmodal.index.ray_index import _run_in_order

    fake = _FakeRay(dead=0)
    with pytest.raises(CrossmodalError, match="every Ray worker died"):
        list(_run_in_order(fake, [0], [[0], [1]], fake.submit))


def test_a_worker_sends_back_the_features_tags_are_made_from(tmp_path: Path) -> None:
    """`keep_features` reaches the actor's body (called here without Ray): the pooled tower
    features an in-process run hands the tagger come back with each good file."""
    from crossmodal.index.pipeline import iter_embedded_batches
    from crossmodal.index.ray_index import _Embedder

    photos = _photos(tmp_path / "photos", 3)
    paths = sorted(p for p in photos.rglob("*") if p.is_file())
    worker = _Embedder(str(tiny_model_dir(0)))
    names, indices, texts = [str(p) for p in paths], list(range(len(paths))), [[]] * len(paths)
    loaded, vectors, _ = worker.embed(names, indices, texts, keep_features=True)
    good = [x for x in loaded if x.error is None]
    assert len(good) == 3 == len(vectors) and all(x.features is not None for x in good)
    local = next(iter_embedded_batches(worker.model, paths, len(paths), keep_features=True))
    for remote, here in zip(good, [x for x in local[0] if x.error is None], strict=True):
        assert np.allclose(remote.features, here.features, atol=1e-5)
    first = good[0].index
    plain, _, _ = worker.embed([str(paths[first])], [first], [[]])
    assert plain[0].error is None and plain[0].features is None  # not asked: not sent
