"""Training configuration: one dataclass, read from a TOML file and overridden by CLI flags.

A run folder keeps the resolved configuration as `config.toml`, so any run can be repeated with
`crossmodal train --config runs/NAME/config.toml`.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossmodal.defaults import DEFAULT_FLICKR8K_ROOT
from crossmodal.errors import ConfigError

RECIPES = ("auto", "heads", "finetune")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class RunConfig:
    """The settings every training recipe has, with their one set of defaults. A recipe that
    needs another value says so by redeclaring the field in its own config (see HeadConfig,
    SSLConfig), so each difference is written, and explained, in one place."""

    dataset: str = "flickr8k"
    root: str = str(DEFAULT_FLICKR8K_ROOT)
    train_split: str = "train"
    val_split: str = "val"
    embed_dim: int = 512
    weight_decay: float = 0.5
    patience: int = 6  # epochs without a better val mean recall before stopping
    seed: int = 0
    out: str = "runs/train"


@dataclass
class EpochConfig(RunConfig):
    """A recipe with one optimisation schedule (the SSL recipe has one per stage instead)."""

    epochs: int = 40
    batch_size: int = 256
    lr: float = 3e-4  # heads and temperature
    warmup_epochs: float = 1.0


@dataclass
class TrainConfig(EpochConfig):
    """Everything that defines a training run. Field names are the TOML keys; the CLI flags are
    the same names with dashes (`--unfreeze-image 4`)."""

    # data
    max_train_images: int = 0  # 0 = all; a quick run uses the first N images
    max_val_images: int = 0
    # model
    image_tower: str = "lite1"  # lite0 | lite1 | lite2
    text_tower: str = "minilm+use"  # minilm | use | minilm+use
    image_size: int = 0  # 0 = the tower's native resolution
    hidden: int = 0  # MLP width of both heads (0 = linear)
    dropout: float = 0.0
    init_from: str = ""  # a saved model whose heads + temperature start the run
    # a pretrained Hugging Face CLIP to fine-tune instead of our own towers: "hf:<folder>" (a
    # CLIPModel.save_pretrained folder with tokenizer + preprocessor_config.json) or "hf:<hub
    # id>" already in the local cache. Its towers replace image_tower / text_tower / embed_dim /
    # hidden; see crossmodal.train.clip_finetune for what unfreeze_* and lora_* mean there.
    clip_model: str = ""
    # which parts learn (all zero: heads only, on cached features)
    recipe: str = "auto"  # auto | heads | finetune
    unfreeze_image: int = 0  # top-N image blocks (-1 = the whole tower)
    unfreeze_text: int = 0  # top-N text transformer layers (-1 = all)
    lora_text: int = 0  # LoRA rank on the text tower's attention (0 = off)
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["query", "value"])
    # optimisation
    grad_accum: int = 1
    image_lr: float = 1e-4  # unfrozen image tower layers
    text_lr: float = 2e-5  # unfrozen text tower layers
    lora_lr: float = 5e-4
    precision: str = "auto"  # auto = bf16 on a GPU, fp32 on a CPU
    device: str = "auto"  # auto | cpu | cuda
    workers: int = 4  # image decoding threads
    max_minutes: float = 0.0  # stop after this much training time (0 = no limit); best is kept
    # augmentation and batch composition
    flip_augment: bool = True
    augment: bool = True  # random resized crop + flip + colour jitter (tower fine-tuning)
    crop_scale: float = 0.5  # smallest crop area fraction
    color_jitter: float = 0.2
    text_views: bool = False  # keyword views of each caption as extra positives
    hard_negatives: float = 0.0  # fraction of batches grouped by last epoch's image clusters
    # bookkeeping
    cache_dir: str = ""
    tower_weights_dtype: str = "float16"  # how fine-tuned tower tensors are saved

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(self.recipe in RECIPES, f"recipe must be one of {', '.join(RECIPES)}")
        need(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}")
        need(self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda")
        need(self.batch_size >= 2, "batch_size must be at least 2 (InfoNCE needs negatives)")
        need(self.grad_accum >= 1, "grad_accum must be at least 1")
        need(self.epochs >= 1, "epochs must be at least 1")
        need(self.embed_dim >= 2, "embed_dim must be at least 2")
        need(0 <= self.dropout < 1, "dropout must be in [0, 1)")
        need(0 < self.crop_scale <= 1, "crop_scale must be in (0, 1]")
        need(0 <= self.hard_negatives <= 1, "hard_negatives must be a fraction in [0, 1]")
        need(self.lora_text >= 0, "lora_text is a rank: 0 (off) or more")
        need(
            self.unfreeze_image >= -1 and self.unfreeze_text >= -1,
            "unfreeze_image / unfreeze_text: a number of top blocks, or -1 for all",
        )
        need(
            not (self.lora_text and self.unfreeze_text),
            "choose LoRA (lora_text) or unfreezing (unfreeze_text) for the text tower, not both",
        )
        need(
            self.tower_weights_dtype in ("float16", "float32"),
            "tower_weights_dtype must be float16 or float32",
        )
        if self.recipe == "heads":
            need(
                not self.tunes_towers,
                "recipe 'heads' trains heads only: drop unfreeze_* / lora_text, or use "
                "recipe 'finetune'",
            )
        if self.clip_model:
            # only whether the spec can be trained is checked here; the folder itself is looked
            # for when training starts (shipped recipes name a placeholder folder)
            need(
                not self.clip_model.startswith("openclip:"),
                "clip_model: open_clip models cannot be trained yet (open_clip needs "
                "torchvision); use a Hugging Face CLIP folder, clip_model = 'hf:/path/to/folder'",
            )
            need(
                self.clip_model.startswith("hf:") and len(self.clip_model) > 3,
                "clip_model must be 'hf:<folder or cached hub id>', e.g. "
                "'hf:/path/to/clip-vit-b32'",
            )
        if self.precision == "fp16":
            need(self.device != "cpu", "fp16 training needs a GPU; use bf16 or fp32 on a CPU")

    @property
    def tunes_towers(self) -> bool:
        return bool(self.unfreeze_image or self.unfreeze_text or self.lora_text)

    @property
    def fine_tune(self) -> bool:
        """Whether the run takes the end-to-end path (pixels and tokens) or the cached one."""
        return self.recipe == "finetune" or (self.recipe == "auto" and self.tunes_towers)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def read_config_file(path: str | Path, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """TOML file -> flat dict of known keys. A `[train]` table is accepted as well as top-level
    keys; an unknown key is an error (a typo must not silently train something else)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if isinstance(data.get("train"), dict):
        data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
    fields = FIELDS if fields is None else fields
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + f"; known keys: {', '.join(sorted(fields))}"
        )
    return data


def _coerce(name: str, value: Any, fields: dict[str, Any] | None = None) -> Any:
    spec = (FIELDS if fields is None else fields)[name]
    default = spec.default
    if default is dataclasses.MISSING:  # list fields (default_factory)
        sample = spec.default_factory() if callable(spec.default_factory) else []
        kinds = {type(x) for x in sample} or {str, int, float}
        if not isinstance(value, list) or not all(type(v) in kinds for v in value):
            what = "/".join(sorted(k.__name__ for k in kinds))
            raise ConfigError(f"{name} must be a list of {what}")
        return list(value)
    if default is None:  # optional settings: any TOML value of a plain type
        if not isinstance(value, int | float | str | list):
            raise ConfigError(f"{name}: unsupported value {value!r}")
        return value
    kind = type(default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        what = {int: "an integer", float: "a number", str: "a string"}.get(kind, kind.__name__)
        raise ConfigError(f"{name} must be {what}, not {value!r}")
    return value


def make_config(file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults < config file < explicit overrides (CLI flags that were given)."""
    return build_config(TrainConfig, file, **overrides)


def build_config(cls: type, file: str | Path | None = None, **overrides: Any) -> Any:
    """Any config dataclass from TOML + overrides, with the same checks (`validate()` if the
    class has one)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = read_config_file(file, fields) if file else {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"unknown setting {key!r}")
        if value is not None:
            values[key] = value
    cfg = cls(**{k: _coerce(k, v, fields) for k, v in values.items()})
    if hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


def to_toml(cfg: TrainConfig) -> str:
    """Flat TOML of every field (json string/list quoting is valid TOML for these types)."""
    lines = ["# crossmodal training run; repeat it with: crossmodal train --config THIS_FILE"]
    for name, value in dataclasses.asdict(cfg).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            text = json.dumps(value, ensure_ascii=False)
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"
