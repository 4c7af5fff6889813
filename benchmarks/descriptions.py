"""User text helps: hybrid text->image search (index/hybrid.py) against the embedding alone.

    .venv/bin/python benchmarks/descriptions.py --select   # choose the weights on val, write them
    .venv/bin/python benchmarks/descriptions.py            # the test-split figures, into the docs

On a Flickr8k split indexed into a collection (through the `Collection` API; the collection
is kept under $CROSSMODAL_CACHE/bench-descriptions/<split>, so a rerun embeds nothing), each
image's first caption becomes its annotation and the other four are the queries, in three
settings: no annotations (plain), every other image annotated (half: the annotated and the
other images are reported apart; the others must not lose more than 1 point of R@1), and
every image annotated (all). Every image also carries the automatic descriptions a
collection indexed with `--auto-captions` has (ImageNet tags and a caption from the project's
captioner, "generated"). Each query is searched twice in the same run, with
`descriptions=False` (the embedding alone) and with the hybrid score, through
`Collection.search_vectors`, what `crossmodal search` and the web app call.

`--select` works on val splits only: it computes each query's candidates and features once
(`hybrid.candidates`), then scores grids of weights (the arithmetic of `hybrid.fuse`). Person
weights: the best mean R@1 of the half and all settings among those that cost the unannotated
half of "half" at most 0.5 point of R@1. Generated weights (tags, automatic captions): the best
breed search on the Stanford Dogs **val** split (benchmarks/breed_search.py's measure) among
those that keep the plain setting at or above the embedding alone. It writes
src/crossmodal/index/hybrid_weights.json.
The test run writes its section of docs/benchmarks.md (between `<!-- descriptions:start -->`
and `<!-- descriptions:end -->`).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DOC = REPO / "docs" / "benchmarks.md"
#: the most R@1 (points) the unannotated half may lose on val for a setting to be chosen
SELECT_MAX_LOSS = 0.5
GRID = {
    "threshold": [0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9],
    "dense_person": [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0],
    "lexical_person": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared/data/flickr8k")
    parser.add_argument("--model", default="default")
    parser.add_argument("--select", action="store_true", help="choose the weights on val")
    parser.add_argument(
        "--dogs",
        type=Path,
        default=REPO.parent / "shared/data/stanford_dogs",
        help="Stanford Dogs, whose val split chooses the generated descriptions' weights",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (args.root / "captions.tsv").is_file():
        sys.exit(f"no Flickr8k at {args.root}: pass --root")
    from crossmodal.runtime import describe_machine

    started = time.perf_counter()
    split = "val" if args.select else "test"
    col, names, queries, truth, vectors = open_split(args.root, split, args.model)
    print(f"{split}: {len(names)} images, {len(queries)} queries; {describe_machine()}")
    if args.select:
        dogs = args.dogs if (args.dogs / "labels.tsv").is_file() else None
        if dogs is None:
            print(f"no Stanford Dogs at {args.dogs}: generated weights chosen on Flickr8k only")
        weights, table = select(col, names, queries, truth, vectors, dogs)
        if not args.no_write:
            write_weights(weights, table, time.perf_counter() - started)
        return
    rows = measure(col, names, queries, truth, vectors)
    seconds = time.perf_counter() - started
    stats = col.stats()
    generated = (stats["tags"], stats["auto_captions"])
    body = section(rows, describe_machine(), seconds, len(names), len(queries), generated)
    print(body)
    if not args.no_write:
        from benchmarks.docsection import update_section

        update_section(DOC, "descriptions", body)


# ---- the data -------------------------------------------------------------------------------
def open_split(root: Path, split: str, model: str):  # type: ignore[no-untyped-def]
    """(collection, image names, query texts, the image id of each query, query vectors)."""
    from crossmodal import Collection
    from crossmodal.data import read_captions_file
    from crossmodal.models.features import default_cache_dir

    names = (root / f"{split}.txt").read_text().split()
    captions = read_captions_file(root / "captions.tsv")
    folder = default_cache_dir() / "bench-descriptions" / split
    col = Collection.open(folder, model=model, create=True)
    from crossmodal.models.tagger import TagSettings

    # tags and automatic captions, as `crossmodal index --auto-captions` makes them
    report = col.index(
        root / "images", only=names, show_progress=False, describe=TagSettings(captions=True)
    )
    print(report.summary())
    if not col.stats()["auto_captions"]:  # a collection kept from before they existed
        col.describe_all(redo=True, auto_captions=True)
    rows = col.catalog.get_images(col.catalog.ids("images").tolist())
    ids = {Path(r["relpath"]).name: i for i, r in rows.items()}
    queries = [c for n in names for c in captions[n][1:5]]
    truth = np.array([ids[n] for n in names for _ in captions[n][1:5]], np.int64)
    key = hashlib.sha1(("\n".join(queries) + col.model.fingerprint).encode()).hexdigest()[:16]
    cached = folder / f"queries-{key}.npy"
    if cached.is_file():
        vectors = np.load(cached)
    else:
        vectors = np.stack(col.queries.encode_texts(queries))
        np.save(cached, vectors)
    col.annotations_by_name = {n: captions[n][0] for n in names}  # type: ignore[attr-defined]
    col.ids_by_name = ids  # type: ignore[attr-defined]
    return col, names, queries, truth, vectors


def annotate(col, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Exactly these images carry their first caption as a person's annotation."""
    from crossmodal import Description

    wanted = {col.ids_by_name[n]: col.annotations_by_name[n] for n in names}
    have = col.catalog.descriptions_of(list(col.ids_by_name.values()), "annotation")
    for image_id in have:
        if image_id not in wanted:
            col.remove_annotations(image_id)
    todo = {
        i: [Description(text, "annotation", "benchmark")]
        for i, text in wanted.items()
        if [r["text"] for r in have.get(i, [])] != [text]
    }
    col.describe_many(todo)


SETTINGS = ("plain", "half", "all")


def annotated_names(names: list[str], setting: str) -> list[str]:
    return {"plain": [], "half": names[::2], "all": names}[setting]


# ---- measuring (test) -----------------------------------------------------------------------
def measure(col, names, queries, truth, vectors) -> list[dict]:  # type: ignore[no-untyped-def]
    """R@1/R@5 of embedding-only and hybrid search in each setting, per group of images."""
    rows = []
    for setting in SETTINGS:
        marked = annotated_names(names, setting)
        annotate(col, marked)
        on = np.isin(truth, [col.ids_by_name[n] for n in marked])
        ranks = {}
        for label, flag in (("embedding", False), ("hybrid", True)):
            t = time.perf_counter()
            ranks[label] = search_ranks(col, queries, truth, vectors, flag)
            print(f"{setting} {label}: {time.perf_counter() - t:.0f} s", flush=True)
        groups = {"all images": np.ones(len(truth), bool)}
        if setting == "half":
            groups = {"annotated half": on, "other half": ~on, "all images": groups["all images"]}
        for group, mask in groups.items():
            row = {"setting": setting, "group": group, "queries": int(mask.sum())}
            for label, r in ranks.items():
                row[f"{label}_r1"] = 100 * float(np.mean(r[mask] <= 1))
                row[f"{label}_r5"] = 100 * float(np.mean(r[mask] <= 5))
            rows.append(row)
            print(row, flush=True)
    annotate(col, [])
    return rows


def search_ranks(col, queries, truth, vectors, descriptions: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Rank of each query's image in its top 5 (6 = not in it), through the Collection API."""
    out = np.full(len(queries), 6, np.int64)
    for start in range(0, len(queries), 64):
        stop = min(len(queries), start + 64)
        pages = col.search_vectors(
            vectors[start:stop],
            5,
            "images",
            cross_modal=True,
            texts=queries[start:stop],
            descriptions=descriptions,
        )
        for n, hits in enumerate(pages, start):
            found = [h.rank for h in hits if h.id == truth[n]]
            out[n] = found[0] if found else 6
    return out


def section(
    rows: list[dict],
    machine: str,
    seconds: float,
    n_images: int,
    n_queries: int,
    generated: tuple[int, int],
) -> str:
    from crossmodal.index.hybrid import HybridWeights

    w = HybridWeights.packaged()
    tags, autos = generated
    lines = [
        "<!-- descriptions:start -->",
        "## User text helps: hybrid text→image search",
        "",
        f"Flickr8k test split ({n_images} images, {n_queries} queries: captions 2-5 of each "
        "image; its first caption is its annotation where it has one). The same run searches "
        "every query twice through `Collection.search_vectors`: by the embedding alone "
        "(`--no-descriptions`) and hybrid (embedding + the images' descriptions, "
        "src/crossmodal/index/hybrid.py). Every image also has its generated descriptions "
        f"({tags} ImageNet tags and {autos} automatic captions in all, as `crossmodal index "
        "--auto-captions` stores them). Weights chosen on val by "
        f"`benchmarks/descriptions.py --select`: {weights_line(w)}.",
        "",
        "| annotated | images scored | queries | R@1 embedding | R@1 hybrid | R@5 embedding "
        "| R@5 hybrid |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['group']} | {r['queries']} | {r['embedding_r1']:.1f} | "
            f"{r['hybrid_r1']:.1f} | {r['embedding_r5']:.1f} | {r['hybrid_r5']:.1f} |"
        )
    lines += [
        "",
        '"plain": no annotation, only the generated descriptions; "half": every other image '
        'annotated with its first caption (the two halves scored apart); "all": every image.',
        "",
        f"`python benchmarks/descriptions.py` on {machine}; {seconds:.0f} s with the "
        "collection and query vectors cached (the machine was shared with other jobs).",
        "<!-- descriptions:end -->",
    ]
    return "\n".join(lines)


def weights_line(w) -> str:  # type: ignore[no-untyped-def]
    """The packaged weights in words (threshold of the dense part / dense / lexical)."""
    t = w.thresholds()
    return (
        f"a person's text dense {w.dense_person:g} above cosine {t[0]:g}, lexical "
        f"{w.lexical_person:g}; tags dense {w.dense_tag:g} above {t[1]:g}, lexical "
        f"{w.lexical_tag:g}; automatic captions dense {w.dense_auto_caption:g} above "
        f"{t[2]:g}, lexical {w.lexical_auto_caption:g}"
    )


# ---- choosing the weights (val) -------------------------------------------------------------
def features(col, queries, truth, vectors, depth: int = 100):  # type: ignore[no-untyped-def]
    """Per query: embedding score, best description cosine and lexical score of each column
    (person, tag, automatic caption) of each candidate, padded to one array each (the
    target's column marked)."""
    from crossmodal.index.hybrid import COLUMNS, candidates

    found = [
        candidates(col.catalog, col.stores, col.dim, vectors[n], queries[n], depth)
        for n in range(len(queries))
    ]
    width = max(len(c.image_ids) for c in found)
    emb = np.full((len(found), width), -np.inf, np.float32)
    dense = np.full((len(found), width, COLUMNS), -1.0, np.float32)
    lexical = np.zeros((len(found), width, COLUMNS), np.float32)
    target = np.zeros((len(found), width), bool)
    for n, c in enumerate(found):
        m = len(c.image_ids)
        emb[n, :m], dense[n, :m], lexical[n, :m] = c.embedding, c.dense, c.lexical
        target[n, :m] = c.image_ids == truth[n]
    return emb, dense, lexical, target


def fused(feats, w) -> np.ndarray:  # type: ignore[no-untyped-def]
    """`hybrid.fuse` over the padded arrays (the same `hybrid.weighted` arithmetic)."""
    from crossmodal.index.hybrid import weighted

    emb, dense, lexical, _ = feats
    dense_part, lexical_part = weighted(dense, lexical, w)
    return emb + dense_part.sum(axis=2) + lexical_part.sum(axis=2)


def ranks_of(score: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based rank of the target (a rank past the candidates when it is not among them)."""
    has = target.any(axis=1)
    mine = np.where(has, score[np.arange(len(score)), target.argmax(axis=1)], -np.inf)
    return np.where(has, 1 + (score > mine[:, None]).sum(axis=1), 10**6)


def r1_table(per_setting: dict, w) -> dict:  # type: ignore[no-untyped-def]
    """R@1 (points) of the hybrid score and of the embedding in each setting, and what the
    unannotated half of "half" loses."""
    row = {}
    for setting, (feats, on) in per_setting.items():
        r1 = ranks_of(fused(feats, w), feats[3]) <= 1
        base = ranks_of(feats[0], feats[3]) <= 1
        row[f"{setting}_r1"] = 100 * float(r1.mean())
        row[f"{setting}_base_r1"] = 100 * float(base.mean())
        if setting == "half":
            row["other_loss"] = 100 * float(base[~on].mean() - r1[~on].mean())
    return row


def select(col, names, queries, truth, vectors, dogs: Path | None):  # type: ignore[no-untyped-def]
    """Person weights on the half/all settings of Flickr8k val (generated weights off), then
    generated weights: the best breed search on Stanford Dogs val among those that keep
    Flickr8k val's plain setting (tags and automatic captions only) at or above the
    embedding and cost the unannotated half at most SELECT_MAX_LOSS."""
    from dataclasses import replace

    from crossmodal.index.hybrid import HybridWeights

    per_setting = {}
    for setting in SETTINGS:
        marked = annotated_names(names, setting)
        annotate(col, marked)
        t = time.perf_counter()
        per_setting[setting] = (features(col, queries, truth, vectors),
                                np.isin(truth, [col.ids_by_name[n] for n in marked]))  # fmt: skip
        print(f"{setting}: features in {time.perf_counter() - t:.0f} s", flush=True)
    annotate(col, [])
    person = {k: v for k, v in per_setting.items() if k != "plain"}
    table = []
    for threshold, dense_w, lexical_w in itertools.product(*GRID.values()):
        w = HybridWeights(dense_person=dense_w, lexical_person=lexical_w, threshold=threshold)
        row = {"threshold": threshold, "dense_person": dense_w, "lexical_person": lexical_w}
        row |= r1_table(person, w)
        row["objective"] = (row["half_r1"] + row["all_r1"]) / 2
        table.append(row)
    allowed = [r for r in table if r["other_loss"] <= SELECT_MAX_LOSS]
    best = max(allowed, key=lambda r: (round(r["objective"], 6), -r["dense_person"]))
    print("person weights chosen on val:", best)
    base = HybridWeights(
        dense_person=best["dense_person"],
        lexical_person=best["lexical_person"],
        threshold=best["threshold"],
    )
    # automatic captions: Flickr8k val's plain setting has them on every photo
    autos = []
    for threshold_a, dense_a, lexical_a in generated_grid(base):
        w = replace(
            base,
            threshold_auto_caption=threshold_a,
            dense_auto_caption=dense_a,
            lexical_auto_caption=lexical_a,
        )
        row = {"threshold_auto_caption": threshold_a, "dense_auto_caption": dense_a}
        row |= {"lexical_auto_caption": lexical_a, **r1_table(per_setting, w)}
        row["plain_gain"] = row["plain_r1"] - row["plain_base_r1"]
        autos.append(row)
    kept = [r for r in autos if r["plain_gain"] >= 0 and r["other_loss"] <= SELECT_MAX_LOSS]
    auto = max(kept, key=lambda r: (round(r["plain_gain"], 6), -r["dense_auto_caption"]))
    print("automatic-caption weights chosen on val:", auto, flush=True)
    base = replace(
        base,
        threshold_auto_caption=auto["threshold_auto_caption"],
        dense_auto_caption=auto["dense_auto_caption"],
        lexical_auto_caption=auto["lexical_auto_caption"],
    )
    # tags: breed search on Stanford Dogs val, Flickr8k val's plain setting kept
    tags = []
    for threshold_t, dense_t, lexical_t in generated_grid(base):
        w = replace(base, threshold_tag=threshold_t, dense_tag=dense_t, lexical_tag=lexical_t)
        row = {"threshold_tag": threshold_t, "dense_tag": dense_t, "lexical_tag": lexical_t}
        row |= r1_table(per_setting, w)
        row["plain_gain"] = row["plain_r1"] - row["plain_base_r1"]
        tags.append(row)
        if row["plain_gain"] < 0 or row["other_loss"] > SELECT_MAX_LOSS:
            print("refused on Flickr8k val:", row, flush=True)  # no need to score dogs
            continue
        if dogs is not None:
            row["dogs_val"] = dogs_val_score(dogs, w)
        print(row, flush=True)
    kept = [r for r in tags if r["plain_gain"] >= 0 and r["other_loss"] <= SELECT_MAX_LOSS]
    key = "dogs_val" if dogs is not None else "plain_gain"
    chosen = max(kept, key=lambda r: (round(r[key], 6), round(r["plain_gain"], 6)))
    print("tag weights chosen on val:", chosen)
    weights = replace(
        base,
        threshold_tag=chosen["threshold_tag"],
        dense_tag=chosen["dense_tag"],
        lexical_tag=chosen["lexical_tag"],
    )
    return weights, {
        "chosen": best,
        "grid_size": len(table),
        "auto_caption": auto,
        "tag": chosen,
    }


#: thresholds and weights tried for a generated kind of description (tags, automatic
#: captions); the most one can add (dense + lexical) stays below what a person's text can
#: add, so a person's text counts above a generated one
GENERATED_THRESHOLDS = (0.8, 0.85, 0.9, 0.95)
GENERATED_DENSE = (0.0, 0.25, 0.5, 1.0, 2.0)
GENERATED_LEXICAL = (0.0, 0.1, 0.2, 0.4, 0.8)


def generated_grid(person) -> list[tuple[float, float, float]]:  # type: ignore[no-untyped-def]
    """(threshold, dense, lexical) for a generated kind: none at all first, then every
    threshold and pair of weights whose sum is below a person's."""
    most = person.dense_person + person.lexical_person
    grid = [(person.threshold, 0.0, 0.0)]
    for threshold, d, x in itertools.product(
        GENERATED_THRESHOLDS, GENERATED_DENSE, GENERATED_LEXICAL
    ):
        if (d or x) and d + x < most:
            grid.append((threshold, d, x))
    return grid


def dogs_val_score(dogs: Path, weights) -> float:  # type: ignore[no-untyped-def]
    """Breed search on the Stanford Dogs val split with these weights: the mean over en and
    zh of precision@10 / min(10, R) (benchmarks/breed_search.py; its collection is kept)."""
    from benchmarks.breed_search import dogs_collection, hybrid_weights, queries, score

    from crossmodal.models.features import default_cache_dir

    keep = default_cache_dir() / "bench-breeds"
    with dogs_collection(dogs, "val", keep) as (col, labels_of, relevant, ds, _):
        texts = queries(ds.class_ids)
        with hybrid_weights(weights):
            got = [score(col, texts[lang], labels_of, relevant, True)[2] for lang in texts]
    return 100 * float(np.mean(got))


def write_weights(weights, table: dict, seconds: float) -> None:  # type: ignore[no-untyped-def]
    from crossmodal.index.hybrid import WEIGHTS_FILE
    from crossmodal.runtime import describe_machine

    WEIGHTS_FILE.write_text(
        json.dumps(
            {
                "chosen_by": "python benchmarks/descriptions.py --select (Flickr8k val, "
                "Stanford Dogs val)",
                "rule": f"person weights: best mean R@1 of the half- and all-annotated "
                f"Flickr8k val settings, the unannotated half losing at most {SELECT_MAX_LOSS} "
                "point; automatic captions: best R@1 of Flickr8k val's plain setting (generated "
                "descriptions only), at or above the embedding; tags: best breed search on "
                "Stanford Dogs val (mean of en and zh precision@10 / min(10, R)) among those "
                "keeping that plain setting at or above the embedding; a generated kind's dense + "
                "lexical weight below a person's",
                "val": table["chosen"],
                "auto_caption_val": table["auto_caption"],
                "tag_val": table["tag"],
                "grid_size": table["grid_size"],
                "machine": describe_machine(),
                "seconds": round(seconds),
                "weights": weights.to_dict(),
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
