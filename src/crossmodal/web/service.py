"""The functions the web routes call: one per endpoint, over the Python API.

Nothing here ranks or filters: searching is `Collection.embed_query` + `Collection.search_vector`
(the two halves of `Collection.search`, split so that query vectors can be cached), answering is
`crossmodal.dogs.answer`. What this layer adds is what only a server needs: paging, a cache of
query vectors and thumbnails, upload decoding, and turning "not found" into a status code.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
from fastapi.concurrency import run_in_threadpool
from PIL import Image

from crossmodal.batching import MicroBatcher
from crossmodal.collection import Collection, SearchHit
from crossmodal.data import load_image
from crossmodal.errors import CollectionError, ImageLoadError
from crossmodal.fsnames import shown
from crossmodal.index.filters import allowed_ids
from crossmodal.index.query import LRU, direction
from crossmodal.search_filter import SearchFilter
from crossmodal.web.annotating import AnnotationMethods
from crossmodal.web.errors import Rejected

if TYPE_CHECKING:
    from crossmodal.web.encoders import ChildEncoders
from crossmodal.web.settings import WebSettings
from crossmodal.web.threads import one_blas_thread_per_query, one_openmp_thread
from crossmodal.web.uploads import DecodeSlots, decode_image, size_text

__all__ = [
    "LRU",
    "MAX_OFFSET",
    "Page",
    "TextQuery",
    "Thumbnail",
    "WebService",
    "dogs_available",
    "hit_to_dict",
]

TextMode = Literal["t2i", "t2t"]
ImageMode = Literal["i2i", "i2t"]

#: Deepest result a page may start at: paging is for browsing, and a deeper page costs a
#: larger FAISS top-k for every page before it.
MAX_OFFSET = 1000


class CatalogVersion:
    """Changes whenever anyone commits to the collection's catalogue: this app's writer, an
    `crossmodal index` run in another process, anything. SQLite's `PRAGMA data_version` on a
    connection of our own, which never writes, tells exactly that, for ~10 us."""

    def __init__(self, catalog_file: Path) -> None:
        self._con = sqlite3.connect(
            f"file:{catalog_file}?mode=ro", uri=True, check_same_thread=False
        )
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return int(self._con.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()


class TextQuery(NamedTuple):
    """One text search of the web API (hashable: equal ones in a batch are searched once)."""

    text: str
    mode: str
    k: int
    offset: int
    filter: SearchFilter | None = None  # frozen: hashable, part of the batch's grouping
    #: t2i: score the images' descriptions too (index/hybrid.py); False: the embedding alone
    descriptions: bool = True


@dataclass
class Page:
    results: list[dict[str, Any]]
    total: int
    offset: int
    next_offset: int | None
    mode: str

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "results": self.results,
            "total": self.total,
            "offset": self.offset,
            "next_offset": self.next_offset,
        }


@dataclass
class Thumbnail:
    etag: str
    data: bytes | None  # None: the client's copy (If-None-Match) is current


@functools.cache
def dogs_available() -> bool:
    """Whether the dog edition is installed: its question answering imports (0.2 s, once)."""
    try:
        importlib.import_module("crossmodal.dogs.qa")
    except ImportError:
        return False
    return True


def hit_to_dict(hit: SearchHit) -> dict[str, Any]:
    out = hit.to_dict()
    # the path inside the indexed folder: enough to tell photos apart, without showing a
    # visitor the server's folders (`?absolute=true` with the token gives the full one)
    out["path"] = shown(hit.relpath) if hit.relpath is not None else out["path"]
    out.pop("relpath", None)
    out["thumbnail"] = f"/api/thumbnail/{hit.id}"
    return out


class WebService(AnnotationMethods):
    """One collection served over HTTP. Thread-safe: routes run on a thread pool."""

    def __init__(self, collection: Collection, settings: WebSettings) -> None:
        self.collection = collection
        self.settings = settings
        # query vectors: the collection's encoder and its cache, sized for a server
        self.queries = collection.queries
        self.queries.cache.size = settings.query_cache_size
        self._thumbs: LRU[tuple[int, str, int], bytes] = LRU(settings.thumbnail_cache_size)
        # whole answers of text searches, as JSON, valid while the catalogue is unchanged
        self._pages: LRU[
            tuple[str, str, int, int, SearchFilter | None, bool], tuple[int, bytes]
        ] = LRU(settings.page_cache_size)
        # a collection in PostgreSQL counts its commits itself (index/pg_catalog.py)
        probe = getattr(collection.catalog, "version_probe", None)
        self._version = probe() if probe is not None else CatalogVersion(collection.catalog.path)
        self.decode_slots = DecodeSlots(
            settings.decode_slots, settings.decode_queue, settings.decode_wait_s
        )
        self._dogs = dogs_available()
        # paid providers (chat model, generation, web image search): keys from the environment
        # or providers.toml, read once; the chat's conversations live in memory
        from crossmodal.providers import load_config
        from crossmodal.web.generation import GenerationDesk

        self.providers = load_config()
        self.desk = GenerationDesk(self.providers)
        self._sessions: Any = None
        self._writer: Collection | None = None
        self._writing = threading.Lock()
        # Text searches of concurrent requests run together: their texts through the text
        # tower in one forward (32 short texts cost far less than 32 forwards over one),
        # then one index search and one catalogue lookup for them all (docs/benchmarks.md,
        # web section). One worker per core, each running its batch on one torch thread:
        # side by side they use the cores without the barrier waits of intra-op threads.
        self._children: ChildEncoders | None = None  # started by warm_up, when asked for
        self._batcher: MicroBatcher[TextQuery, Page] | None = (
            MicroBatcher(
                self._search_texts,
                settings.max_batch,
                settings.encode_threads,
                name="search",
                on_start=one_openmp_thread,
            )
            if settings.max_batch > 1
            else None
        )

    # ---- start-up ---------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the model (raising a model mismatch now, not on the first query), start the
        text-encoding child processes if the settings ask for them, and run one query, so
        that lazy initialisation is not paid by the first visitor."""
        model = self.collection.model
        one_blas_thread_per_query(model)
        # (with one search thread there is no GIL to share: children would only cost memory)
        if (
            self.settings.child_encoders
            and self.settings.encode_threads > 1
            and self._batcher is not None
            and self._children is None
        ):
            from crossmodal.web.encoders import ChildEncoders

            children = ChildEncoders(
                self.collection.model_name, model.fingerprint, self.settings.encode_threads
            )
            if children.start():
                self._children = children
                self.queries.text_backend = self._child_vectors
        if len(self.collection):
            self.search_text("a photo", "t2i", 1, 0)

    # ---- read ---------------------------------------------------------------------------------
    def capabilities(self) -> dict[str, Any]:
        return {
            "dogs": self._dogs,
            "write": self.settings.token is not None,
            "modes": ["t2i", "t2t", "i2i", "i2t"],
            "max_upload_bytes": self.settings.max_upload_bytes,
            "max_pixels": self.settings.max_pixels,
            "providers": self.providers.summary(),
        }

    def stats(self, absolute: bool = False) -> dict[str, Any]:
        """What the collection holds; its folders by name only unless `absolute` (a client
        that showed the token: paths tell a visitor more than a search needs)."""
        out = self.collection.stats()
        if absolute:
            out["path"] = shown(out["path"])
            out["roots"] = [shown(r) for r in out["roots"]]
        else:
            out["path"] = shown(Path(out["path"]).name)
            out["roots"] = [shown(Path(r).name) for r in out["roots"]]
        out["texts"] = out.get("captions", 0) + out.get("annotations", 0)
        out["capabilities"] = self.capabilities()
        cache = self.queries.cache
        out["query_cache"] = {"hits": cache.hits, "misses": cache.misses}
        out["page_cache"] = {"hits": self._pages.hits, "misses": self._pages.misses}
        if self._batcher is not None:
            out["query_batches"] = {
                "batches": self._batcher.batches,
                "texts": self._batcher.items,
                "largest": self._batcher.largest,
            }
        return out

    def search_text(
        self,
        q: str,
        mode: TextMode,
        k: int,
        offset: int,
        flt: SearchFilter | None = None,
        descriptions: bool = True,
    ) -> Page:
        query = TextQuery(_normalise_query(q), mode, k, offset, flt, descriptions)
        if self._batcher is not None:
            return self._batcher(query)
        result = self._search_texts([query])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def search_text_json(
        self,
        q: str,
        mode: TextMode,
        k: int,
        offset: int,
        flt: SearchFilter | None = None,
        descriptions: bool = True,
    ) -> bytes:
        """`search_text` as JSON bytes. A query asked before, of a catalogue nobody has changed
        since, is answered from memory on the event loop; anything else joins the next batch
        of searches (waiting without holding a thread)."""
        text = _normalise_query(q)
        key = (text, mode, k, offset, flt, descriptions)
        version = self._version()  # read first: a commit during the search makes it stale
        cached = self._pages.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        if self._batcher is not None:
            page = await self._batcher.run(TextQuery(text, mode, k, offset, flt, descriptions))
        else:
            page = await run_in_threadpool(
                self.search_text, text, mode, k, offset, flt, descriptions
            )
        data = page.to_json()
        self._pages.put(key, (version, data))
        return data

    def search_image(
        self, data: bytes, mode: ImageMode, k: int, offset: int, flt: SearchFilter | None = None
    ) -> Page:
        digest = hashlib.sha1(data).hexdigest()
        # "load more" re-sends the same picture: its vector is cached by content, and by this
        # server's upload limits (the cache is the collection's: another app on it may allow
        # more, and a cached vector must not let a picture past these limits)
        limits = f"{self.settings.max_upload_bytes}/{self.settings.max_pixels}"
        key = f"{digest}/{limits}"
        vector = self.queries.image_vector(key, lambda: self.decode_upload(data))
        return self._page(vector, mode, k, offset, flt)

    def search_by_id(
        self, image_id: int, mode: ImageMode, k: int, offset: int, flt: SearchFilter | None = None
    ) -> Page:
        self._record(image_id)
        one_openmp_thread()
        hits = self.collection.search_by_id(image_id, k=k, mode=mode, offset=offset, filter=flt)
        if mode == "i2t":
            total = self._count("texts", flt)
        else:  # the image itself is never a result
            total = max(0, self._count("images", flt) - self._passes(image_id, flt))
        return self._shape(hits, mode, k, offset, total)

    def thumbnail(self, image_id: int, size: int, if_none_match: str | None) -> Thumbnail:
        record = self._record(image_id)
        etag = f'"{record.hash[:16]}-{size}"'
        if if_none_match and etag in {t.strip() for t in if_none_match.split(",")}:
            return Thumbnail(etag, None)
        key = (image_id, record.hash, size)
        data = self._thumbs.get(key)
        if data is None:
            data = _make_thumbnail(Path(record.path), size)
            self._thumbs.put(key, data)
        return Thumbnail(etag, data)

    def ask(self, question: str, lang: str | None, image: bytes | None) -> dict[str, Any]:
        if not self._dogs:
            raise Rejected(404, "the dog edition is not installed on this server")
        from crossmodal.dogs import answer

        picture = self.decode_upload(image) if image is not None else None
        return answer(question, image=picture, lang=lang).to_dict()

    def chat(
        self, message: str, session_id: str | None, lang: str | None, image: bytes | None
    ) -> dict[str, Any]:
        """One turn of a grounded conversation; a video request starts a background task."""
        if not self._dogs:
            raise Rejected(404, "the dog edition is not installed on this server")
        from crossmodal.dogs.chat import (
            _THIS_DOG,
            SessionStore,
            _compact,
            chat_turn,
            generation_request,
        )
        from crossmodal.web.generation import media_card

        if image is not None:
            self.decode_upload(image)  # size and pixel limits, a clear 413 / 422
        if self._sessions is None:
            self._sessions = SessionStore()
        session = self._sessions.get(session_id)
        if generation_request(message) == "video" and self.providers.summary()["video"]:
            if image is not None:
                session.image = _compact(image)
            source = image or (session.image if _THIS_DOG.search(message) else None)
            task = self.desk.start_video(message, source)
            zh = any("\u4e00" <= ch <= "\u9fff" for ch in message)
            text = "正在生成视频…" if zh else "Generating the video…"
            session.add("user", message)
            session.add("assistant", text)
            return {
                "text": text,
                "lang": "zh" if zh else "en",
                "kind": "generating",
                "task": task,
                "session_id": session.id,
            }
        reply = chat_turn(
            session, message, image, lang=lang, config=self.providers, collection=self.collection
        )
        out = reply.to_dict()
        out.pop("notice", None)
        if reply.media:
            out["card"] = media_card(reply.media)
            out.pop("media")
        return out

    # ---- write --------------------------------------------------------------------------------
    def index_folder(
        self, folder: str, captions: str | None, tags: bool = True, auto_captions: bool = False
    ) -> dict[str, Any]:
        """`crossmodal index FOLDER [--captions F] [--no-tags] [--auto-captions]`."""
        from crossmodal.models.tagger import TagSettings

        if not folder.strip():
            raise Rejected(422, "give the folder to index (a path on the server)")
        if captions is not None and not Path(captions).expanduser().is_file():
            raise Rejected(400, f"no captions file at {captions}")
        describe = TagSettings.for_index(tags, auto_captions)
        with self._write() as writer:
            report = writer.index(folder, captions=captions, show_progress=False, describe=describe)
        out = report.to_dict()
        out["root"] = shown(report.root)
        out["failed"] = [f.message for f in report.failed]
        return out

    def delete(self, image_id: int) -> dict[str, Any]:
        """Forget the row with this id, and only it (never by its path, which a link shares
        with its target's once resolved); 404 when there is none."""
        self._record(image_id)
        with self._write() as writer:
            removed = writer.remove_ids([image_id])
        if not removed:  # deleted by someone else since
            raise Rejected(404, f"no image with id {image_id} in this collection")
        return {"id": image_id, "removed": removed}

    def close(self) -> None:
        self.desk.close()
        if self._batcher is not None:
            self._batcher.close()
        if self._children is not None:
            self.queries.text_backend = None
            self._children.close()
        if self._writer is not None:
            self._writer.close()
        self._version.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Collection]:
        """The handle that writes, one request at a time (a second one gets 409, not a wait).

        It is a second `Collection` on the same folder, sharing the loaded model: a
        `Collection` holds its lock for the whole of an index run, and searches through
        `self.collection` must not wait minutes for one. They see each committed batch, since
        its vector stores follow the catalogue's generation.
        """
        if not self._writing.acquire(blocking=False):
            raise Rejected(409, "the collection is being changed by another request: try later")
        try:
            if self._writer is None:
                self._writer = Collection.open(self.collection.path, model=self.collection.model)
            yield self._writer
        finally:
            self._writing.release()

    # ---- helpers ------------------------------------------------------------------------------
    def _search_texts(self, queries: list[TextQuery]) -> list[Page | BaseException]:
        """The pages of many text searches: texts not in the vector cache through the text
        tower in one forward, then per target one index search and one catalogue lookup.
        A query that fails gets its exception in its place; a failing forward raises (the
        batcher then retries its queries one by one, so only the culprit fails)."""
        one_openmp_thread()
        texts = list(dict.fromkeys(q.text for q in queries))
        vectors = dict(zip(texts, self.queries.text_vectors(texts), strict=True))
        results: dict[int, Page | BaseException] = {}
        groups: dict[tuple[str, int, int, SearchFilter | None, bool], list[int]] = {}
        for n, q in enumerate(queries):
            groups.setdefault((q.mode, q.k, q.offset, q.filter, q.descriptions), []).append(n)
        for (mode, k, offset, flt, descriptions), group in groups.items():
            way = direction(mode)
            try:
                matrix = np.stack([vectors[queries[n].text] for n in group])
                found = self.collection.search_vectors(
                    matrix,
                    k,
                    way.target,
                    way.cross_modal,
                    offset=offset,
                    filter=flt,
                    texts=[queries[n].text for n in group],
                    descriptions=None if descriptions else False,
                )
                total = self._count(way.target, flt)
            except Exception as exc:  # the index or catalogue failed: every query of it
                for n in group:
                    results[n] = exc
                continue
            for n, hits in zip(group, found, strict=True):
                results[n] = self._shape(hits, mode, k, offset, total)
        return [results[n] for n in range(len(queries))]

    def _embed_text(self, text: str) -> np.ndarray:
        """The query vector of a text (cached), as `Collection.embed_query(text=...)` gives it."""
        return self.queries.text_vectors([text])[0]

    def _encode_texts(self, texts: list[str]) -> list[np.ndarray]:
        """What `Collection.embed_query(text=t)` gives for each text, for many texts at once
        (not from the cache): in a child process when there are some."""
        return self.queries.encode_texts(texts)

    def _child_vectors(self, texts: list[str]) -> np.ndarray | None:
        """The text tower in the child processes (`crossmodal.web.encoders`); None when they
        are gone (from then on the model in this process encodes)."""
        children = self._children
        if children is None or not children.usable:
            return None
        from crossmodal.web.encoders import ChildEncodersFailed

        try:
            return children.encode(texts)
        except ChildEncodersFailed:
            return None

    def decode_upload(self, data: bytes) -> Image.Image:
        if len(data) > self.settings.max_upload_bytes:
            limit = size_text(self.settings.max_upload_bytes)
            raise Rejected(413, f"upload too large: the limit is {limit}")
        draft = self._draft_size()
        with self.decode_slots():
            return decode_image(data, self.settings.max_pixels, draft)

    def absolute_paths(self, page: Page) -> Page:
        """The page with each hit's full path on the server (for a client with the token or
        the local key), and its path inside the indexed folder as `relpath`."""
        rows = self.collection.catalog.get_images([r["id"] for r in page.results])
        roots = self.collection.catalog.roots()
        for result in page.results:
            row = rows.get(result["id"])
            if row is not None:
                result["relpath"] = result["path"]
                result["path"] = shown(str(Path(roots[row["root_id"]]) / row["relpath"]))
        return page

    def _draft_size(self) -> int | None:
        from crossmodal.index.pipeline import _model_input

        return _model_input(self.collection.model)[1]

    def _record(self, image_id: int) -> Any:
        try:
            return self.collection.get(image_id)
        except CollectionError:
            raise Rejected(404, f"no image with id {image_id} in this collection") from None

    def _count(self, table: str, flt: SearchFilter | None = None) -> int:
        """Rows of `table` a search can rank (those passing the filter, when there is one)."""
        if flt is None or flt.empty:
            hidden = self.collection.catalog.count_generated() if table == "texts" else 0
            return self.collection.catalog.count(table) - hidden  # text searches show no tags
        return len(allowed_ids(self.collection.catalog, flt, table))

    def _passes(self, image_id: int, flt: SearchFilter | None) -> int:
        """1 when the image passes the filter (or there is none), else 0."""
        if flt is None or flt.empty:
            return 1
        return int(image_id in set(allowed_ids(self.collection.catalog, flt, "images").tolist()))

    def _page(
        self, vector: np.ndarray, mode: str, k: int, offset: int, flt: SearchFilter | None = None
    ) -> Page:
        way = direction(mode)
        one_openmp_thread()
        hits = self.collection.search_vector(vector, k, way.target, way.cross_modal, offset, flt)
        return self._shape(hits, mode, k, offset, self._count(way.target, flt))

    @staticmethod
    def _shape(page: list[SearchHit], mode: str, k: int, offset: int, total: int) -> Page:
        """A page of results (the `k` hits from `offset` on, or fewer at the end)."""
        more = len(page) >= k and offset + k < total and offset + k <= MAX_OFFSET
        return Page(
            results=[hit_to_dict(h) for h in page],
            total=total,
            offset=offset,
            next_offset=offset + k if more else None,
            mode=mode,
        )


def _normalise_query(q: str) -> str:
    text = " ".join(q.split())
    if not text:
        raise Rejected(422, "empty query: type a few words to search for")
    return text


def _make_thumbnail(path: Path, size: int) -> bytes:
    try:
        # the draft decodes a large JPEG at 1/2-1/8 scale: a thumbnail needs no more pixels
        image = load_image(path, draft_size=size)
    except ImageLoadError as exc:
        raise Rejected(404, f"the image file is missing or unreadable: {exc}") from None
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=82, optimize=True)
    return buf.getvalue()
