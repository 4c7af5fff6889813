"""Storage of a collection: the SQLite catalogue (source of truth) and vector stores (caches).

See `catalog.py` for the schema and the crash-safety scheme, `store.py` for the `VectorStore`
interface and the exact FAISS store, `pipeline.py` for the overlapped decode/embed loop.
"""

from crossmodal.index.catalog import SCHEMA_VERSION, Catalog, ImageRow, TextRow
from crossmodal.index.store import FlatIPStore, VectorStore

__all__ = ["SCHEMA_VERSION", "Catalog", "FlatIPStore", "ImageRow", "TextRow", "VectorStore"]
