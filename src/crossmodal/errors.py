"""One exception type per concern; the CLI and the web app turn them into one clear line / a 4xx."""

from __future__ import annotations


class CrossmodalError(Exception):
    """Base class of every error crossmodal raises on purpose (bad input, missing files)."""


class DatasetError(CrossmodalError):
    """A dataset is missing, malformed, or refers to files that do not exist."""


class ImageLoadError(CrossmodalError):
    """An image file could not be decoded (corrupt, truncated, empty, not an image).

    `kind` says which, for an edge that answers differently per cause (the web app's 400 /
    413 / 415 / 422): "unreadable", "empty", "not_image", "too_large" or "corrupt"; `size`
    is the (width, height) of a too-large image when its header told it."""

    def __init__(
        self, message: str, kind: str = "corrupt", size: tuple[int, int] | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.size = size


class ModelNotAvailable(CrossmodalError):
    """A model name is unknown, or its weights are not on this machine."""


class ConfigError(CrossmodalError):
    """A configuration value is unknown or impossible."""


class CollectionError(CrossmodalError):
    """A gallery collection is missing, locked, or was built with another model."""
