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

__all__ = [
    "CollectionError",
    "ConfigError",
    "CrossmodalError",
    "DatasetError",
    "ImageLoadError",
    "ModelNotAvailable",
    "__version__",
]
