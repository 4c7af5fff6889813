"""Issue 19, defect 3: eight parallel 37 KB PNGs of 6200 x 6200 pixels (38 MP, under the
40 MP cap) raised a server from 1.1 to 5.8 GB, and it stayed at 5.5 GB. Here a real
`crossmodal serve` process gets them; its peak resident memory (VmHWM) must rise by at most
600 MB, fall back within 100 MB of the start, and 40 at once get 503s past the decoding
slots, never an out-of-memory or another 5xx."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from crossmodal import Collection
from tests.index.helpers import make_photos, tiny_model_dir
from tests.web.conftest import free_port

MB = 1024 * 1024
SIDE = 6200


def flat_png(side: int) -> bytes:
    """A one-colour RGB PNG of side x side pixels, compressed row by row (a few dozen KB)."""
    return _flat_png(side)


def tagged(png: bytes, n: int) -> bytes:
    """The same pixels with a tEXt chunk of its own: other bytes, so that the server's cache
    of query vectors (keyed by the upload's hash) cannot answer it without decoding."""
    text = b"Comment\0" + str(n).encode()
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + text))
    return png[:33] + chunk + png[33:]  # after the signature and IHDR


def _flat_png(side: int) -> bytes:

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    packer = zlib.compressobj(9)
    row = b"\0" + bytes((200, 40, 40)) * side
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def memory(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_parallel_38_megapixel_uploads_stay_bounded(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 4)
    col = Collection.open(tmp_path / "col", model=str(tiny_model_dir(0)), create=True)
    col.index(tmp_path / "photos", show_progress=False)
    col.close()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CROSSMODAL_TOKEN": ""}
    serve = ["serve", "-c", str(tmp_path / "col"), "--port", str(port), "--no-child-encoders"]
    server = subprocess.Popen(
        [sys.executable, "-m", "crossmodal", *serve, "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    png = flat_png(SIDE)
    assert len(png) < 200 * 1024
    small = (tmp_path / "photos" / "d0" / "p000.jpg").read_bytes()

    def upload(data: bytes) -> httpx.Response:
        return httpx.post(f"{url}/api/search/image", files={"file": ("x.png", data)}, timeout=120)

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        assert upload(small).status_code == 200
        assert upload(tagged(png, 0)).status_code == 200  # one big one first: its code paths
        time.sleep(0.5)
        start = memory(server.pid, "VmRSS")
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(upload, [tagged(png, n) for n in range(1, 9)]))
        assert [a.status_code for a in answers] == [200] * 8, answers[0].text
        peak = memory(server.pid, "VmHWM")
        time.sleep(0.5)
        after = memory(server.pid, "VmRSS")
        print(
            f"8 x 38 MP: start {start / MB:.0f} MB, peak +{(peak - start) / MB:.0f} MB, "
            f"after +{(after - start) / MB:.0f} MB"
        )
        assert peak - start <= 600 * MB
        assert after - start <= 100 * MB

        with ThreadPoolExecutor(40) as pool:
            crowd = list(pool.map(upload, [tagged(png, n) for n in range(10, 50)]))
        codes = [a.status_code for a in crowd]
        assert set(codes) <= {200, 503} and codes.count(503) >= 1, codes
        busy = next(a for a in crowd if a.status_code == 503)
        assert busy.headers["retry-after"] == "2" and "busy" in busy.json()["detail"]
        assert server.poll() is None
        assert memory(server.pid, "VmHWM") - start <= 600 * MB
        print(f"40 at once: {codes.count(200)} answered, {codes.count(503)} x 503")
    finally:
        server.terminate()
        server.wait(30)
