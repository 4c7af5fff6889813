"""End-to-end fine-tuning: pixels and tokens in, towers partly unfrozen or given LoRA adapters.

Design choices, and why:
- Images are decoded once into a uint8 tensor at the tower's resolution and augmented on the
  training device (random resized crop + flip through one `grid_sample`, colour jitter as
  tensor arithmetic): no torchvision (it breaks beside our torch wheel) and no per-epoch JPEG
  decoding, which on a 2-core machine would cost more than the training step.
- Frozen sub-towers (the multilingual USE next to MiniLM, or MiniLM itself when only the image
  side learns) are run once per caption and cached, like the heads-only recipe.
- Every epoch reseeds its sampler, augmentation and dropout from (seed, epoch), and the
  checkpoint holds model, optimiser and scheduler state, so `--resume` after a kill lands on
  the same final model as an uninterrupted run.
- LoRA adapters (peft) are merged into the weights when the model is saved, so a saved model
  loads without peft; only the tensors training changed are saved, in float16.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossmodal import runtime
from crossmodal.errors import ConfigError
from crossmodal.eval.metrics import metrics_from_ranks, retrieval_ranks
from crossmodal.models.dual import DualEncoder
from crossmodal.models.features import FeatureCache, _cached_texts, default_cache_dir
from crossmodal.models.registry import resolve_model_dir
from crossmodal.models.towers import (
    ConcatTextTower,
    EfficientNetTower,
    MiniLMTower,
)
from crossmodal.train.config import TrainConfig, to_toml
from crossmodal.train.finetune_data import (
    SplitData,
    augment,
    center,
    decode_split,
    epoch_batches,
)
from crossmodal.train.heads import text_feature_dim, text_tower_spec
from crossmodal.train.loop import (
    Step,
    Trainer,
    TrainResult,
    caption_splits,
    fit,
    open_run,
    optimizer_steps_per_epoch,
    warmup_cosine,
    write_summary,
)
from crossmodal.train.loss import ClipLoss


# ---- text side ---------------------------------------------------------------------------
class TextSide:
    """Text features for caption indices: trainable sub-towers run on pre-tokenised captions,
    frozen ones are looked up in features computed (and cached on disk) once."""

    def __init__(
        self,
        tower: nn.Module,
        texts: list[str],
        trainable: bool,
        cache_dir: Path | None,
        device: torch.device,
        show_progress: bool,
    ) -> None:
        self.concat = isinstance(tower, ConcatTextTower)
        subtowers = list(tower.towers) if isinstance(tower, ConcatTextTower) else [tower]
        self.parts: list[tuple[nn.Module, Any]] = []
        for sub in subtowers:
            if trainable and isinstance(sub, MiniLMTower):
                tokens = sub.tokenize(texts)
                payload: Any = (tokens["input_ids"].to(device), tokens["attention_mask"].to(device))
            else:
                payload = self._frozen(sub, texts, cache_dir, show_progress).to(device)
            self.parts.append((sub, payload))

    @staticmethod
    def _frozen(
        sub: nn.Module, texts: list[str], cache_dir: Path | None, show_progress: bool
    ) -> torch.Tensor:
        namespace = f"text-features:{sub.fingerprint()}"  # type: ignore[operator]
        cache = FeatureCache(cache_dir, namespace) if cache_dir is not None else None

        def compute(chunk: list[str]) -> np.ndarray:
            with torch.inference_mode():
                return sub(sub.tokenize(chunk)).float().cpu().numpy()  # type: ignore[operator]

        feats = _cached_texts(texts, cache, compute, 256, show_progress, int(sub.feature_dim))  # type: ignore[arg-type]
        return torch.from_numpy(feats)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        out = []
        for sub, payload in self.parts:
            if isinstance(payload, tuple):
                ids, mask = payload[0][idx], payload[1][idx]
                length = int(mask.sum(1).max())
                feats = sub({"input_ids": ids[:, :length], "attention_mask": mask[:, :length]})
            else:
                feats = payload[idx]
            out.append(F.normalize(feats.float(), dim=-1) if self.concat else feats.float())
        return torch.cat(out, dim=-1) if len(out) > 1 else out[0]


# ---- model set-up ------------------------------------------------------------------------
def model_config(cfg: TrainConfig, name: str) -> dict[str, Any]:
    image_tower: dict[str, Any] = {
        "type": "efficientnet",
        "variant": cfg.image_tower,
        "feature_dim": 1280,
    }
    if cfg.image_size:
        image_tower["image_size"] = cfg.image_size
    text_tower = text_tower_spec(cfg.text_tower)
    text_tower["feature_dim"] = text_feature_dim(text_tower)
    return {
        "name": name,
        "embed_dim": cfg.embed_dim,
        "image_tower": image_tower,
        "text_tower": text_tower,
        "image_head": {"hidden": cfg.hidden, "dropout": cfg.dropout},
        "text_head": {"hidden": cfg.hidden, "dropout": cfg.dropout},
    }


def _minilm_parts(tower: nn.Module) -> list[tuple[str, MiniLMTower]]:
    """(state-dict prefix inside the text tower, MiniLM) for every MiniLM in the text tower."""
    if isinstance(tower, MiniLMTower):
        return [("", tower)]
    if isinstance(tower, ConcatTextTower):
        return [
            (f"towers.{i}.", t) for i, t in enumerate(tower.towers) if isinstance(t, MiniLMTower)
        ]
    return []


@dataclasses.dataclass
class Trainable:
    """What learns in a run, and how to put the model in training mode."""

    image_modules: list[nn.Module]
    image_first_block: int
    text_modules: list[nn.Module]
    lora: bool

    def train_mode(self, model: DualEncoder) -> None:
        # frozen layers stay in eval mode: their BatchNorm statistics and dropout do not move
        model.eval()
        model.image_head.train()
        model.text_head.train()
        for module in self.image_modules + self.text_modules:
            module.train()


def prepare_model(model: DualEncoder, cfg: TrainConfig) -> Trainable:
    """Freeze everything, then unfreeze / add adapters as the config says; impossible settings
    fail here, before any data is loaded."""
    image, text = model.image_tower, model.text_tower
    assert image is not None and text is not None
    for p in model.parameters():
        p.requires_grad_(False)
    for module in (model.image_head, model.text_head):
        for p in module.parameters():
            p.requires_grad_(True)
    model.logit_scale.requires_grad_(True)
    image_modules: list[nn.Module] = []
    first_block = len(image.blocks) if isinstance(image, EfficientNetTower) else 0
    if cfg.unfreeze_image:
        if not isinstance(image, EfficientNetTower):
            raise ConfigError("unfreeze_image needs an EfficientNet image tower")
        image_modules, first_block = image.trainable_modules(cfg.unfreeze_image)
    minilms = _minilm_parts(text)
    text_modules: list[nn.Module] = []
    if (cfg.unfreeze_text or cfg.lora_text) and not minilms:
        what = "LoRA (lora_text)" if cfg.lora_text else "unfreeze_text"
        raise ConfigError(
            f"{what} needs a text tower with attention layers; {cfg.text_tower!r} has none "
            "(the USE tower is a frozen numpy model): use text_tower 'minilm' or 'minilm+use'"
        )
    if cfg.unfreeze_text:
        for _, tower in minilms:
            text_modules += tower.trainable_modules(cfg.unfreeze_text)
    if cfg.lora_text:
        from peft import LoraConfig, get_peft_model

        for _, tower in minilms:
            names = {n.rsplit(".", 1)[-1] for n, _ in tower.net.named_modules()}
            missing = [t for t in cfg.lora_targets if t not in names]
            if missing:
                raise ConfigError(
                    f"lora_targets {missing} are not modules of the text tower "
                    f"(try query, key, value, dense)"
                )
            lora = LoraConfig(
                r=cfg.lora_text,
                # peft scales by alpha / r as a float; its annotation says int
                lora_alpha=cfg.lora_alpha,  # type: ignore[arg-type]
                lora_dropout=cfg.lora_dropout,
                target_modules=cfg.lora_targets,
            )
            tower.net = get_peft_model(tower.net, lora)
            text_modules.append(tower.net)
    for trainable in image_modules + (text_modules if cfg.unfreeze_text else []):
        for p in trainable.parameters():
            p.requires_grad_(True)
    return Trainable(image_modules, first_block, text_modules, bool(cfg.lora_text))


def _param_groups(model: DualEncoder, cfg: TrainConfig) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, list[nn.Parameter]]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(("image_head.", "text_head.", "logit_scale")):
            kind = "heads"
        elif "lora_" in name:
            kind = "lora"
        else:
            kind = "image" if name.startswith("image_tower.") else "text"
        decay = "decay" if p.ndim >= 2 and "lora_" not in name else "no_decay"
        groups.setdefault(kind, {}).setdefault(decay, []).append(p)
    lr = {"heads": cfg.lr, "image": cfg.image_lr, "text": cfg.text_lr, "lora": cfg.lora_lr}
    out = []
    for kind, by_decay in groups.items():
        for decay, params in by_decay.items():
            out.append(
                {
                    "params": params,
                    "lr": lr[kind],
                    "name": f"{kind}/{decay}",
                    "weight_decay": cfg.weight_decay if decay == "decay" else 0.0,
                }
            )
    return out


# ---- evaluation --------------------------------------------------------------------------
def embed_split_tensors(
    model: DualEncoder,
    data: SplitData,
    text: TextSide,
    device: torch.device,
    autocast: Any,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors for every image (centre view) and caption of a split, on the CPU."""

    def images(pixels: torch.Tensor) -> torch.Tensor:
        # only EfficientNet towers are fine-tuned (checked when the run starts)
        tower = cast(Any, model.image_tower)
        feats = tower.feature_map(center(pixels)).mean(dim=(2, 3))
        return model.project_images(feats.float())

    model.eval()
    return embed_in_batches(
        data.pixels,
        len(data.captions),
        images,
        lambda idx: model.project_texts(text.features(idx)),
        device,
        autocast,
        batch_size,
    )


def embed_in_batches(
    pixels: torch.Tensor,
    n_texts: int,
    image_vectors: Callable[[torch.Tensor], torch.Tensor],
    text_vectors: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    autocast: Any,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image (uint8 pixels, moved to `device` a batch at a time) and every caption
    (by index) through the given functions, without gradients or inference fast paths;
    results on the CPU. Shared by the dual-encoder and CLIP trainers' evaluations."""
    images, texts = [], []
    # the inference fast paths rebuild copies when weights change; during training the plain
    # modules are both correct and cheaper than a copy per epoch
    with torch.no_grad(), runtime.fast_paths("off"), autocast():
        for start in range(0, len(pixels), batch_size):
            images.append(
                image_vectors(pixels[start : start + batch_size].to(device)).float().cpu()
            )
        for start in range(0, n_texts, batch_size):
            idx = torch.arange(start, min(start + batch_size, n_texts), device=device)
            texts.append(text_vectors(idx).float().cpu())
    return torch.cat(images), torch.cat(texts)


def evaluate(
    image_emb: torch.Tensor, text_emb: torch.Tensor, caption_image: torch.Tensor
) -> dict[str, dict[str, float]]:
    t2i, i2t = retrieval_ranks(image_emb.numpy(), text_emb.numpy(), caption_image.numpy())
    return {"t2i": metrics_from_ranks(t2i), "i2t": metrics_from_ranks(i2t)}


# ---- checkpoints -------------------------------------------------------------------------
def _changing_keys(model: DualEncoder, trainable: Trainable) -> list[str]:
    """State-dict keys that training can change: parameters that learn, plus the BatchNorm
    statistics of unfrozen image blocks."""
    learn = {id(p) for p in model.parameters() if p.requires_grad}
    keys = [k for k, p in model.named_parameters() if id(p) in learn]
    names = {id(m) for m in trainable.image_modules}
    for mname, module in model.named_modules():
        if id(module) in names:
            keys += [f"{mname}.{b}" for b, _ in module.named_buffers()]
    return sorted(set(keys))


def _state(model: DualEncoder, keys: Sequence[str]) -> dict[str, torch.Tensor]:
    full = model.state_dict()
    return {k: full[k].detach().cpu().clone() for k in keys}


def train_finetune(
    cfg: TrainConfig, resume: bool = False, show_progress: bool = True
) -> TrainResult:
    """Fine-tune towers + heads end to end; saves `<out>/best` (selected on val mean recall),
    `<out>/config.toml`, `<out>/metrics.jsonl` and `<out>/checkpoint.pt` after every epoch."""
    cfg.validate()
    start_time = time.perf_counter()
    out = Path(cfg.out)
    ckpt = open_run(cfg, resume)
    device = runtime.resolve_device(cfg.device)
    autocast, scaler = runtime.autocast(device, cfg.precision)

    model, trainable, image_tower, text_tower = _build_model(cfg, out)
    train_ds, val_ds = caption_splits(cfg)

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(to_toml(cfg))
    train = decode_split(
        train_ds,
        image_tower,
        cfg.max_train_images,
        cfg.workers,
        show_progress,
        text_views=cfg.text_views,
    )
    val = decode_split(val_ds, image_tower, cfg.max_val_images, cfg.workers, show_progress)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    text_trainable = bool(cfg.unfreeze_text or cfg.lora_text)
    train_text = TextSide(text_tower, train.captions, text_trainable, cache, device, show_progress)
    val_text = TextSide(text_tower, val.captions, text_trainable, cache, device, show_progress)
    model.to(device)
    cpu_split = dataclasses.replace(train)
    train.pixels = train.pixels.to(device)
    train.caption_image = train.caption_image.to(device)

    optim = torch.optim.AdamW(_param_groups(model, cfg))
    sched = warmup_cosine(
        optim,
        optimizer_steps_per_epoch(cpu_split.caption_image, cfg),
        cfg.epochs,
        cfg.warmup_epochs,
    )
    keys = _changing_keys(model, trainable)
    loss_fn = ClipLoss()

    def batch_step(batch: torch.Tensor, gen: torch.Generator) -> Step:
        batch = batch.to(device)
        images = train.caption_image[batch]
        with autocast():
            px = augment(train.pixels[images], gen, cfg)
            feats = image_tower.feature_map(px, trainable.image_first_block)
            img = model.project_images(feats.mean(dim=(2, 3)).float())
            txt = model.project_texts(train_text.features(batch))
            loss = loss_fn(img.float(), txt.float(), model.logit_scale, group=images)
        return Step(loss, images, img)

    def evaluate_val() -> dict[str, dict[str, float]]:
        val_img, val_txt = embed_split_tensors(model, val, val_text, device, autocast)
        return evaluate(val_img, val_txt, val.caption_image)

    trainer = Trainer(
        model=model,
        optim=optim,
        sched=sched,
        scaler=scaler,
        train_mode=lambda: trainable.train_mode(model),
        batch_step=batch_step,
        after_step=model.clamp_logit_scale,
        evaluate_val=evaluate_val,
        temperature=lambda: float(1 / model.logit_scale.detach().exp()),
        learning_state=lambda: _state(model, keys),
        make_batches=lambda epoch, emb: epoch_batches(cpu_split, cfg, epoch, emb),
        n_images=len(train.pixels),
        embed_dim=cfg.embed_dim,
    )
    best = fit(trainer, cfg, ckpt, show_progress=show_progress, start_time=start_time)
    model.to("cpu")
    return _finish_run(cfg, model, trainable, best, (train, val), device, start_time)


def _build_model(
    cfg: TrainConfig, out: Path
) -> tuple[DualEncoder, Trainable, EfficientNetTower, nn.Module]:
    """The model with its heads (from `init_from`) and the parts that learn set up."""
    torch.manual_seed(cfg.seed)  # head initialisation and LoRA adapters
    model = DualEncoder(model_config(cfg, name=str(out / "best")))
    if cfg.init_from:
        _init_heads(model, cfg.init_from)
    trainable = prepare_model(model, cfg)
    image_tower, text_tower = model.image_tower, model.text_tower
    if not isinstance(image_tower, EfficientNetTower) or text_tower is None:
        raise ConfigError("fine-tuning needs an EfficientNet image tower")
    return model, trainable, image_tower, text_tower


def _finish_run(
    cfg: TrainConfig,
    model: DualEncoder,
    trainable: Trainable,
    best: dict[str, Any],
    splits: tuple[SplitData, SplitData],
    device: torch.device,
    start_time: float,
) -> TrainResult:
    """Save `<out>/best` with how it was trained, and the run's summary."""
    out = Path(cfg.out)
    train, val = splits
    seconds = round(time.perf_counter() - start_time, 1)
    _save_best(
        model,
        trainable,
        cfg,
        out / "best",
        {
            "trained_on": f"{cfg.dataset} {cfg.train_split} ({len(train.pixels)} images, "
            f"{len(train.captions)} captions)",
            "selected_on": f"{cfg.val_split} mean recall {best['score']:.2f} at epoch "
            f"{best['epoch']}",
            "recipe": _recipe_name(cfg),
            "seed": cfg.seed,
            "train_seconds": seconds,
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        },
    )
    summary = {**best, "seconds": seconds, "skipped_images": train.skipped + val.skipped}
    return write_summary(out, summary, best, seconds)


def _recipe_name(cfg: TrainConfig) -> str:
    parts = []
    if cfg.unfreeze_image:
        parts.append(
            "image: all blocks"
            if cfg.unfreeze_image < 0
            else f"image: top {cfg.unfreeze_image} blocks"
        )
    if cfg.unfreeze_text:
        parts.append(
            "text: all layers" if cfg.unfreeze_text < 0 else f"text: top {cfg.unfreeze_text} layers"
        )
    if cfg.lora_text:
        parts.append(f"text: LoRA r={cfg.lora_text} on {'/'.join(cfg.lora_targets)}")
    return "fine-tune (" + "; ".join(parts) + ")" if parts else "heads only"


def _init_heads(model: DualEncoder, source: str) -> None:
    from crossmodal.models.registry import load_model

    donor = load_model(source)
    if not isinstance(donor, DualEncoder):
        raise ConfigError(f"init_from {source!r} is not a crossmodal dual encoder")
    state = {
        k: v
        for k, v in donor.state_dict().items()
        if k.startswith(("image_head.", "text_head.", "logit_scale"))
    }
    mine = model.state_dict()
    wrong = [k for k, v in state.items() if k not in mine or mine[k].shape != v.shape]
    if wrong:
        raise ConfigError(
            f"init_from {source!r}: its heads do not fit this model's towers/size ({wrong[0]})"
        )
    model.load_state_dict(state, strict=False)


def _save_best(
    model: DualEncoder, trainable: Trainable, cfg: TrainConfig, path: Path, info: dict[str, Any]
) -> None:
    """Merge LoRA into the weights and save only the tower tensors that training changed."""
    prefixes: list[str] = []
    saved: set[str] = set()
    if trainable.image_modules:
        saved.add("image")
        names = {id(m): n for n, m in model.named_modules()}
        prefixes += [names[id(m)] + "." for m in trainable.image_modules]
    if trainable.text_modules:
        saved.add("text")
        assert model.text_tower is not None
        for sub_prefix, tower in _minilm_parts(model.text_tower):
            base = f"text_tower.{sub_prefix}net."
            if trainable.lora:
                # keep the adapters as factors (a few MB) and merge them in memory, so the
                # saved model loads without peft and stays small
                scale = 1.0
                for name, module in tower.net.named_modules():
                    if name.rsplit(".", 1)[-1] in cfg.lora_targets and hasattr(module, "lora_A"):
                        key = base + _strip_peft(name)
                        lora_a = module.lora_A["default"].weight.detach().cpu()
                        lora_b = module.lora_B["default"].weight.detach().cpu()
                        scale = float(module.scaling["default"])
                        model.lora_factors[f"{key}.lora_A"] = lora_a.half()
                        model.lora_factors[f"{key}.lora_B"] = lora_b.half()
                tower.net = tower.net.merge_and_unload()
                model.config["lora_scale"] = scale
            else:
                names = {id(m): n for n, m in tower.net.named_modules()}
                prefixes += [
                    base + (names[id(m)] + "." if names[id(m)] else "")
                    for m in tower.trainable_modules(cfg.unfreeze_text)
                ]
    model.saved_towers = saved
    if saved:
        model.config["saved_tower_params"] = sorted(set(prefixes))
        model.config["tower_weights_dtype"] = cfg.tower_weights_dtype
    model.eval()
    model.save(path, extra_info=info)


def _strip_peft(name: str) -> str:
    """'base_model.model.encoder.layer.0.attention.self.query' -> 'encoder.layer.0....query'."""
    return name.removeprefix("base_model.model.")


def resolve_run(path: str | Path) -> Path:
    return resolve_model_dir(Path(path))
