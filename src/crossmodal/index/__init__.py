"""Storage of a collection: the SQLite catalogue (source of truth) and vector stores (caches).

See `catalog.py` for the schema and the crash-safety scheme, `store.py` for the `VectorStore`
interface and the exact FAISS store, `ann.py` for the approximate stores (HNSW, IVF-PQ) and
`--store auto`'s choice, `pipeline.py` for the overlapped decode/embed loop.
"""

from crossmodal.index.ann import ApproximateStore, choose_kind
from crossmodal.index.catalog import SCHEMA_VERSION, Catalog, ImageRow, TextRow
from crossmodal.index.store import FlatIPStore, VectorStore

__all__ = [
    "SCHEMA_VERSION",
    "ApproximateStore",
    "Catalog",
    "FlatIPStore",
    "ImageRow",
    "TextRow",
    "VectorStore",
    "choose_kind",
]
