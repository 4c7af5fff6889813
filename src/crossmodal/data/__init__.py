"""Datasets and image decoding: everything that turns files on disk into images and captions.

The rest of crossmodal (indexing, training, evaluation) sees only `load_image`,
`ImageTextDataset` and `LabeledImageDataset`, never a caption file format, so adding a new
layout means touching this package alone.
"""

from __future__ import annotations

from crossmodal.data.datasets import ImageTextDataset, LabeledImageDataset, split_stratified
from crossmodal.data.formats import read_captions_file
from crossmodal.data.images import IMAGE_EXTENSIONS, is_image_file, load_image
from crossmodal.data.loaders import DATASET_NAMES, SPLITS, load_dataset

__all__ = [
    "DATASET_NAMES",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "ImageTextDataset",
    "LabeledImageDataset",
    "is_image_file",
    "load_dataset",
    "load_image",
    "read_captions_file",
    "split_stratified",
]
