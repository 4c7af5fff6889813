"""The report's options and their checks, in one place for every caller (CLI, API, page).

`ReportOptions.validate()` refuses what cannot make a report, with the words the user reads
whichever way the report was asked for; `build_report` calls it, and the CLI calls it before
loading any model so a typo costs no waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crossmodal.errors import ConfigError
from crossmodal.eval.metrics import DEFAULT_KS

__all__ = ["ReportOptions", "check_gallery_sizes", "parse_gallery_sizes"]

#: options that count things and so must be at least 1, with the flag that sets each
_AT_LEAST_ONE = (
    ("trials", "--trials"),
    ("tsne_images", "--tsne-images"),
    ("heatmap_images", "--heatmap-images"),
    ("examples", "--examples"),
    ("top_k", "--top-k"),
)


@dataclass
class ReportOptions:
    gallery_sizes: tuple[int, ...] = (100, 250, 500, 1000)
    trials: int = 5
    seed: int = 0
    tsne_images: int = 150
    tsne_pairs: int = 12
    heatmap_images: int = 20
    examples: int = 4
    top_k: int = 5
    photos: bool = True
    dpi: int = 90
    min_word_count: int = 10  # rarer words make noisy ratios in the failure analysis
    prompt_captions: int = 1000  # captions in the prompt study (0 = all)
    ks: tuple[int, ...] = DEFAULT_KS
    command: str | None = None  # how the report was made, quoted in it

    def validate(self) -> ReportOptions:
        """Refuse impossible options (ConfigError, one line naming the option); returns self."""
        for field_name, flag in _AT_LEAST_ONE:
            value = getattr(self, field_name)
            if value < 1:
                raise ConfigError(f"{flag} must be at least 1 (got {value})")
        if self.prompt_captions < 0:
            raise ConfigError(
                f"--prompt-captions must be 0 (all) or more (got {self.prompt_captions})"
            )
        if not self.gallery_sizes:
            raise ConfigError("give at least one gallery size, e.g. --gallery-sizes 100,1000")
        if min(self.gallery_sizes) < 1:
            raise ConfigError(f"gallery sizes must be positive (got {min(self.gallery_sizes)})")
        return self


def parse_gallery_sizes(text: str) -> tuple[int, ...]:
    """'100, 250,500' -> (100, 250, 500)."""
    try:
        return tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ConfigError(
            f"--gallery-sizes takes comma-separated numbers of images, e.g. 100,250 (got {text!r})"
        ) from None


def check_gallery_sizes(n_images: int, sizes: Sequence[int], split: str) -> None:
    """The largest gallery must fit in the split (checked once the split is loaded)."""
    if not sizes:
        raise ConfigError("give at least one gallery size, e.g. --gallery-sizes 100,1000")
    if min(sizes) < 1:
        raise ConfigError(f"gallery sizes must be positive (got {min(sizes)})")
    if max(sizes) > n_images:
        raise ConfigError(
            f"the {split} split has {n_images} images, fewer than the gallery size "
            f"{max(sizes)} asked for; choose --gallery-sizes up to {n_images}"
        )
