"""A collection in PostgreSQL + pgvector (`--db`) against the embedded SQLite + FAISS one.

A real server: `pgserver` (a wheel bundling PostgreSQL 16 with pgvector) started in a temp
folder by the session fixture; each test gets a database of its own. The tests skip, saying
why, only when that server cannot be installed or started on this platform.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from crossmodal import Collection
from crossmodal.cli import app
from crossmodal.errors import CollectionError
from crossmodal.index import pg_store
from crossmodal.index.catalog import Catalog
from crossmodal.index.facts import FACT_COLUMNS, facts_of, rows_without_facts
from crossmodal.index.filters import allowed_ids
from crossmodal.index.hybrid import HybridWeights, hybrid_hits
from crossmodal.index.pg_catalog import PgCatalog
from crossmodal.index.pg_schema import PG_SCHEMA_VERSION
from crossmodal.models import load_model
from crossmodal.models.base import Encoder
from crossmodal.search_filter import parse_filter
from tests.index.exif_helpers import SHOTS, write_library
from tests.index.helpers import make_photos, one_torch_thread, tiny_model_dir

runner = CliRunner()
_names = itertools.count()
CAPTIONS = (
    "image\tcaption\n"
    "p000.jpg\ta red striped card\n"
    "p000.jpg\tred stripes on a table\n"
    "p001.jpg\ta green striped card\n"
    "p002.jpg\ta blue striped card\n"
    "p005.jpg\ta purple card\n"
)


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        import pgserver
        import psycopg
    except ImportError as exc:
        pytest.skip(f"no PostgreSQL for these tests: pgserver/psycopg not installed ({exc})")
    folder = (tmp_path_factory.mktemp("postgres") / "data").resolve()
    server: Any = None
    failure: Exception | None = None
    for _ in range(3):
        try:
            server = pgserver.get_server(folder, cleanup_mode="stop")
            break
        except Exception as exc:
            # pgserver gives `pg_ctl start` 10 s, which a loaded machine can take: the server
            # may be up a moment later (a new handle finds it), so only three failures count
            failure = exc
            pgserver.PostgresServer._instances.pop(folder, None)
            time.sleep(3)
    if server is None:  # the bundled server does not run on this platform
        pytest.skip(f"cannot start the bundled PostgreSQL server here: {failure}")

    with psycopg.connect(server.get_uri(), autocommit=True) as con:
        # a throw-away server: no waits for the disk (a killed client loses nothing anyway)
        con.execute("ALTER SYSTEM SET fsync = off")
        con.execute("ALTER SYSTEM SET synchronous_commit = off")
        con.execute("SELECT pg_reload_conf()")
    yield server
    server.cleanup()


@pytest.fixture
def db(pg_server: Any) -> str:
    """The URL of a new, empty database."""
    import psycopg

    name = f"t{os.getpid()}_{next(_names)}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return str(pg_server.get_uri(name))


@pytest.fixture(scope="module")
def tiny() -> Encoder:
    return load_model(str(tiny_model_dir(0)))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pg-photos")
    make_photos(base / "photos", 12)
    (base / "captions.tsv").write_text(CAPTIONS)
    return base


def _pair(photos: Path, tiny: Encoder, db: str, tmp_path: Path) -> tuple[Collection, Collection]:
    """The same photos and captions indexed into a folder and into the database, with the
    automatic tags of the (tiny) model's classifier."""
    embedded = Collection.open(tmp_path / "col", model=tiny, create=True)
    in_pg = Collection.open(model=tiny, create=True, db=db)
    for col in (embedded, in_pg):
        report = col.index(
            photos / "photos", captions=photos / "captions.tsv", batch_size=5, show_progress=False
        )
        assert report.added == 12 and report.captions == 5 and not report.failed
        assert report.described > 0
    return embedded, in_pg


def _descriptions(col: Collection) -> list[tuple[Any, ...]]:
    rows = col.catalog.descriptions_of([int(i) for i in col.catalog.ids("images")])
    return sorted(
        (r["id"], r["image_id"], r["kind"], r["text"], r["source"], r["by_person"], r["lang"],
         r["confidence"])
        for found in rows.values() for r in found
    )  # fmt: skip


def _query_vector(col: Collection, text: str) -> np.ndarray:
    return np.asarray(col.model.encode_texts([text])[0], np.float32)


def _hybrid(col: Collection, text: str, weights: HybridWeights, k: int = 10) -> list[Any]:
    vector = _query_vector(col, text)
    return hybrid_hits(col.catalog, col.stores, col.dim, vector, text, k, weights=weights)


def _same_hits(a: list[Any], b: list[Any]) -> None:
    assert [(h.id, h.kind, h.text_id, h.path) for h in a] == [
        (h.id, h.kind, h.text_id, h.path) for h in b
    ]
    assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-4)


#: hybrid search by the text-text cosine alone: PostgreSQL's must equal SQLite's exactly
#: (the lexical scores differ by design: ts_rank_cd is not BM25)
DENSE_ONLY = HybridWeights(dense_person=2.0, dense_tag=1.0, threshold=0.5)
LEXICAL_ONLY = HybridWeights(lexical_person=1.0, lexical_tag=0.5)


def _four_ways(embedded: Collection, in_pg: Collection, photos: Path) -> None:
    """Every search whose answer must not depend on the store: embedding-only t2i, t2t and
    i2t (tags hidden from both), i2i, by id, mixed queries and dense-only hybrid t2i."""
    image = photos / "photos" / "d1" / "p004.jpg"
    for text in ("a red striped card", "green"):
        for mode, plain in (("t2i", {"descriptions": False}), ("t2t", {})):
            _same_hits(
                embedded.search(text, k=10, mode=mode, **plain),
                in_pg.search(text, k=10, mode=mode, **plain),
            )
        _same_hits(_hybrid(embedded, text, DENSE_ONLY), _hybrid(in_pg, text, DENSE_ONLY))
    for mode in ("i2i", "i2t"):
        found = embedded.search(image=image, k=10, mode=mode)
        assert found
        _same_hits(found, in_pg.search(image=image, k=10, mode=mode))
    assert not [h for h in in_pg.search(image=image, k=50, mode="i2t") if h.text_kind == "tag"]
    # ids agree (the same photos were indexed in the same order), so by-id searches compare
    _same_hits(embedded.search_by_id(3, k=10), in_pg.search_by_id(3, k=10))
    _same_hits(embedded.search_by_id(3, mode="i2t"), in_pg.search_by_id(3, mode="i2t"))
    mixed = [(1.0, "a red card"), (1.0, str(image)), (-0.5, "green")]
    _same_hits(
        embedded.search(query=mixed, k=10, descriptions=False),
        in_pg.search(query=mixed, k=10, descriptions=False),
    )


def test_same_results_as_the_embedded_store(
    photos: Path, tiny: Encoder, db: str, tmp_path: Path
) -> None:
    embedded, in_pg = _pair(photos, tiny, db, tmp_path)
    assert len(embedded.search("card", k=10)) == 10  # the comparison covers a full top 10
    _four_ways(embedded, in_pg, photos)
    assert in_pg.get(5).captions == embedded.get(5).captions == ["a green striped card"]
    # the same tags (kind, source, language, confidence) and captions, under the same ids
    assert _descriptions(in_pg) == _descriptions(embedded)
    assert in_pg.catalog.count_texts() == embedded.catalog.count_texts()
    assert in_pg.catalog.count_generated() == embedded.catalog.count_generated() > 0
    stats = in_pg.stats()
    assert (stats["images"], stats["captions"], stats["store"]) == (12, 5, "pgvector-hnsw")
    assert stats["stores"]["images"]["rows"] == 12 and stats["disk_bytes"] > 0
    in_pg.close()
    # another process (here: another connection) opens it by its URL alone
    with Collection.open(db=db) as again:
        assert again.model_name == embedded.model_name and len(again) == 12
        _four_ways(embedded, again, photos)


def test_hnsw_path_gives_the_same_top_10(
    photos: Path, tiny: Encoder, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above EXACT_ROWS the HNSW index answers: forced here on the small set, where its
    candidate list (ef_search 100) holds every row, so it must equal the exact answer."""
    embedded, in_pg = _pair(photos, tiny, db, tmp_path)
    monkeypatch.setattr(pg_store, "EXACT_ROWS", 0)
    _four_ways(embedded, in_pg, photos)
    catalog = in_pg.catalog
    assert isinstance(catalog, PgCatalog)
    with catalog.transaction():
        catalog._exec("SET LOCAL enable_seqscan = off")  # a 12-row table is scanned otherwise
        plan = catalog._exec(
            "EXPLAIN SELECT id, embedding <#> %s::vector AS distance FROM images "
            "WHERE embedding IS NOT NULL ORDER BY distance LIMIT 10",
            ("[" + ",".join(["0.1"] * 32) + "]",),
        ).fetchall()
    assert "images_embedding_hnsw" in " ".join(r[0] for r in plan)


def test_changes_remove_annotate_and_reindex(
    photos: Path, tiny: Encoder, db: str, tmp_path: Path
) -> None:
    embedded, in_pg = _pair(photos, tiny, db, tmp_path)
    probe = in_pg.catalog.version_probe()  # type: ignore[attr-defined]  # PgCatalog's
    before = probe()
    for col in (embedded, in_pg):
        col.annotate(7, "a small orange card")
        assert col.remove_ids([2, 9]) == 2
    assert probe() > before  # a web server's page cache sees the commits
    probe.close()
    _four_ways(embedded, in_pg, photos)
    _annotations_found_by_hybrid_search(embedded, in_pg, photos)
    report = in_pg.index(photos / "photos", show_progress=False)
    assert (report.added, report.unchanged) == (2, 10)  # the removed files came back
    assert len(in_pg) == 12


#: query characters FTS5 or tsquery would parse as operators: searched for or dropped
ODD_QUERIES = ['"', "*", "NEAR", "-", ":", "&", "|", "!", "(", 'a"b* NEAR(c -d) e:f & g | !h (']


def _annotations_found_by_hybrid_search(
    embedded: Collection, in_pg: Collection, photos: Path
) -> None:
    """A person's text lifts its photo on PostgreSQL as on SQLite, by meaning and by words
    (English and Chinese); odd query characters never raise; removing it drops it."""
    for col in (embedded, in_pg):
        col.annotate(6, "Max at grandma's farm")
        col.annotate(4, "一只金毛寻回犬在草地上")
    for weights in (HybridWeights.packaged(), LEXICAL_ONLY):
        for text, image_id in (("Max at the farm", 6), ("金毛寻回犬", 4)):
            assert [h.id for h in _hybrid(in_pg, text, weights, k=1)] == [image_id]
            assert [h.id for h in _hybrid(embedded, text, weights, k=1)] == [image_id]
    assert in_pg.search("Max at the farm", k=1)[0].id == 6  # the default search
    words = {
        m["how"]: m["words"] for m in _hybrid(in_pg, "Max at the farm", LEXICAL_ONLY)[0].matched
    }
    assert words == {"words": ["max", "farm"]}
    lexical = [(m.text_id, m.words) for m in in_pg.catalog.lexical_matches("金毛寻回犬", 5)]
    assert lexical == [
        (m.text_id, m.words) for m in embedded.catalog.lexical_matches("金毛寻回犬", 5)
    ]
    assert lexical[0][1] == ["金毛寻回犬"]
    _same_hits(
        _hybrid(embedded, "Max at the farm", DENSE_ONLY),
        _hybrid(in_pg, "Max at the farm", DENSE_ONLY),
    )
    for text in ODD_QUERIES:
        assert in_pg.catalog.lexical_matches(text, 10) == []
        in_pg.search(text, k=3)  # no psycopg error
    assert in_pg.search("NEAR farm", k=1)[0].id == 6
    for col in (embedded, in_pg):
        assert col.remove_annotations(6, text="Max at grandma's farm") == 1
        assert col.catalog.descriptions_of([6], "annotation") == {}
    assert in_pg.catalog.lexical_matches("Max at the farm", 5) == []
    assert _descriptions(in_pg) == _descriptions(embedded)


def test_two_index_processes_at_once_both_land(
    tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_photos(tmp_path / "a", 10)
    make_photos(tmp_path / "b", 7)
    model = str(tiny_model_dir(0))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CROSSMODAL_DB_WRITER_WAIT": "120"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "crossmodal", "index", str(tmp_path / folder),
             "--db", db, "--model", model, "--batch-size", "3", "--quiet"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for folder in ("a", "b")
    ]  # fmt: skip
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert "added" in out
    with Collection.open(db=db) as col:
        assert len(col) == 17
        assert sorted(col.stats()["roots"]) == [str(tmp_path / "a"), str(tmp_path / "b")]
        _assert_consistent(col)
        roots = {h.path.split("/")[-3] for h in col.search("a card", k=17)}
        assert roots == {"a", "b"}


def _assert_consistent(col: Collection) -> None:
    """Every image once, each with its embedding; ids unique; the writer lock is free."""
    catalog = col.catalog
    assert isinstance(catalog, PgCatalog)
    rows = catalog._exec("SELECT root_id, relpath, embedding IS NULL FROM images").fetchall()
    assert len({(r[0], bytes(r[1])) for r in rows}) == len(rows)
    assert not any(r[2] for r in rows)
    assert len(col.search("card", k=100)) == len(rows)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_minus_nine_then_resume(tmp_path: Path, db: str) -> None:
    n = 40
    make_photos(tmp_path / "photos", n)
    model = str(tiny_model_dir(0))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    catalog = PgCatalog(db)  # (sets the schema up; the run finds it there)
    run = subprocess.Popen(
        [sys.executable, "-m", "crossmodal", "index", str(tmp_path / "photos"), "--db", db,
         "--model", model, "--batch-size", "2", "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while run.poll() is None and time.monotonic() < deadline and not catalog.count("images"):
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)
    assert 0 < catalog.count("images") < n, "killed too late"
    catalog.close()
    # the dead writer's advisory lock went with its connection: this run does not wait
    os.environ["CROSSMODAL_DB_WRITER_WAIT"] = "10"
    try:
        with Collection.open(db=db) as col:
            report = col.index(tmp_path / "photos", batch_size=4, show_progress=False)
            assert report.added + report.unchanged == n and not report.failed
            assert len(col) == n
            _assert_consistent(col)
    finally:
        del os.environ["CROSSMODAL_DB_WRITER_WAIT"]


def test_cli_index_search_stats(photos: Path, db: str) -> None:
    model = str(tiny_model_dir(0))
    args = ["--db", db]
    made = runner.invoke(
        app,
        ["index", str(photos / "photos"), *args, "--model", model, "-q",
         "--captions", str(photos / "captions.tsv")],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "12 added" in made.stdout
    found = runner.invoke(app, ["search", "a red striped card", "--mode", "t2t", *args])
    assert found.exit_code == 0, found.output
    assert found.stdout.splitlines()[0].split("\t")[1] in ("a red striped card",)
    # a person's text, by the photo's path, found by plain search (hybrid on PostgreSQL)
    farm = photos / "photos" / "d2" / "p008.jpg"
    noted = runner.invoke(app, ["annotate", str(farm), "Max at grandma's farm", *args])
    assert noted.exit_code == 0 and "annotated image" in noted.stdout, noted.output
    found = runner.invoke(app, ["search", "Max at the farm", "-k", "1", *args])
    assert found.exit_code == 0 and found.stdout.split("\t")[1].strip() == str(farm)
    stats = runner.invoke(app, ["stats", *args])
    assert stats.exit_code == 0 and "images: 12" in stats.stdout
    assert "images index: pgvector-hnsw, 12 rows" in stats.stdout
    assert "exact scan" in stats.stdout  # 12 rows: below EXACT_ROWS


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["stats", "--db", "sqlite:///x"], "--db takes a PostgreSQL URL"),
        (["stats", "--db", "postgresql://nobody@127.0.0.1:1/none"], "cannot connect"),
        (["stats", "--db", "DB", "--collection", "x"], "not both"),
        (["stats", "--db", "DB"], "no collection in database"),
        (["index", "p", "--db", "DB", "--store", "flat"], "--store flat is for a collection"),
    ],
)
def test_cli_refuses_in_one_line(argv: list[str], words: str, db: str, tmp_path: Path) -> None:
    make_photos(tmp_path / "p", 1)
    argv = [db if a == "DB" else str(tmp_path / "p") if a == "p" else a for a in argv]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_catalogue_feature_not_in_postgresql_refuses(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A method added to the SQLite catalogue (descriptions, EXIF, …) but not yet here."""
    monkeypatch.setattr(Catalog, "describe_images", lambda self, ids: {}, raising=False)
    catalog = PgCatalog(db)
    with pytest.raises(CollectionError, match=r"describe images is not available .* PostgreSQL"):
        catalog.describe_images([1])
    with pytest.raises(AttributeError):
        _ = catalog.no_such_thing


def test_schema_versions(db: str) -> None:
    catalog = PgCatalog(db)
    assert catalog.schema_version() == PG_SCHEMA_VERSION and catalog.count("images") == 0
    catalog.set_meta("schema_version", "99")
    catalog.close()
    with pytest.raises(CollectionError, match="newer crossmodal"):
        PgCatalog(db)


def test_web_app_over_the_database(photos: Path, tiny: Encoder, db: str, tmp_path: Path) -> None:
    """The web app serves it; its page cache sees a commit made through another connection
    (another server or an index run elsewhere), as it does SQLite's data_version."""
    from fastapi.testclient import TestClient

    from crossmodal.web import WebSettings
    from crossmodal.web.server import build_app

    embedded, in_pg = _pair(photos, tiny, db, tmp_path)
    in_pg.close()
    app = build_app(None, None, WebSettings(), db=db)  # what `crossmodal serve --db` runs
    with TestClient(app, base_url="http://127.0.0.1") as client:
        stats = client.get("/api/stats").json()
        assert stats["images"] == 12 and stats["store"] == "pgvector-hnsw"
        plain = {"q": "a red card", "k": 5, "descriptions": "false"}  # the embedding alone
        first = client.get("/api/search", params=plain).json()
        expected = embedded.search("a red card", k=5, descriptions=False)
        assert [r["id"] for r in first["results"]] == [h.id for h in expected]
        with Collection.open(db=db) as other:  # another writer, another connection
            other.remove_ids([first["results"][0]["id"]])
        again = client.get("/api/search", params=plain).json()
        assert again["results"][0]["id"] == first["results"][1]["id"]


#: every filter, alone and combined (test_filters.py checks what each lets through)
FILTERS = [
    {"after": "2024"}, {"before": "2023-12-31"}, {"after": "2024-01-01", "before": "2024-05"},
    {"camera": "pixel"}, {"camera": "nikon z"}, {"gps": True}, {"gps": False},
    {"within": "35,-10,60,30"}, {"folder": "b"}, {"folder": "b/c"}, {"types": "webp,png"},
    {"min_size": "5000"}, {"max_size": "5000"}, {"camera": "google", "after": "2024"},
    {"camera": "sony"},
]  # fmt: skip


def _back_to_v1(catalog: PgCatalog) -> None:
    """The database as crossmodal wrote it at schema 1: no fact columns, texts of two
    kinds without description columns or full-text index."""
    with catalog.transaction():
        for sql in (
            "DELETE FROM texts WHERE kind NOT IN ('caption', 'annotation')",
            "ALTER TABLE texts DROP COLUMN words, DROP COLUMN terms, DROP COLUMN source, "
            "DROP COLUMN by_person, DROP COLUMN lang, DROP COLUMN confidence",
            "DROP INDEX texts_kind",
            "ALTER TABLE texts DROP CONSTRAINT texts_kind_check",
            "ALTER TABLE texts ADD CONSTRAINT texts_kind_check "
            "CHECK (kind IN ('caption', 'annotation'))",
            "DROP INDEX images_taken",
            "ALTER TABLE images " + ", ".join(f"DROP COLUMN {c}" for c in FACT_COLUMNS),
            "UPDATE meta SET value='1' WHERE key='schema_version'",
        ):
            catalog._exec(sql)


def test_v1_database_migrates_in_place_then_filters_match_the_embedded_store(
    tiny: Encoder, db: str, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    write_library(photos)
    captions = tmp_path / "c.tsv"
    captions.write_text(
        "image\tcaption\n" + "".join(f"{Path(s.relpath).name}\tphoto {s.relpath}\n" for s in SHOTS)
    )
    embedded = Collection.open(tmp_path / "col", model=tiny, create=True)
    in_pg = Collection.open(model=tiny, create=True, db=db)
    for col in (embedded, in_pg):
        col.index(photos, captions=captions, show_progress=False, describe=False)
        col.annotate(2, "Max at grandma's farm")
    texts = _descriptions(in_pg)
    in_pg.close()
    _back_to_v1(PgCatalog(db))

    in_pg = Collection.open(db=db, model=tiny)  # migrated on open: nothing lost
    assert in_pg.catalog.schema_version() == PG_SCHEMA_VERSION
    # ids, kinds and texts kept; v1 kept no source, so a caption's is "captions" (its file's
    # name is not known any more) and an annotation's "user"
    migrated = [(*t[:4], "captions" if t[2] == "caption" else t[4], *t[5:]) for t in texts]
    assert _descriptions(in_pg) == migrated and {t[4] for t in migrated} == {"captions", "user"}
    assert [m.image_id for m in in_pg.catalog.lexical_matches("Max at the farm", 3)] == [2]
    assert len(rows_without_facts(in_pg.catalog)) == len(SHOTS)
    report = in_pg.index(photos, show_progress=False)  # the files' headers fill the facts
    assert report.unchanged == len(SHOTS) and not rows_without_facts(in_pg.catalog)
    ids = [int(i) for i in in_pg.catalog.ids("images")]
    assert facts_of(in_pg.catalog, ids) == facts_of(embedded.catalog, ids)

    image = photos / "b" / "c" / "tokyo.webp"
    for kwargs in FILTERS:
        flt = parse_filter(**kwargs)
        for target in ("images", "texts"):
            allowed = allowed_ids(in_pg.catalog, flt, target)
            assert list(allowed) == list(allowed_ids(embedded.catalog, flt, target)), kwargs
        ways: list[dict[str, Any]] = [{"text": "a photo", "mode": "t2i"},
            {"text": "photo", "mode": "t2t"}, {"image": image, "mode": "i2i"},
            {"image": image, "mode": "i2t"}]  # fmt: skip
        for query in ways:
            _same_hits(
                embedded.search(**query, k=10, filter=flt), in_pg.search(**query, k=10, filter=flt)
            )
        _same_hits(
            embedded.search("a photo", k=2, offset=2, filter=flt),
            in_pg.search("a photo", k=2, offset=2, filter=flt),
        )
    assert {h.relpath for h in in_pg.search("a photo", filter=parse_filter(camera="pixel"))} == {
        "a/paris.jpg", "b/nyc.png"
    }  # fmt: skip
