"""Reliability run (issue 19): bad files, kills, damaged files and a mixed load, counted.

    PYTHONPATH=src python benchmarks/reliability.py [--out docs/reliability.md] [--seed 0]

Four parts, each a row of the table it prints (tried / handled / lost):

1. bad-file matrix: one folder holding every kind of odd file below next to good photos,
   indexed by `crossmodal index`; handled = a good file indexed, or a bad one skipped with a
   reason and exit status 3, nothing on stderr that looks like a traceback; lost = a good file
   missing, or a bad one without its line.
2. kills: `crossmodal index --captions` killed with SIGKILL at 20 random moments, then run to
   the end; lost = an image missing or twice, a caption missing or twice, `check` not ok.
3. damaged files: random bytes over a quarter of the FAISS cache (same length), 3 pages of
   garbage mid-catalogue; handled = one line naming the file, `check --repair`, and every
   image back exactly once after the next index run.
4. load: a real `crossmodal serve` for 60 s, readers searching, fetching thumbnails and
   searching by id while a writer indexes, annotates and deletes; lost = any 5xx other than
   a 503 with Retry-After, a connection error, or a traceback in the server's log.

It uses a small test model (tests/index/helpers.py: pretrained towers, random heads): what
is measured is what happens to files, processes and requests, not the quality of a search.
Takes about 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.index.helpers import make_pattern, tiny_model_dir  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1"}
TRACEBACK = "Traceback (most recent call last)"


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crossmodal", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        errors="backslashreplace",
    )


# ---- 1. the bad-file matrix -------------------------------------------------------------
def write_bad_files(folder: Path) -> dict[str, tuple[str, str]]:
    """kind -> (file name, expected: "indexed" | the start of the skip reason)."""
    folder.mkdir(parents=True)
    cases: dict[str, tuple[str, str]] = {}

    def good(kind: str, name: str, n: int) -> None:
        make_pattern(folder / name, n)
        cases[kind] = (name, "indexed")

    good("plain jpeg", "good.jpg", 1)
    good("non-UTF-8 name", os.fsdecode(b"latin1_\xe9t\xe9.jpg"), 2)
    good("newline in name", "two\nlines.jpg", 3)
    good("Chinese name", "狗狗 照片.jpg", 4)
    good("255-byte name", "n" * 251 + ".jpg", 5)
    target = make_pattern(folder / "targets" / "IMG1.jpg", 6)
    cases["link target"] = ("targets/IMG1.jpg", "indexed")
    (folder / "links").mkdir()
    (folder / "links" / "IMG1.jpg").symlink_to(target)
    cases["symlink to a file"] = ("links/IMG1.jpg", "indexed")
    (folder / "dangling.jpg").symlink_to(folder / "gone.jpg")
    cases["dangling symlink"] = ("dangling.jpg", "dangling symlink")
    (folder / "self.jpg").symlink_to(folder / "self.jpg")
    cases["symlink loop (file)"] = ("self.jpg", "symlink loop")
    (folder / "loop").symlink_to(folder)
    cases["symlink loop (folder)"] = ("loop", "symlink loop")
    (folder / "empty.jpg").write_bytes(b"")
    cases["empty file"] = ("empty.jpg", "empty file")
    data = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    cases["truncated jpeg"] = ("truncated.jpg", "indexed|truncated or corrupt")
    (folder / "notes.jpg").write_text("not a picture\n")
    cases["text named .jpg"] = ("notes.jpg", "not an image")
    (folder / "folder.jpg").mkdir()
    cases["folder named .jpg"] = ("folder.jpg", "ignored")  # a folder: walked, nothing in it
    os.mkfifo(folder / "pipe.jpg")
    cases["fifo named .jpg"] = ("pipe.jpg", "not a regular file")
    (folder / "bomb9500.png").write_bytes(png_claiming(9500, 9500))  # a header is enough
    cases["9500x9500 PNG (Pillow's warning)"] = ("bomb9500.png", "too large")
    (folder / "claims-3.6GP.png").write_bytes(png_claiming(60000, 60000))
    cases["header claims 3.6 GP"] = ("claims-3.6GP.png", "too large")
    arr = (np.random.default_rng(0).random((40, 50)) * 65535).astype(np.uint16)
    Image.fromarray(arr).save(folder / "grey16.png")
    cases["16-bit greyscale PNG"] = ("grey16.png", "indexed")
    Image.new("CMYK", (40, 30), (0, 80, 160, 0)).save(folder / "cmyk.jpg")
    cases["CMYK JPEG"] = ("cmyk.jpg", "indexed")
    frames = [Image.new("P", (30, 30), i) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    cases["animated GIF"] = ("anim.gif", "indexed")
    rgba = Image.new("RGBA", (30, 30), (255, 0, 0, 0))
    rgba.save(folder / "transparent.png")
    cases["transparent PNG"] = ("transparent.png", "indexed")
    Image.new("RGB", (40, 30), (1, 2, 3)).save(folder / "photo.webp")
    cases["WebP"] = ("photo.webp", "indexed")
    Image.new("RGB", (40, 30), (9, 2, 3)).save(folder / "photo.tiff")
    cases["TIFF"] = ("photo.tiff", "indexed")
    Image.new("RGB", (40, 30), (9, 9, 3)).save(folder / "photo.bmp")
    cases["BMP"] = ("photo.bmp", "indexed")
    im = Image.open(folder / "good.jpg")
    im.save(folder / "progressive.jpg", progressive=True)
    cases["progressive JPEG"] = ("progressive.jpg", "indexed")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated
    Image.new("RGB", (40, 30), (200, 9, 3)).save(folder / "rotated.jpg", exif=exif)
    cases["EXIF-rotated JPEG"] = ("rotated.jpg", "indexed")
    broken = bytearray((folder / "rotated.jpg").read_bytes())
    at = broken.find(b"Exif")
    broken[at + 10 : at + 30] = b"\xff" * 20
    (folder / "bad-exif.jpg").write_bytes(bytes(broken))
    cases["broken EXIF block"] = ("bad-exif.jpg", "indexed")
    secret = folder / "secret"
    make_pattern(secret / "hidden.jpg", 9)
    secret.chmod(0)
    cases["unreadable folder"] = ("secret", "cannot read folder|indexed")  # root reads it
    return cases


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header (and no pixels) claiming width x height: what a decompression bomb
    shows before its data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IEND", b"")


def bad_file_matrix(base: Path, model: str) -> tuple[int, int, int, list[str]]:
    folder = base / "bad"
    cases = write_bad_files(folder)
    col = base / "bad-col"
    try:
        run = cli("index", str(folder), "-c", str(col), "-m", model, "-q")
    finally:
        (folder / "secret").chmod(0o755)
    notes = [f"`crossmodal index` exit status {run.returncode}"]
    indexed = set()
    if run.returncode in (0, 3):
        search = ["search", "x", "-c", str(col), "-k", "100", "--print0"]
        found = subprocess.run(
            [sys.executable, "-m", "crossmodal", *search],
            capture_output=True,
            env=ENV,
        )
        indexed = {os.fsdecode(p)[len(str(folder)) + 1 :] for p in found.stdout.split(b"\0") if p}
    stderr = run.stderr
    handled = lost = 0
    for kind, (name, expected) in cases.items():
        options = expected.split("|")
        ok = False
        if "indexed" in options and name in indexed:
            ok = True
        elif "indexed" in options and name == "secret" and "secret/hidden.jpg" in indexed:
            ok = True  # as root the folder is readable: its photo is indexed
        elif "ignored" in options:
            ok = name not in indexed
        for reason in options:
            if reason not in ("indexed", "ignored") and f": {reason}" in stderr:
                shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                ok = ok or shown.split("/")[-1] in stderr
        if ok:
            handled += 1
        else:
            lost += 1
            notes.append(f"not as expected: {kind} ({expected})")
    raw = [ln for ln in stderr.splitlines() if TRACEBACK in ln or "Warning:" in ln]
    if raw:
        lost += 1
        notes.append(f"a traceback or a raw warning on stderr: {raw[0][:200]}")
    if run.returncode != 3:
        notes.append("expected exit status 3 (some files skipped)")
        lost += 1
    return len(cases), handled, lost, notes


# ---- 2. kills during an indexing run ------------------------------------------------------
def kills(
    base: Path, model: str, count: int, rng: random.Random
) -> tuple[int, int, int, list[str]]:
    photos = base / "kill-photos"
    names = []
    for i in range(160):
        names.append(make_pattern(photos / f"k{i:03d}.jpg", i, size=(320, 240)).name)
    captions = base / "kill-captions.tsv"
    captions.write_text(
        "image\tcaption\n"
        + "".join(f"{n}\ta photo number {i}\n{n}\tstripes {i}\n" for i, n in enumerate(names))
    )
    col = base / "kill-col"
    args = ["index", str(photos), "-c", str(col), "-m", model, "--captions", str(captions)]
    handled = 0
    notes = []
    for _ in range(count):
        proc = subprocess.Popen(
            [sys.executable, "-m", "crossmodal", *args, "-q", "--batch-size", "8"],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.0, 6.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        handled += 1  # counted as lost below if the final state is not exact
    final = cli(*args, "-q")
    lost = 0
    if final.returncode != 0:
        notes.append(f"the final run exited {final.returncode}: {final.stderr[-300:]}")
        lost += 1
    con = sqlite3.connect(col / "catalog.sqlite")
    paths = [r[0] for r in con.execute("SELECT relpath FROM images")]
    texts = con.execute("SELECT count(*) FROM texts WHERE kind='caption'").fetchone()[0]
    con.close()
    counts = Counter(paths)
    missing = len(set(names) - set(counts))
    twice = sum(1 for c in counts.values() if c > 1)
    if missing or twice or texts != 2 * len(names):
        lost += 1
        notes.append(f"{missing} images missing, {twice} twice, {texts} captions")
    check = cli("check", "-c", str(col))
    if check.returncode != 0:
        lost += 1
        notes.append(f"check: {check.stdout.strip()}")
    notes.append(
        f"{len(set(paths))} of {len(names)} images once each, {texts} captions after {count} kills"
    )
    return count, handled - min(lost, handled), lost, notes


# ---- 3. damaged files ---------------------------------------------------------------------
def scribble(path: Path, start: int, length: int, rng: random.Random) -> None:
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(bytes(rng.getrandbits(8) for _ in range(length)))


def damaged_files(base: Path, model: str, rng: random.Random) -> tuple[int, int, int, list[str]]:
    photos = base / "dmg-photos"
    for i in range(80):
        make_pattern(photos / f"d{i:03d}.jpg", i)
    col = base / "dmg-col"
    cli("index", str(photos), "-c", str(col), "-m", model, "-q")
    notes, handled, lost = [], 0, 0
    # FAISS cache: a quarter of it overwritten, same length
    (cache,) = col.glob("images.*.faiss")
    size = cache.stat().st_size
    scribble(cache, size // 2, size // 4, rng)
    found = cli("search", "a photo", "-c", str(col), "-k", "10", "--json")
    scores = [h["score"] for h in json.loads(found.stdout or "[]")]
    if found.returncode == 0 and len(scores) == 10 and max(scores) <= 1.0001:
        handled += 1
    else:
        lost += 1
        notes.append(f"FAISS: search gave {scores[:3]} (exit {found.returncode})")
    # SQLite: 3 pages of garbage mid-file
    db = col / "catalog.sqlite"
    pages = db.stat().st_size // 4096
    scribble(db, (pages // 2) * 4096, 3 * 4096, rng)
    stats = cli("stats", "-c", str(col))
    lines = stats.stderr.strip().splitlines()
    one_line = (
        stats.returncode == 2
        and len(lines) == 1
        and "check" in lines[0]
        and TRACEBACK not in stats.stderr
    )
    repair = cli("check", "-c", str(col), "--repair")
    again = cli("index", str(photos), "-c", str(col), "-q")
    con = sqlite3.connect(db)
    n = con.execute("SELECT count(DISTINCT relpath), count(*) FROM images").fetchone()
    con.close()
    if one_line and repair.returncode == 0 and again.returncode == 0 and n == (80, 80):
        handled += 1
    else:
        lost += 1
        notes.append(f"SQLite: stats {stats.returncode} {lines[:1]}, repair {repair.returncode}")
    notes.append(f"SQLite: {repair.stdout.strip()[:160]}")
    return 2, handled, lost, notes


# ---- 4. mixed load ------------------------------------------------------------------------
def mixed_load(base: Path, model: str, seconds: float) -> tuple[int, int, int, list[str]]:
    import httpx

    photos = base / "load-photos"
    for i in range(60):
        make_pattern(photos / f"l{i:03d}.jpg", i)
    col = base / "load-col"
    cli("index", str(photos), "-c", str(col), "-m", model, "-q")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(base / "server.log", "w")  # noqa: SIM115 -- closed below
    serve = ["serve", "-c", str(col), "--port", str(port), "--token", "t0ken"]
    server = subprocess.Popen(
        [sys.executable, "-m", "crossmodal", *serve, "--no-child-encoders", "--no-access-log"],
        env=ENV,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer t0ken"}
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start: see server.log")
        time.sleep(0.3)
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    upload = (photos / "l000.jpg").read_bytes()

    def record(response: httpx.Response | None, error: str = "") -> None:
        with lock:
            if response is None:
                statuses[f"error {error}"] += 1
            elif response.status_code == 503 and "retry-after" in response.headers:
                statuses["503 busy"] += 1
            else:
                statuses[str(response.status_code)] += 1

    def reader(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=url, timeout=60) as client:
            while time.monotonic() < stop:
                pick = rng.random()
                try:
                    if pick < 0.5:
                        r = client.get("/api/search", params={"q": f"stripes {rng.randint(0, 99)}"})
                    elif pick < 0.7:
                        r = client.get(f"/api/thumbnail/{rng.randint(1, 70)}")
                    elif pick < 0.85:
                        r = client.get(f"/api/search/by-id/{rng.randint(1, 70)}")
                    else:
                        r = client.post("/api/search/image", files={"file": ("q.jpg", upload)})
                    record(r)
                except httpx.HTTPError as exc:
                    record(None, type(exc).__name__)

    def writer() -> None:
        rng = random.Random(99)
        extra = base / "load-photos" / "new"
        n = 0
        with httpx.Client(base_url=url, timeout=120, headers=auth) as client:
            while time.monotonic() < stop:
                pick = rng.random()
                try:
                    if pick < 0.3:
                        make_pattern(extra / f"n{n:03d}.jpg", 100 + n)
                        n += 1
                        r = client.post("/api/index", json={"folder": str(photos)})
                    elif pick < 0.7:
                        r = client.post(
                            f"/api/images/{rng.randint(1, 70)}/annotations", json={"text": "tag"}
                        )
                    else:
                        r = client.delete(f"/api/images/{rng.randint(1, 70)}")
                    record(r)
                except httpx.HTTPError as exc:
                    record(None, type(exc).__name__)
                time.sleep(0.2)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.terminate()
    server.wait(30)
    log.close()
    text = (base / "server.log").read_text(errors="replace")
    tried = sum(statuses.values())
    bad = sum(c for s, c in statuses.items() if s.startswith(("5", "error")) and s != "503 busy")
    tracebacks = text.count(TRACEBACK)
    notes = [
        "answers: " + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items())),
        f"tracebacks in the server log: {tracebacks}",
    ]
    return tried, tried - bad, bad + tracebacks, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--load-seconds", type=float, default=60.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    model = str(tiny_model_dir(0))
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="crossmodal-reliability-") as tmp:
        base = Path(tmp)
        parts = [
            ("bad-file matrix (kinds)", lambda: bad_file_matrix(base, model)),
            ("SIGKILL during index --captions", lambda: kills(base, model, args.kills, rng)),
            ("damaged FAISS / SQLite files", lambda: damaged_files(base, model, rng)),
            (
                f"{args.load_seconds:.0f} s mixed read/write load (requests)",
                lambda: mixed_load(base, model, args.load_seconds),
            ),
        ]
        for name, part in parts:
            print(f"... {name} / 运行中", file=sys.stderr, flush=True)
            t0 = time.time()
            tried, handled, lost, notes = part()
            rows.append((name, tried, handled, lost, notes, time.time() - t0))
    lines = [
        f"`PYTHONPATH=src python benchmarks/reliability.py --seed {args.seed}` "
        f"({time.time() - started:.0f} s, {os.cpu_count()} CPUs)",
        "",
        "| part | tried | handled | lost | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, tried, handled, lost, _, secs in rows:
        lines.append(f"| {name} | {tried} | {handled} | {lost} | {secs:.0f} |")
    total_lost = sum(r[3] for r in rows)
    lines += ["", f"lost in total: {total_lost}", ""]
    for name, *_, notes, _ in rows:
        lines.append(f"- {name}: " + "; ".join(n.replace("\n", " ") for n in notes))
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(
            "# Reliability\n\nThe last output of `benchmarks/reliability.py` (bad files, kills, "
            "damaged files, mixed load; see its docstring for what each row counts).\n\n"
            + text
            + "\n"
        )
    sys.exit(1 if total_lost else 0)


if __name__ == "__main__":
    main()
