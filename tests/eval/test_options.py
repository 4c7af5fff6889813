"""`ReportOptions.validate` and the gallery-size checks: one line naming the option."""

from __future__ import annotations

import pytest

from crossmodal.errors import ConfigError
from crossmodal.eval.options import ReportOptions, check_gallery_sizes, parse_gallery_sizes


def test_defaults_are_valid() -> None:
    assert ReportOptions().validate() == ReportOptions()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"trials": 0}, "--trials must be at least 1 (got 0)"),
        ({"tsne_images": -1}, "--tsne-images must be at least 1 (got -1)"),
        ({"heatmap_images": 0}, "--heatmap-images must be at least 1"),
        ({"examples": 0}, "--examples must be at least 1"),
        ({"top_k": 0}, "--top-k must be at least 1"),
        ({"prompt_captions": -2}, "--prompt-captions must be 0 (all) or more (got -2)"),
        ({"gallery_sizes": ()}, "give at least one gallery size"),
        ({"gallery_sizes": (10, 0)}, "gallery sizes must be positive (got 0)"),
    ],
)
def test_validate_names_the_option(change: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ReportOptions(**change).validate()


def test_gallery_sizes() -> None:
    assert parse_gallery_sizes(" 100, 250,500") == (100, 250, 500)
    with pytest.raises(ConfigError, match="comma-separated numbers"):
        parse_gallery_sizes("100,a")
    check_gallery_sizes(1000, (100, 1000), "test")
    with pytest.raises(ConfigError, match="the test split has 50 images"):
        check_gallery_sizes(50, (100,), "test")
