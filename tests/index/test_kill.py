"""Crash safety: `crossmodal index` SIGKILLed mid-run, again and again, then finished.

Every file must end up indexed exactly once, and the vector index must agree with the
catalogue, whatever instant the kills hit (scan, embedding, commit, FAISS save).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crossmodal import Collection
from tests.index.helpers import make_photos, tiny_model_dir

N_IMAGES = 120


def _indexed(catalog: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT count(*) FROM images").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or schema not committed yet
        return 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.timeout(240)
def test_kill_minus_nine_then_resume(tmp_path: Path):
    photos = tmp_path / "photos"
    make_photos(photos, N_IMAGES)
    col_dir = tmp_path / "col"
    model = str(tiny_model_dir(0))
    cmd = [
        sys.executable, "-m", "crossmodal", "index", str(photos),
        "--collection", str(col_dir), "--model", model, "--batch-size", "2", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(1234)
    kills = 0
    progress: list[int] = []
    for _ in range(3):
        before = _indexed(col_dir / "catalog.sqlite")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 90
        # wait until this run has committed at least one batch, then kill at a random instant
        # soon after (the fast image path indexes the whole folder in about a second)
        while proc.poll() is None and time.monotonic() < deadline:
            if _indexed(col_dir / "catalog.sqlite") > before:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.08))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
        progress.append(_indexed(col_dir / "catalog.sqlite"))
    assert kills >= 2, f"the runs finished before they could be killed ({progress})"

    # the final, uninterrupted run (in this process: one interpreter start less)
    col = Collection.open(col_dir)
    final = col.index(photos, batch_size=2, show_progress=False)
    assert (final.updated, final.removed, final.moved) == (0, 0, 0)
    assert final.added + final.unchanged == N_IMAGES and final.unchanged == progress[-1]

    con = sqlite3.connect(col_dir / "catalog.sqlite")
    rows = con.execute("SELECT id, root_id, relpath FROM images").fetchall()
    con.close()
    assert len(rows) == N_IMAGES
    assert len({r[0] for r in rows}) == N_IMAGES
    assert len({(r[1], r[2]) for r in rows}) == N_IMAGES
    expected = {p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg")}
    assert {r[2] for r in rows} == expected

    store = col._store("images")
    assert len(store) == N_IMAGES == col.catalog.count("images")
    assert sorted(store.ids()) == sorted(r[0] for r in rows)
    col.close()
    # a fresh open reads the FAISS file the last run saved (current generation, complete)
    reopened = Collection.open(col_dir)
    generation = reopened.catalog.generation("images")
    assert (col_dir / f"images.g{generation}.faiss").is_file()
    assert len(reopened._store("images")) == N_IMAGES
    # loaded from the file, not rebuilt
    assert reopened.stores.saved_generation("images") == generation
    again = reopened.index(photos, show_progress=False)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, N_IMAGES)
