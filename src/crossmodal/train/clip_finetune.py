"""Fine-tuning a pretrained Hugging Face CLIP (`clip_model = "hf:<folder>"`) with our recipes.

What learns (the same settings as for our own towers, read for CLIP's two transformers):
- The projections (`visual_projection`, `text_projection`: CLIP's "heads", at `lr`) and the
  logit scale (at `lr`) always learn.
- `unfreeze_image = N` / `unfreeze_text = N`: the top N transformer layers of the vision /
  text encoder plus that encoder's final layer norm (`post_layernorm` / `final_layer_norm`)
  learn, at `image_lr` / `text_lr`; -1 (or N >= the number of layers) = the whole encoder,
  embeddings included. The seeds' "freeze the lower nine layers" on a 12-layer ViT-B/32 is
  `unfreeze_image = 3, unfreeze_text = 3`.
- `lora_text = r`: LoRA adapters of rank r (at `lora_lr`) on the layers named by
  `lora_targets`, in every layer of a tower. Names are CLIP's `q_proj k_proj v_proj out_proj
  fc1 fc2`; MiniLM's `query key value` (the default) mean `q_proj k_proj v_proj`. Which towers
  get them: a plain name goes to the text tower, and to the vision tower too when
  `unfreeze_image` is 0 (the LoRA-on-CLIP recipe adapts both towers); `text.q_proj` or
  `image.q_proj` (`vision.q_proj`) puts it on that tower only, e.g. text-only LoRA with a
  frozen image tower is `lora_targets = ["text.q_proj", "text.v_proj"]`.

Why it is built this way:
- Images are decoded once through the checkpoint's own image processor (resize + centre crop,
  no rescale / normalisation) into a uint8 tensor, then augmented on the device with the same
  tensor ops as our fine-tuning (`finetune.augment`) and normalised with CLIP's mean/std: the
  evaluation view equals what `load_model("hf:...")` computes, with no torchvision.
- Frozen lower layers get inputs and weights that need no gradient, so autograd records
  nothing below the first trainable layer: freezing nine of twelve layers is also cheaper.
- Sampler, augmentation and dropout are reseeded from (seed, epoch), and the checkpoint holds
  every tensor that learns plus optimiser / scheduler state, so `--resume` after a kill lands
  on the same model as an uninterrupted run.
- `<out>/best` is an ordinary Hugging Face CLIP folder (LoRA merged into the weights; model,
  image processor and tokenizer saved with `save_pretrained`), so `crossmodal eval --model
  hf:<out>/best` and `load_model("hf:<out>/best")` use it without peft or crossmodal code.
  `tower_weights_dtype` decides whether it is saved in float16 (half the disk) or float32.

Settings of our own towers (image_tower, text_tower, embed_dim, hidden, dropout) do not apply
and are ignored; image_size and init_from are refused (CLIP fixes both).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from crossmodal import runtime
from crossmodal.errors import ConfigError, ModelNotAvailable
from crossmodal.models.clip_backends import HFClipEncoder, _features, load_hf_clip
from crossmodal.train.config import TrainConfig, to_toml
from crossmodal.train.finetune import embed_in_batches, evaluate
from crossmodal.train.finetune_data import SplitData, augment, decode_split, epoch_batches
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

#: CLIP's own cap on the logit scale (a temperature of 1/100)
LOGIT_SCALE_MAX = math.log(100.0)
#: (encoder attribute, projection attribute, final layer norm) of each tower
TOWERS = {
    "image": ("vision_model", "visual_projection", "post_layernorm"),
    "text": ("text_model", "text_projection", "final_layer_norm"),
}
#: the Linear layers inside a CLIP encoder layer that LoRA can adapt
LORA_LAYERS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
#: MiniLM / BERT names (our default lora_targets) -> CLIP's
LORA_ALIASES = {"query": "q_proj", "key": "k_proj", "value": "v_proj"}
_TOWER_PREFIXES = {"text": "text", "image": "image", "vision": "image"}


# ---- settings ----------------------------------------------------------------------------
def lora_plan(cfg: TrainConfig) -> dict[str, list[str]]:
    """{"text": [...], "image": [...]}: the CLIP layer names that get LoRA in each tower
    (empty lists when `lora_text` is 0). Bad names fail here, before anything is loaded."""
    plan: dict[str, list[str]] = {"text": [], "image": []}
    if not cfg.lora_text:
        return plan
    if not cfg.lora_targets:
        raise ConfigError("lora_text is set but lora_targets is empty (try ['q_proj', 'v_proj'])")
    for target in cfg.lora_targets:
        prefix, _, name = target.rpartition(".")
        name = LORA_ALIASES.get(name, name)
        if name not in LORA_LAYERS or (prefix and prefix not in _TOWER_PREFIXES):
            raise ConfigError(
                f"lora_targets: {target!r} is not a layer of CLIP's encoders; use "
                f"{', '.join(LORA_LAYERS)} (both towers, or text only when unfreeze_image is "
                "set), or text.q_proj / image.q_proj for one tower"
            )
        if prefix:
            towers = [_TOWER_PREFIXES[prefix]]
        else:
            towers = ["text"] if cfg.unfreeze_image else ["text", "image"]
        if "image" in towers and cfg.unfreeze_image:
            raise ConfigError(
                f"lora_targets: {target!r} puts LoRA on the image tower, which unfreeze_image "
                "already trains; choose one of the two for the image tower"
            )
        for tower in towers:
            if name not in plan[tower]:
                plan[tower].append(name)
    return plan


def check_settings(cfg: TrainConfig) -> dict[str, list[str]]:
    """Refuse settings that cannot apply to a CLIP model; returns the LoRA plan."""
    cfg.validate()
    if not cfg.clip_model:
        raise ConfigError("train_clip needs clip_model = 'hf:<folder>'")
    if cfg.image_size:
        raise ConfigError(
            "image_size is fixed by the CLIP model's position embeddings; leave image_size = 0"
        )
    if cfg.init_from:
        raise ConfigError(
            "init_from warm-starts crossmodal heads; a clip_model run starts from the CLIP "
            "model's own projections, so drop init_from"
        )
    return lora_plan(cfg)


def load_clip(cfg: TrainConfig) -> HFClipEncoder:
    """The CLIP model, image processor and tokenizer, offline; a missing or incomplete folder
    is a configuration error that names the folder."""
    try:
        return load_hf_clip(cfg.clip_model, device="cpu")
    except ModelNotAvailable as exc:
        raise ConfigError(f"clip_model {cfg.clip_model!r}: {exc}") from None


# ---- images ------------------------------------------------------------------------------
class ClipResizer:
    """The checkpoint's image processor up to the crop, as `decode_split` wants a tower:
    `image_size` (the decode draft size) and `resize(PIL image) -> (S, S, 3) uint8`."""

    def __init__(self, processor: Any, model_size: int) -> None:
        self.processor = processor
        edge = _size_field(processor.size, "shortest_edge")
        # JPEG draft decoding must keep both sides >= what the processor resizes to
        self.image_size = max(model_size, int(edge or 0))
        self.model_size = model_size
        probe = self.resize(Image.new("RGB", (model_size + 9, model_size + 3)))
        if probe.shape != (model_size, model_size, 3):
            raise ConfigError(
                f"the CLIP image processor makes {probe.shape[1]}x{probe.shape[0]} images but "
                f"the vision tower expects {model_size}x{model_size}; fix "
                "preprocessor_config.json (crop_size) in the clip_model folder"
            )

    def resize(self, image: Image.Image) -> np.ndarray:
        out = self.processor(
            images=[image], do_rescale=False, do_normalize=False, return_tensors="np"
        )["pixel_values"][0]
        # transformers 5 keeps uint8 through resize + crop; older versions may hand back floats
        if out.dtype != np.uint8:
            out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(out.transpose(1, 2, 0))


def _size_field(size: Any, key: str) -> Any:
    if isinstance(size, dict):
        return size.get(key)
    return getattr(size, key, None)


class Normalizer:
    """[0, 1] pixels -> CLIP's input (per-channel mean / std of the checkpoint)."""

    def __init__(self, processor: Any, device: torch.device) -> None:
        self.mean = torch.tensor(processor.image_mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(processor.image_std, device=device).view(1, 3, 1, 1)

    def __call__(self, x01: torch.Tensor) -> torch.Tensor:
        return (x01 - self.mean) / self.std


def train_view(
    pixels: torch.Tensor, gen: torch.Generator, cfg: TrainConfig, norm: Normalizer
) -> torch.Tensor:
    # finetune.augment yields [-1, 1] (EfficientNet's scaling); map back to [0, 1] for CLIP
    return norm((augment(pixels, gen, cfg) + 1.0) * 0.5)


def eval_view(pixels: torch.Tensor, norm: Normalizer) -> torch.Tensor:
    return norm(pixels.float() / 255.0)


# ---- model set-up ------------------------------------------------------------------------
@dataclasses.dataclass
class ClipTrainable:
    """What learns in a CLIP run, and how to put the model in training mode."""

    modules: list[nn.Module]  # unfrozen layers / encoders, projections
    peft_model: Any | None  # the PeftModel wrapper when LoRA adapters were added
    lora: dict[str, list[str]]

    def train_mode(self, model: nn.Module) -> None:
        # frozen layers stay in eval mode so that their dropout does not move
        model.eval()
        for module in self.modules:
            module.train()
        for module in model.modules():
            if hasattr(module, "lora_A"):
                module.train()


def tower_modules(model: nn.Module, tower: str, top: int) -> list[nn.Module]:
    """Modules `unfreeze_<tower> = top` trains: the top layers + the final layer norm, or the
    whole encoder for -1 / top >= its depth (as our own towers do)."""
    if top == 0:
        return []
    encoder_name, _, norm_name = TOWERS[tower]
    encoder = getattr(model, encoder_name)
    layers = list(encoder.encoder.layers)
    if top < 0 or top >= len(layers):
        return [encoder]
    return [*layers[len(layers) - top :], getattr(encoder, norm_name)]


def prepare_clip(model: nn.Module, cfg: TrainConfig, plan: dict[str, list[str]]) -> ClipTrainable:
    """Freeze everything, add LoRA adapters, then unfreeze what the config says."""
    for p in model.parameters():
        p.requires_grad_(False)
    peft_model = None
    if plan["text"] or plan["image"]:
        from peft import LoraConfig, get_peft_model

        targets = []
        for tower, names in plan.items():
            encoder = TOWERS[tower][0]
            targets += [
                n
                for n, m in model.named_modules()
                if n.startswith(f"{encoder}.encoder.layers.")
                and n.rsplit(".", 1)[-1] in names
                and isinstance(m, nn.Linear)
            ]
        lora = LoraConfig(
            r=cfg.lora_text,
            # peft scales by alpha / r as a float; its annotation says int
            lora_alpha=cfg.lora_alpha,  # type: ignore[arg-type]
            lora_dropout=cfg.lora_dropout,
            target_modules=targets,  # full module names: exactly these layers, nothing else
        )
        torch.manual_seed(cfg.seed)  # LoRA's A matrices: the same start on every resume
        with warnings.catch_warnings():
            # transformers 5 deprecation warnings raised from inside peft: not ours to fix
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = get_peft_model(model, lora)
    modules: list[nn.Module] = [model.visual_projection, model.text_projection]  # type: ignore[list-item]
    modules += tower_modules(model, "image", cfg.unfreeze_image)
    modules += tower_modules(model, "text", cfg.unfreeze_text)
    for module in modules:
        for name, p in module.named_parameters():
            if "lora_" not in name:
                p.requires_grad_(True)
    model.logit_scale.requires_grad_(True)
    return ClipTrainable(modules, peft_model, plan)


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, list[nn.Parameter]]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if "lora_" in name:
            kind = "lora"
        elif name.startswith(("logit_scale", "visual_projection.", "text_projection.")):
            kind = "heads"
        else:
            kind = "image" if name.startswith("vision_model.") else "text"
        # no decay on LoRA factors (decay would pull the merged weights away from pretrained
        # ones), biases, norms and the temperature
        decay = "decay" if p.ndim >= 2 and kind != "lora" else "no_decay"
        groups.setdefault(kind, {}).setdefault(decay, []).append(p)
    lr = {"heads": cfg.lr, "image": cfg.image_lr, "text": cfg.text_lr, "lora": cfg.lora_lr}
    return [
        {
            "params": params,
            "lr": lr[kind],
            "name": f"{kind}/{decay}",
            "weight_decay": cfg.weight_decay if decay == "decay" else 0.0,
        }
        for kind, by_decay in groups.items()
        for decay, params in by_decay.items()
    ]


def recipe_name(cfg: TrainConfig, plan: dict[str, list[str]]) -> str:
    parts = []
    for tower, top in (("image", cfg.unfreeze_image), ("text", cfg.unfreeze_text)):
        if top:
            parts.append(f"{tower}: all layers" if top < 0 else f"{tower}: top {top} layers")
        if plan[tower]:
            parts.append(f"{tower}: LoRA r={cfg.lora_text} on {'/'.join(plan[tower])}")
    return "CLIP fine-tune (" + "; ".join(parts or ["projections only"]) + ")"


# ---- text and embeddings -----------------------------------------------------------------
class Captions:
    """Captions tokenised once; batches are cut to their longest caption."""

    def __init__(self, clip: HFClipEncoder, texts: list[str], device: torch.device) -> None:
        tokens = clip.tokenize(texts)
        self.ids = tokens["input_ids"].to(device)
        self.mask = tokens["attention_mask"].to(device)

    def __len__(self) -> int:
        return len(self.ids)

    def features(self, model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        mask = self.mask[idx]
        length = int(mask.sum(1).max())
        out = model.get_text_features(  # type: ignore[operator]
            input_ids=self.ids[idx][:, :length], attention_mask=mask[:, :length]
        )
        return F.normalize(_features(out).float(), dim=-1)


def image_features(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    out = model.get_image_features(pixel_values=pixels)  # type: ignore[operator]
    return F.normalize(_features(out).float(), dim=-1)


def embed_split(
    model: nn.Module,
    data: SplitData,
    captions: Captions,
    norm: Normalizer,
    device: torch.device,
    autocast: Any,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors for every image (centre view) and caption of a split, on the CPU."""
    model.eval()
    return embed_in_batches(
        data.pixels,
        len(captions),
        lambda pixels: image_features(model, eval_view(pixels, norm)),
        lambda idx: captions.features(model, idx),
        device,
        autocast,
        batch_size,
    )


# ---- checkpoints and saving --------------------------------------------------------------
def _learning_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor that training changes (parameters that learn; CLIP has no BatchNorm)."""
    return {k: p.detach().cpu().clone() for k, p in model.named_parameters() if p.requires_grad}


def save_best(
    clip: HFClipEncoder,
    model: nn.Module,
    trainable: ClipTrainable,
    cfg: TrainConfig,
    path: Path,
    info: dict[str, Any],
) -> None:
    """An ordinary Hugging Face CLIP folder: LoRA merged, model + processor + tokenizer."""
    if trainable.peft_model is not None:
        model = trainable.peft_model.merge_and_unload()
    model.to("cpu").eval()
    if cfg.tower_weights_dtype == "float16":
        model.half()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path), safe_serialization=True)  # type: ignore[operator]
    clip.image_processor.save_pretrained(str(path))
    clip.tokenizer.save_pretrained(str(path))
    # beside config.json (which belongs to transformers): where this model came from
    (path / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")


# ---- the run -----------------------------------------------------------------------------
def _open_clip_run(cfg: TrainConfig, resume: bool, base_fingerprint: str) -> dict[str, Any] | None:
    """The run's checkpoint (or None for a fresh run); --resume is refused in CLIP's words
    when the base weights changed since the run started."""
    try:
        return open_run(cfg, resume, extra={"clip_fingerprint": base_fingerprint})
    except ConfigError as exc:
        if "another clip_fingerprint" in str(exc):
            raise ConfigError(
                f"--resume: the weights in {cfg.clip_model} changed since the run in "
                f"{Path(cfg.out)} started"
            ) from None
        raise


def _decode_clip_splits(
    cfg: TrainConfig, train_ds: Any, val_ds: Any, resizer: ClipResizer, show_progress: bool
) -> tuple[SplitData, SplitData]:
    """The train and val images decoded once at CLIP's size (uint8, on the CPU)."""
    # decode_split only asks its "tower" for image_size and resize(): the CLIP processor's
    train = decode_split(
        train_ds,
        resizer,  # type: ignore[arg-type]
        cfg.max_train_images,
        cfg.workers,
        show_progress,
        text_views=cfg.text_views,
    )
    val = decode_split(
        val_ds,
        resizer,  # type: ignore[arg-type]
        cfg.max_val_images,
        cfg.workers,
        show_progress,
    )
    return train, val


def _clip_trainer(
    model: nn.Module,
    trainable: ClipTrainable,
    cfg: TrainConfig,
    *,
    scaler: Any,
    autocast: Any,
    device: torch.device,
    norm: Normalizer,
    train: SplitData,
    cpu_split: SplitData,
    train_text: Captions,
    val: SplitData,
    val_text: Captions,
) -> Trainer:
    """The shared training loop's view of a CLIP run: optimiser, schedule, one batch's loss
    (logit scale clamped after each step as CLIP does), val recall and what to checkpoint."""
    hf_config: Any = cast(Any, model).config  # a transformers CLIPConfig
    optim = torch.optim.AdamW(_param_groups(model, cfg))
    sched = warmup_cosine(
        optim,
        optimizer_steps_per_epoch(cpu_split.caption_image, cfg),
        cfg.epochs,
        cfg.warmup_epochs,
    )
    logit_scale: torch.Tensor = model.logit_scale  # type: ignore[assignment]
    loss_fn = ClipLoss()

    def batch_step(batch: torch.Tensor, gen: torch.Generator) -> Step:
        batch = batch.to(device)
        images = train.caption_image[batch]
        with autocast():
            img = image_features(model, train_view(train.pixels[images], gen, cfg, norm))
            txt = train_text.features(model, batch)
            loss = loss_fn(img.float(), txt.float(), logit_scale, group=images)
        return Step(loss, images, img)

    def clamp() -> None:
        with torch.no_grad():
            logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)

    def evaluate_val() -> dict[str, dict[str, float]]:
        val_img, val_txt = embed_split(model, val, val_text, norm, device, autocast)
        return evaluate(val_img, val_txt, val.caption_image)

    return Trainer(
        model=model,
        optim=optim,
        sched=sched,
        scaler=scaler,
        train_mode=lambda: trainable.train_mode(model),
        batch_step=batch_step,
        after_step=clamp,
        evaluate_val=evaluate_val,
        temperature=lambda: float(1 / logit_scale.detach().exp()),
        learning_state=lambda: _learning_state(model),
        make_batches=lambda epoch, emb: epoch_batches(cpu_split, cfg, epoch, emb),
        n_images=len(train.pixels),
        embed_dim=int(hf_config.projection_dim),
    )


def _training_info(
    cfg: TrainConfig,
    plan: dict[str, list[str]],
    train: SplitData,
    best: dict[str, Any],
    seconds: float,
    device: torch.device,
) -> dict[str, Any]:
    """training_info.json of the saved model: where it came from and how it was selected."""
    return {
        "base_model": cfg.clip_model,
        "trained_on": f"{cfg.dataset} {cfg.train_split} ({len(train.pixels)} images, "
        f"{len(train.captions)} captions)",
        "selected_on": f"{cfg.val_split} mean recall {best['score']:.2f} at epoch {best['epoch']}",
        "recipe": recipe_name(cfg, plan),
        "seed": cfg.seed,
        "train_seconds": seconds,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
    }


def train_clip(cfg: TrainConfig, resume: bool = False, show_progress: bool = True) -> TrainResult:
    """Fine-tune the CLIP model `cfg.clip_model` end to end; saves `<out>/best` (a Hugging
    Face CLIP folder, selected on val mean recall), `<out>/config.toml`, `<out>/metrics.jsonl`,
    `<out>/summary.json` and `<out>/checkpoint.pt` after every epoch."""
    plan = check_settings(cfg)
    start_time = time.perf_counter()
    out = Path(cfg.out)
    device = runtime.resolve_device(cfg.device)
    autocast, scaler = runtime.autocast(device, cfg.precision)

    clip = load_clip(cfg)
    # taken before training touches the weights (it hashes the folder's files when it can)
    base_fingerprint = clip.fingerprint
    ckpt = _open_clip_run(cfg, resume, base_fingerprint)
    model: nn.Module = clip.model
    hf_config: Any = cast(Any, model).config  # a transformers CLIPConfig
    model_size = int(hf_config.vision_config.image_size)
    resizer = ClipResizer(clip.image_processor, model_size)
    trainable = prepare_clip(model, cfg, plan)
    train_ds, val_ds = caption_splits(cfg)

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(to_toml(cfg))
    train, val = _decode_clip_splits(cfg, train_ds, val_ds, resizer, show_progress)
    train_text = Captions(clip, train.captions, device)
    val_text = Captions(clip, val.captions, device)
    norm = Normalizer(clip.image_processor, device)
    model.to(device)
    cpu_split = dataclasses.replace(train)
    train.pixels = train.pixels.to(device)
    train.caption_image = train.caption_image.to(device)
    trainer = _clip_trainer(
        model,
        trainable,
        cfg,
        scaler=scaler,
        autocast=autocast,
        device=device,
        norm=norm,
        train=train,
        cpu_split=cpu_split,
        train_text=train_text,
        val=val,
        val_text=val_text,
    )
    best = fit(
        trainer,
        cfg,
        ckpt,
        extra_checkpoint={"clip_fingerprint": base_fingerprint},
        desc="fine-tuning CLIP",
        show_progress=show_progress,
        start_time=start_time,
    )
    seconds = round(time.perf_counter() - start_time, 1)
    info = _training_info(cfg, plan, train, best, seconds, device)
    save_best(clip, model, trainable, cfg, out / "best", info)
    summary = {**best, "seconds": seconds, "skipped_images": train.skipped + val.skipped}
    return write_summary(out, summary, best, seconds)
