"""Scale benchmark: the exact and approximate vector stores at 1M (and 10M) rows.

    python benchmarks/scale.py                                 # 1M x 512, every store
    python benchmarks/scale.py --rows 10000000 --stores flat-fp16,ivfpq   # 10M, streamed
    python benchmarks/scale.py --rows 100000 --no-write        # a quick look

The base vectors look like the default model's real image embeddings without being copies
of them: the default model embeds 2,000 Flickr8k *train* images; a PCA keeps their 128
main directions and a Gaussian mixture (16 components, full covariances, scikit-learn) is
fitted in that space; each base vector is a draw from the mixture, mapped back to 512
dimensions, plus Gaussian noise in the other 384 with the real residual's per-dimension
spread, normalised to unit length. Queries are real caption embeddings of other splits: val
captions tune each store's search effort (`efSearch`, `nprobe`), test captions measure it;
ground truth is an exact scan of the whole base. The script prints how close the draws are
to real images (nearest-neighbour similarities) so the claim can be checked.

Rows are generated, written to disk and indexed in chunks of a million, so 10M x 512
(20 GB of float32) never sits in memory at once. Every store is built and measured in the
same run: build time, bytes per row in memory (and on disk, memory-mapped, for IVF-PQ's
float16 re-ranking rows), latency of one query (p50/p99 over 300 queries, one at a time)
and of batches of 64, recall@1/10/100 against the exact top 100. At 1M it also writes the
thresholds `--store auto` uses (src/crossmodal/index/auto_store.json) and its section of
docs/benchmarks.md (between `<!-- scale:start -->` and `<!-- scale:end -->`).
"""

from __future__ import annotations

import os

# several processes share two cores here: OpenMP threads that spin while they wait for work
# took the cores from each other (FAISS's k-means ran 2x slower); they sleep instead
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import gc
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from benchmarks.docsection import update_section  # noqa: E402

from crossmodal.index.ann import (  # noqa: E402
    PQ_BYTES,
    THRESHOLDS_FILE,
    ApproximateStore,
    exact_top_k,
    new_store,
    recall_at,
    with_combinations,
)
from crossmodal.index.store import FlatIPStore, VectorStore  # noqa: E402

DOC = REPO / "docs" / "benchmarks.md"
STORES = ("flat", "flat-fp16", "hnsw", "hnsw-fp16", "ivfpq")
#: the default run: `hnsw` builds as slowly as `hnsw-fp16` (~15 min a million rows on two
#: busy cores) and answered slower with twice the memory at the same recall (50k rows)
DEFAULT_STORES = ("flat", "ivfpq", "hnsw-fp16", "flat-fp16")
CHUNK = 1_000_000
#: train images the generator is fitted on, and held out to compare real with drawn rows
#: (embedding runs at ~10 images/s on two shared cores: the rest of the split would take 8 min)
FIT, HELD = 2000, 500
SINGLE, BATCH = 300, 64
#: `--store auto` stays exact while one exact query is expected to take less than this:
#: about what the text tower takes to embed the query, so the scan is not what a user waits on
EXACT_BUDGET_MS = 10.0


def machine() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = re.search(r"Model name:\s*(.+)", out)
    flags = re.search(r"Flags:\s*(.+)", out)
    simd = [f for f in (flags.group(1).split() if flags else []) if re.match(r"avx|fma|f16c", f)]
    load = os.getloadavg()[0]
    import faiss

    return (
        f"{name.group(1).strip() if name else 'unknown CPU'}, {os.cpu_count()} cores, "
        f"SIMD flags {' '.join(simd) or 'none'}; FAISS {faiss.__version__} "
        f"({faiss.get_compile_options().strip()}); load average {load:.1f} at the start "
        "(other jobs on the machine slow every figure)"
    )


# ---- real embeddings and the generator ----------------------------------------------------
def real_embeddings(root: Path) -> dict[str, np.ndarray]:
    """Default-model vectors: train images (the generator's fit), val and test captions."""
    from crossmodal.data import load_dataset
    from crossmodal.models import load_model
    from crossmodal.models.features import default_cache_dir, embed_image_files, embed_texts

    model = load_model("default")
    cache = default_cache_dir() / f"scale-real-{model.fingerprint.replace(':', '-')}.npz"
    if cache.is_file():
        return dict(np.load(cache))
    train = load_dataset("flickr8k", root, split="train")
    paths = [train.image_paths[i] for i in np.random.default_rng(0).permutation(FIT + HELD)]
    print(f"embedding {len(paths)} train images (cached afterwards)…", flush=True)
    images = embed_image_files(model, paths, cache_dir=default_cache_dir()).vectors
    out = {"train_images": np.asarray(images, np.float32)}
    for split in ("val", "test"):
        ds = load_dataset("flickr8k", root, split=split)
        pick = np.random.default_rng(1).choice(len(ds.captions), 1000, replace=False)
        texts = [ds.captions[i] for i in pick]
        out[f"{split}_captions"] = embed_texts(model, texts, cache_dir=default_cache_dir())
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


class Generator:
    """PCA(128) + a 16-component Gaussian mixture fitted to real image embeddings, plus
    per-dimension Gaussian residual noise; draws are normalised."""

    def __init__(self, images: np.ndarray, components: int = 128, clusters: int = 16) -> None:
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture

        self.pca = PCA(components, random_state=0).fit(images)
        low = self.pca.transform(images)
        self.residual_std = (images - self.pca.inverse_transform(low)).std(axis=0)
        self.gmm = GaussianMixture(
            clusters, covariance_type="full", reg_covar=1e-4, random_state=0
        ).fit(low)

    def draw(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n, self.gmm.weights_)
        low = np.concatenate(
            [
                rng.multivariate_normal(mean, cov, size=c, method="cholesky")
                for mean, cov, c in zip(self.gmm.means_, self.gmm.covariances_, counts, strict=True)
            ]
        )
        rng.shuffle(low)
        x = self.pca.inverse_transform(low).astype(np.float32)
        x += rng.standard_normal(x.shape, np.float32) * self.residual_std.astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x


def realism(gen: Generator, real: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean similarity of each vector's nearest neighbour, real vs drawn (same sizes); real
    images are the held-out train images the generator was not fitted on."""
    train = real["train_images"][FIT:]
    fake = gen.draw(len(train), seed=99)

    def nn(a: np.ndarray, b: np.ndarray, same: bool) -> float:
        sims = a @ b.T
        if same:
            np.fill_diagonal(sims, -np.inf)
        return float(sims.max(axis=1).mean())

    captions = real["test_captions"]
    return {
        "image_nn_real": nn(train, train, True),
        "image_nn_drawn": nn(fake, fake, True),
        "caption_top1_real": nn(captions, train, False),
        "caption_top1_drawn": nn(captions, fake, False),
    }


def write_base(gen: Generator, rows: int, folder: Path) -> tuple[np.memmap, np.memmap]:
    """The base, float32 and float16 (IVF-PQ's re-ranking rows), on disk in chunks."""
    dim = gen.pca.components_.shape[1]
    base = np.lib.format.open_memmap(folder / "base.npy", "w+", np.float32, (rows, dim))
    half = np.lib.format.open_memmap(folder / "base16.npy", "w+", np.float16, (rows, dim))
    for start in range(0, rows, CHUNK):
        part = gen.draw(min(CHUNK, rows - start), seed=start)
        base[start : start + len(part)] = part
        half[start : start + len(part)] = part
        print(f"  drew rows {start + len(part):,}/{rows:,}", flush=True)
    base.flush()
    half.flush()
    return base, half


# ---- measuring ------------------------------------------------------------------------------
def build(
    kind: str, base: np.memmap, half: np.memmap, tune: np.ndarray, pq_bytes: int = PQ_BYTES
) -> VectorStore:
    store = new_store(kind, base.shape[1], pq_bytes)
    ids = np.arange(len(base), dtype=np.int64)
    if isinstance(store, ApproximateStore):
        store.build(ids, base, queries=tune, rows16=half, show_progress=True)
    else:
        for start in range(0, len(base), CHUNK):
            store.add(ids[start : start + CHUNK], np.asarray(base[start : start + CHUNK]))
    return store


def memory_per_row(store: VectorStore) -> tuple[float, float]:
    """(bytes in memory, bytes on disk memory-mapped) per row."""
    n = len(store)
    if isinstance(store, ApproximateStore):
        return store.memory_bytes() / n, store.disk_bytes() / n
    assert isinstance(store, FlatIPStore)
    per = (2 if store.kind == "flat-fp16" else 4) * store.dim + 8
    if store._shadow is not None:  # the exact store's float16 copy for two-stage search
        per += 2 * store.dim
    return float(per), 0.0


def measure(store: VectorStore, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    store.search(queries[:2], 10)  # warm: page cache, the exact store's float16 copy
    single = []
    for q in queries[:SINGLE]:
        t = time.perf_counter()
        store.search(q[None], 10)
        single.append(time.perf_counter() - t)
    batches, found = [], []
    for start in range(0, len(queries), BATCH):
        t = time.perf_counter()
        store.search(queries[start : start + BATCH], 10)
        batches.append(time.perf_counter() - t)
        found.append(store.search(queries[start : start + BATCH], 100)[1])  # recall, untimed
    got = np.concatenate(found)
    ms = np.array(single) * 1e3
    bms = np.array(batches) * 1e3
    return {
        "single_p50_ms": float(np.percentile(ms, 50)),
        "single_p99_ms": float(np.percentile(ms, 99)),
        "batch_p50_ms": float(np.percentile(bms, 50)),
        "batch_p99_ms": float(np.percentile(bms, 99)),
        "recall@1": recall_at(got, truth, 1),
        "recall@10": recall_at(got, truth, 10),
        "recall@100": recall_at(got, truth, 100),
    }


def run(args: argparse.Namespace, keep: Any = None) -> dict[str, Any]:
    """Every store in one run; `keep(partial result)` after each (a long run stopped early
    keeps what it measured)."""
    real = real_embeddings(Path(args.root))
    started = time.perf_counter()
    gen = Generator(real["train_images"][:FIT])
    look = realism(gen, real)
    print("realism (mean nearest-neighbour similarity):", json.dumps(look), flush=True)
    # tuned as a collection tunes its image index: captions and sums of two (query arithmetic)
    tune = with_combinations(real["val_captions"][:200], np.random.default_rng(0))
    queries = real["test_captions"][: args.queries]
    out: dict[str, Any] = {"rows": args.rows, "dim": int(tune.shape[1]), "realism": look}
    out["machine"] = machine()
    with tempfile.TemporaryDirectory(prefix="crossmodal-scale-", dir=args.tmp) as tmp:
        t = time.perf_counter()
        base, half = write_base(gen, args.rows, Path(tmp))
        out["generate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        print("exact ground truth (top 100 of every test query)…", flush=True)
        _, truth = exact_top_k(base, queries, 100, chunk=262_144)
        out["truth_s"] = time.perf_counter() - t
        out["stores"] = {}
        for kind in args.stores:
            print(f"{kind}: building…", flush=True)
            t = time.perf_counter()
            store = build(kind, base, half, tune, args.pq_bytes)
            built = time.perf_counter() - t
            result = measure(store, queries, truth)
            mem, disk = memory_per_row(store)
            result.update(build_s=built, bytes_per_row=mem, disk_bytes_per_row=disk)
            if isinstance(store, ApproximateStore):
                result["params"] = store.info.params
                result["tuned_recall@10_val"] = store.info.recall_at_10
            out["stores"][kind] = result
            print(f"{kind}: {json.dumps(result)}", flush=True)
            out["seconds"] = time.perf_counter() - started
            if keep is not None:
                keep(out)
            del store
            gc.collect()
    out["seconds"] = time.perf_counter() - started
    return out


# ---- what the run decides and reports -----------------------------------------------------
def thresholds(result: dict[str, Any]) -> dict[str, Any]:
    """`--store auto`'s rule from a run: exact below the size where one exact query would
    pass EXACT_BUDGET_MS (exact latency grows with the rows), then the approximate stores
    that reached recall@10 >= 0.95, fastest single query first."""
    stores = result["stores"]
    exact = stores.get("flat")
    per_row_ms = exact["single_p50_ms"] / result["rows"] if exact else None
    exact_below = int(EXACT_BUDGET_MS / per_row_ms) if per_row_ms else 200_000
    good = [k for k, r in stores.items() if k not in ("flat", "flat-fp16")]
    good = [k for k in good if stores[k]["recall@10"] >= 0.95]
    return {
        "exact_below": max(10_000, round(exact_below, -4)),
        "by_speed": sorted(good, key=lambda k: stores[k]["single_p50_ms"]),
        "measured": f"benchmarks/scale.py at {result['rows']:,} x {result['dim']} rows",
    }


def section(results: list[dict[str, Any]], rule: dict[str, Any] | None) -> str:
    lines = [
        "<!-- scale:start -->",
        "## Past one machine: exact vs approximate stores (`benchmarks/scale.py`)",
        "",
        "Base rows are drawn from a model of the default model's real Flickr8k train-image "
        "embeddings (PCA to 128 dimensions + a 16-component Gaussian mixture, residual noise in "
        "the other dimensions, normalised; see the script's docstring); queries are real test-"
        "split caption embeddings (each store's search effort is tuned as a collection tunes "
        "it: on 200 val captions and 200 sums of two); "
        "ground truth is an exact scan in the same run. Single query: p50/p99 of 300 queries "
        "one at a time; batch: 64 queries a call (both top 10). Memory: bytes per row in the "
        "process (index and ids); IVF-PQ also reads float16 rows from its file (memory-mapped: "
        "disk and page cache) to re-rank its shortlist.",
        "",
    ]
    for r in results:
        look = r["realism"]
        lines += [
            f"### {r['rows']:,} x {r['dim']}",
            "",
            f"Machine: {r['machine']}. Drawing the base took {r['generate_s']:.0f} s, the exact "
            f"ground truth {r['truth_s']:.0f} s; whole run {r['seconds'] / 60:.0f} min.",
            *([f"Note: {r['note']}."] if r.get("note") else []),
            f"Realism: a real train image's nearest other image has similarity "
            f"{look['image_nn_real']:.3f} on average, a drawn row's nearest other drawn row "
            f"{look['image_nn_drawn']:.3f} (500 each, the real ones held out of the fit); a "
            f"test caption's best of the real images {look['caption_top1_real']:.3f}, its best "
            "of the drawn rows "
            f"{look['caption_top1_drawn']:.3f}.",
            "",
            "| store | build | bytes/row in memory (+ mapped) | one query p50 / p99 ms "
            "| 64 queries p50 / p99 ms | recall@1 | recall@10 | recall@100 | search effort |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        flat = r["stores"].get("flat")
        for kind, s in r["stores"].items():
            speed = ""
            if flat and kind != "flat":
                speed = f" ({flat['single_p50_ms'] / s['single_p50_ms']:.0f}x exact)"
            mapped = f" (+ {s['disk_bytes_per_row']:.0f})" if s["disk_bytes_per_row"] else ""
            lines.append(
                f"| {kind} | {s['build_s']:.0f} s | {s['bytes_per_row']:.0f}{mapped} "
                f"| {s['single_p50_ms']:.2f} / {s['single_p99_ms']:.2f}{speed} "
                f"| {s['batch_p50_ms']:.1f} / {s['batch_p99_ms']:.1f} "
                f"| {s['recall@1']:.3f} | {s['recall@10']:.3f} | {s['recall@100']:.3f} "
                f"| {json.dumps(s.get('params', {})) if s.get('params') else 'exact'} |"
            )
        lines.append("")
    if rule is not None:
        lines += [
            f"`--store auto` (from the run at {rule['measured']}): exact below "
            f"{rule['exact_below']:,} rows (where one exact query is expected to pass "
            f"{EXACT_BUDGET_MS:.0f} ms, about a text query's embedding), then the first of "
            f"{', '.join(rule['by_speed']) or '(none reached 0.95)'} (fastest single query "
            "among the stores with recall@10 >= 0.95) that fits `--max-index-memory`, IVF-PQ "
            "last. Written to src/crossmodal/index/auto_store.json.",
            "",
        ]
    lines.append("<!-- scale:end -->")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stores", default=",".join(DEFAULT_STORES))
    parser.add_argument("--queries", type=int, default=1000, help="test captions measured")
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "flickr8k"))
    parser.add_argument("--tmp", default=None, help="folder for the base files (disk space)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--pq-bytes",
        type=int,
        default=PQ_BYTES,
        help="IVF-PQ code bytes a row (with its two 8-byte ids: the memory a row costs)",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the docs from the saved runs"
    )
    args = parser.parse_args()
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(args.stores) - set(STORES)
    if unknown:
        parser.error(f"unknown stores {sorted(unknown)}: use {', '.join(STORES)}")
    saved = REPO / "docs" / "scale-benchmark.json"
    runs = json.loads(saved.read_text()) if saved.is_file() else {}
    if not args.render_only:

        def keep(partial: dict[str, Any]) -> None:
            runs[str(args.rows)] = partial
            saved.write_text(json.dumps(runs, indent=1) + "\n")

        run(args, None if args.no_write else keep)
        if args.no_write:
            return
    rule = None
    ref = runs.get(str(1_000_000))
    if ref is not None:
        rule = thresholds(ref)
        if args.rows == 1_000_000:
            THRESHOLDS_FILE.write_text(json.dumps(rule, indent=1) + "\n")
    ordered = [runs[k] for k in sorted(runs, key=int)]
    update_section(DOC, "scale", section(ordered, rule))
    print(f"wrote {saved.relative_to(REPO)} and the scale section of {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
