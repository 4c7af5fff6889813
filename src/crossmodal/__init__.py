"""crossmodal: offline image<->text retrieval with CLIP-style dual encoders."""

from crossmodal.errors import (
    CollectionError,
    ConfigError,
    CrossmodalError,
    DatasetError,
    ImageLoadError,
    ModelNotAvailable,
)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # lazy: `import crossmodal` stays light (no numpy/faiss/PIL) for the CLI's --help
    if name in ("Collection", "Description", "SearchHit", "IndexReport"):
        from crossmodal import collection

        return getattr(collection, name)
    if name == "SearchFilter":
        from crossmodal.search_filter import SearchFilter

        return SearchFilter
    raise AttributeError(f"module 'crossmodal' has no attribute {name!r}")


__all__ = [
    "Collection",
    "CollectionError",
    "ConfigError",
    "CrossmodalError",
    "DatasetError",
    "Description",
    "ImageLoadError",
    "IndexReport",
    "ModelNotAvailable",
    "SearchFilter",
    "SearchHit",
    "__version__",
]
