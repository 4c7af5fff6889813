"""`crossmodal index`, `search`, `stats` and `check`: build and query a photo collection.

Each command parses and checks its options with the API's own checks (`parse_query`,
`check_search`) before it opens the collection or loads a model, then calls one method of
`Collection` and prints.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crossmodal.cli.common import (
    EXIT_DAMAGED,
    EXIT_SKIPPED,
    CollectionOpt,
    DbOpt,
    friendly_errors,
    setup_torch,
)
from crossmodal.cli.filter_options import (
    AfterOpt,
    BeforeOpt,
    CameraOpt,
    FolderOpt,
    GpsOpt,
    MaxSizeOpt,
    MinSizeOpt,
    TypeOpt,
    WithinOpt,
    filter_from_options,
)
from crossmodal.cli.served import hit_line
from crossmodal.errors import CollectionError, CrossmodalError
from crossmodal.fsnames import shown

if TYPE_CHECKING:
    from crossmodal.collection import SearchHit

__all__ = [
    "check_command",
    "index_command",
    "search_command",
    "stats_command",
    "with_ray_address",
]


def _read_only_list(path: Path) -> list[str]:
    try:
        lines = path.expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CrossmodalError(f"cannot read the --only list {path}: {exc}") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


#: The options of `index` that only shape a new collection's vector store, or rebuild it.
StoreOpt = Annotated[
    str | None,
    typer.Option(
        help="vector store of a new collection: auto (default: exact while fast, then "
        "approximate by size) | flat (exact) | flat-fp16 (exact scan, 2x faster) | hnsw | "
        "hnsw-fp16 | ivfpq (docs/benchmarks.md, scale section)"
    ),
]
MaxIndexMemoryOpt = Annotated[
    str | None,
    typer.Option(help="memory budget of --store auto's index, e.g. 4G (like clip-retrieval)"),
]
OptimizeOpt = Annotated[
    bool,
    typer.Option(
        "--optimize",
        help="rebuild the vector indexes from the catalogue: drop removed rows, tune again",
    ),
]
RebuildOpt = Annotated[
    bool,
    typer.Option(
        "--rebuild", help="collection built with another model (version)? re-embed it all"
    ),
]

RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="decode and embed on Ray workers: alone, a local Ray for this run; HOST:PORT or "
        "auto, a cluster started with `ray start --head` (README, Past one machine)",
    ),
]
RayWorkersOpt = Annotated[
    int | None, typer.Option(help="Ray workers, each holding the model (default: one per core)")
]


def with_ray_address(args: list[str]) -> list[str]:
    """`--ray` takes an optional address, which Typer options cannot: a `--ray` followed by
    nothing, an option or a word that is no address (the folder) gets `local` inserted."""
    from crossmodal.index.ray_index import is_ray_address

    out = list(args)
    for n, arg in enumerate(args):
        if arg == "--ray" and (n + 1 == len(args) or not is_ray_address(args[n + 1])):
            out.insert(n + 1 + (len(out) - len(args)), "local")
    return out


TagsOpt = Annotated[
    bool,
    typer.Option(
        "--tags/--no-tags",
        help="automatic tags of new photos (ImageNet classes, dog breeds; en + zh) from the "
        "image tower's classifier, found by text search",
    ),
]
AutoCaptionsOpt = Annotated[
    bool,
    typer.Option("--auto-captions", help="also an automatic caption per new photo (slow)"),
]
DescribeOpt = Annotated[
    bool,
    typer.Option(
        "--describe",
        help="tag (and with --auto-captions caption) the photos indexed without them; "
        "resumable; alone, without a folder, it only does that",
    ),
]


@friendly_errors
def index_command(
    directory: Annotated[
        Path | None,
        typer.Argument(help="folder of photos (searched recursively); optional with --optimize"),
    ] = None,
    collection: CollectionOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="model of a new collection (default: 'default')"),
    ] = None,
    captions: Annotated[
        Path | None,
        typer.Option(help="captions.tsv / captions.json / Flickr8k token file, by file name"),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="images per batch (and per commit)")] = 32,
    only: Annotated[
        Path | None, typer.Option(help="file listing the file names to index, one per line")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="retry files that failed before")
    ] = False,
    store: StoreOpt = None,
    max_index_memory: MaxIndexMemoryOpt = None,
    optimize: OptimizeOpt = False,
    rebuild: RebuildOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    ray: RayOpt = None,
    ray_workers: RayWorkersOpt = None,
    db: DbOpt = None,
    tags: TagsOpt = True,
    auto_captions: AutoCaptionsOpt = False,
    describe: DescribeOpt = False,
) -> None:
    """Index a folder of photos incrementally: new, changed, moved and deleted files.

    Exit status: 0 when every image file was indexed, 3 when some were skipped (each one and
    its reason is listed on stderr: undecodable files, dangling links, link loops, folders
    that cannot be read), 2 on an error that stopped the run."""
    from crossmodal.collection import Collection
    from crossmodal.index.ray_index import check_ray_settings
    from crossmodal.models.tagger import TagSettings

    if directory is None and not (optimize or describe):
        raise CrossmodalError(
            "give the folder of photos to index (or --optimize / --describe alone)"
        )
    only_names = _read_only_list(only) if only is not None else None
    check_ray_settings(ray, ray_workers)  # the API's own check, before any model loads
    setup_torch()
    with Collection.open(
        collection,
        model=model,
        create=directory is not None,
        store=store,
        rebuild=rebuild,
        max_index_memory=max_index_memory,
        db=db,
    ) as col:
        if directory is None:
            if describe:
                _describe_and_print(col, quiet, auto_captions)
            if optimize:
                _optimize_and_print(col, quiet)
            return
        report = col.index(
            directory,
            captions=captions,
            batch_size=batch_size,
            show_progress=not quiet,
            only=only_names,
            retry_failed=retry_failed,
            ray=ray,
            ray_workers=ray_workers,
            describe=TagSettings.for_index(tags, auto_captions),
        )
        if describe:
            _describe_and_print(col, quiet, auto_captions)
    _after_index(report, directory, optimize, collection, db, quiet)


def _after_index(
    report: Any,
    directory: Path,
    optimize: bool,
    collection: Path | None,
    db: str | None,
    quiet: bool,
) -> None:
    """What was skipped and why, the summary, --optimize; exit 3 when files were skipped."""
    from crossmodal.collection import Collection

    _print_failures(report)
    typer.echo(report.summary())
    if optimize:
        with Collection.open(collection, db=db) as col:
            _optimize_and_print(col, quiet)
    if report.failed:
        _exit_skipped(len(report.failed))
    _refuse_empty_folder(report, directory)


def _describe_and_print(col: Any, quiet: bool, auto_captions: bool) -> None:
    """Tag the photos indexed without tags; one line saying what was done."""
    report = col.describe_all(show_progress=not quiet, auto_captions=auto_captions)
    for path, reason in report.failed:
        typer.echo(f"{shown(path)}: {reason}", err=True)
    typer.echo(report.summary())


def _optimize_and_print(col: Any, quiet: bool) -> None:
    """Rebuild the collection's vector indexes and print one line per store."""
    for table, info in col.optimize(show_progress=not quiet).items():
        typer.echo(_store_line(table, info))


def _print_failures(report: Any) -> None:
    """On stderr: each file that failed this run, and a count of those skipped as before."""
    fresh = [f for f in report.failed if not f.remembered]
    for failure in fresh:
        typer.echo(failure.message, err=True)
    remembered = len(report.failed) - len(fresh)
    if remembered:
        typer.echo(
            f"{remembered} file(s) that failed on an earlier run and have not changed were "
            "skipped again; --retry-failed retries them.",
            err=True,
        )


def _exit_skipped(count: int) -> None:
    """Some files were skipped: say how many, exit with EXIT_SKIPPED."""
    typer.echo(f"{count} skipped (exit status {EXIT_SKIPPED}) / 跳过 {count} 项", err=True)
    raise typer.Exit(EXIT_SKIPPED)


def _refuse_empty_folder(report: Any, directory: Path) -> None:
    """An index that found no photo at all did nothing: say why, exit 2."""
    seen = report.added + report.updated + report.moved + report.unchanged + report.removed
    if seen == 0 and not report.failed:
        from crossmodal.data import IMAGE_EXTENSIONS

        raise CrossmodalError(
            f"no photos found in {shown(str(directory))} (looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}, in sub-folders too): "
            "give the folder that holds your photos"
        )


def _store_line(table: str, info: dict[str, Any]) -> str:
    """'images: hnsw, 1000000 rows, 2.4 GB in memory, recall@10 0.97 vs exact (200 queries)'"""
    recall = info.get("recall_at_10")
    exact = info.get("kind") in ("flat", "flat-fp16") or bool(info.get("exact"))
    measured = (
        "exact scan"
        if exact
        else f"recall@10 {recall:.3f} vs exact on {info.get('sample_queries', 0)} sample queries"
        if recall is not None
        else "recall not measured"
    )
    line = (
        f"{table} index: {info.get('kind')}, {info.get('rows', 0)} rows, "
        f"{info.get('memory_bytes', 0) / 2**20:.1f} MB in memory"
    )
    if info.get("disk_bytes"):
        line += f" + {info['disk_bytes'] / 2**20:.1f} MB memory-mapped"
    if info.get("params"):
        line += " (" + ", ".join(f"{k} {v}" for k, v in info["params"].items()) + ")"
    return f"{line}; {measured}"


SEARCH_HELP = """Search a collection by text, by image, or both combined.

\b
Examples:
  crossmodal search "a dog running on the beach"          text -> images
  crossmodal search examples/beach.jpg                    image -> similar images
  crossmodal search examples/beach.jpg --mode i2t         image -> captions
  crossmodal search "a dog" + examples/beach.jpg - snow   arithmetic: add and subtract terms
  crossmodal search 2:"golden retriever" + grass          weights: W:term
  crossmodal search --text "AC/DC live.jpg"               every term as text

\b
A term that names an existing file is an image. A term that looks like a file (an image
suffix, a "/", or a leading ./ or ~) but is missing is an error, never searched as text:
give --text, or quote it twice ('"AC/DC live"') to mean the words.
Text output: score, then the image path and its first caption (t2i, i2i), or the caption
and the image it belongs to (i2t, t2t); --json carries every field. A text->image hit
that a description lifted says which, on the next line ("matched: ..."); an automatic
caption or tag is marked "auto".

\b
Filters (photo facts read at indexing; any search direction; combine freely):
  crossmodal search "a dog" --after 2024-01-01 --camera Pixel --in ~/Pictures/2024
  crossmodal search beach.jpg --gps --within 48.8,2.2,48.9,2.5 --type jpg,heic
  crossmodal search "receipt" --in . --max-size 2MB      only photos under this folder
A photo without an EXIF date is dated by its file's time (`--json` says which: taken_source).
"""


#: search's output and ranking switches (module aliases keep search_command readable)
NoDescriptionsOpt = Annotated[
    bool,
    typer.Option(
        "--no-descriptions",
        help="text->image by the embedding alone, not also by the photos' captions, "
        "annotations and tags (to compare)",
    ),
]
PathsOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--paths-only",
        help="image paths only, one a line (odd characters escaped: use --print0 for xargs)",
    ),
]
Print0Opt = Annotated[
    bool,
    typer.Option("--print0", "-0", help="image paths as raw bytes, each ended by NUL (xargs -0)"),
]


@friendly_errors
def search_command(
    query: Annotated[
        list[str],
        typer.Argument(
            metavar="QUERY",
            help='texts and image paths: "a dog" + beach.jpg - snow, 2:"golden retriever" '
            "(put -- before a term that starts with -)",
            show_default=False,
        ),
    ],
    collection: CollectionOpt = None,
    k: Annotated[int, typer.Option("-k", "--top", metavar="N", help="number of results")] = 10,
    mode: Annotated[
        str,
        typer.Option(
            metavar="MODE", help="auto | t2i | i2i | i2t | t2t (auto: t2i, or i2i with an image)"
        ),
    ] = "auto",
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", metavar="MODEL", help="default: the collection's model"),
    ] = None,
    text_only: Annotated[
        bool, typer.Option("--text", help="read every term as text, never as an image path")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of hits")] = False,
    no_descriptions: NoDescriptionsOpt = False,
    paths_only: PathsOnlyOpt = False,
    print0: Print0Opt = False,
    db: DbOpt = None,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    camera: CameraOpt = None,
    gps: GpsOpt = None,
    within: WithinOpt = None,
    in_folder: FolderOpt = None,
    types: TypeOpt = None,
    min_size: MinSizeOpt = None,
    max_size: MaxSizeOpt = None,
) -> None:
    from crossmodal.search_options import check_search, parse_query

    # Parse and validate first, importing nothing heavy; only then open and load.
    terms = parse_query(query, text_only=text_only)
    mode = check_search(terms, k, mode)
    found_by = filter_from_options(
        after, before, camera, gps, within, in_folder, types, min_size, max_size
    )
    # A running server, else the model's torch-free query bundle (crossmodal/quick_search.py).
    from crossmodal.quick_search import quick_search

    hits, col = quick_search(
        collection,
        terms,
        k,
        mode,
        model,
        _to_stderr,
        db=db,
        filter=found_by,
        descriptions=False if no_descriptions else None,
    )
    _print_hits(hits, as_json=as_json, paths_only=paths_only, print0=print0)
    if not hits and not found_by.empty:
        raise CollectionError(f"no results: no photo in {col.path} matches the filters")
    if not hits:
        what = "captions or annotations" if mode in ("i2t", "t2t") else "images"
        captions = " --captions FILE" if what != "images" else ""
        raise CollectionError(
            f"no results: collection {col.path} holds no {what} yet; add some with "
            f"`crossmodal index DIR --collection {col.path}{captions}`"
        )


search_command.__doc__ = SEARCH_HELP


def _to_stderr(line: str) -> None:
    typer.echo(line, err=True)


def _print_hits(hits: list[SearchHit], *, as_json: bool, paths_only: bool, print0: bool) -> None:
    """Text lines explain each hit: the caption of an image, the image of a caption."""
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
    elif print0:
        out = sys.stdout.buffer
        for path in dict.fromkeys(h.path for h in hits):
            out.write(os.fsencode(path) + b"\0")
        out.flush()
    elif paths_only:
        for path in dict.fromkeys(h.path for h in hits):
            typer.echo(shown(path))
    else:
        for hit in hits:
            typer.echo(hit_line(hit))


@friendly_errors
def stats_command(
    collection: CollectionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False,
    db: DbOpt = None,
) -> None:
    """What a collection holds: images, texts, model, size on disk."""
    from crossmodal.collection import Collection

    with Collection.open(collection, db=db) as col:
        info = col.stats()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "stores":
            for table, store in value.items():
                typer.echo(_store_line(table, store))
            continue
        if key == "roots":
            value = ", ".join(shown(v) for v in value) or "-"
        typer.echo(f"{key}: {value}")


@friendly_errors
def check_command(
    collection: CollectionOpt = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="rebuild damaged FAISS caches; copy the readable rows of a damaged catalogue "
            "into a new one",
        ),
    ] = False,
) -> None:
    """Check a collection: SQLite's integrity check and FAISS caches against the catalogue.

    One line; exit status 0 when sound (or repaired), 4 when damage remains."""
    from crossmodal.collection import default_collection_path
    from crossmodal.index.repair import check_collection

    folder = (collection or default_collection_path()).expanduser().absolute()
    report = check_collection(folder, repair=repair)
    typer.echo(report.line())
    if not report.ok and not report.repaired:
        typer.echo(
            f"run `crossmodal check --collection {folder} --repair` to mend it "
            "(运行 --repair 修复)",
            err=True,
        )
        raise typer.Exit(EXIT_DAMAGED)
    if not report.ok:
        raise typer.Exit(EXIT_DAMAGED)
