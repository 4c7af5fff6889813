"""Train a small CLIP from scratch: self-supervised pre-training of each tower, then alignment.

The prototype recipe of issue 4 (item 4), with no pretrained weights anywhere:

1. SimSiam (Chen & He, 2021) pre-trains the small CNN on the training images alone
   (`image_stage`).
2. Masked-language modelling (BERT's 15% with 80/10/10) pre-trains the small Transformer on
   the training captions alone (`text_stage`).
3. InfoNCE (CLIP's symmetric loss, learnable temperature) aligns both towers and their
   projection heads on the image-caption pairs, early-stopped on val mean recall
   (`align_stage`).

Each stage runs on the shared trainer loop (`crossmodal.train.loop.run_epochs`), so each has
a metrics log and a checkpoint per epoch, and `train_ssl(cfg, resume=True)` continues a killed
run. The result is an ordinary dual-encoder folder (`<out>/best`) whose config names the small
towers and whose weights include them, so `crossmodal eval --model <out>/best` works. With a
few thousand pairs and minutes of CPU it scores far below the pretrained-tower models: it is
the from-scratch baseline those are measured against, not a replacement.

Images are decoded once into a uint8 tensor at the working size and augmented on the training
device with tensor ops (`augment`).
"""

from crossmodal.train.ssl.align_stage import align, embed_tensors, epoch_captions, evaluate_tensors
from crossmodal.train.ssl.augment import align_view, color_jitter, random_resized_crop, simsiam_view
from crossmodal.train.ssl.config import STAGES, SSLConfig, model_config
from crossmodal.train.ssl.data import SplitTensors, decode_images, load_split
from crossmodal.train.ssl.image_stage import SimSiam, output_std, pretrain_image_tower, simsiam_loss
from crossmodal.train.ssl.run import train_ssl
from crossmodal.train.ssl.stage import StageFiles
from crossmodal.train.ssl.text_stage import (
    MLMHead,
    length_bucketed_batches,
    mask_tokens,
    mlm_loss,
    pretrain_text_tower,
)

__all__ = [
    "STAGES",
    "MLMHead",
    "SSLConfig",
    "SimSiam",
    "SplitTensors",
    "StageFiles",
    "align",
    "align_view",
    "color_jitter",
    "decode_images",
    "embed_tensors",
    "epoch_captions",
    "evaluate_tensors",
    "length_bucketed_batches",
    "load_split",
    "mask_tokens",
    "mlm_loss",
    "model_config",
    "output_std",
    "pretrain_image_tower",
    "pretrain_text_tower",
    "random_resized_crop",
    "simsiam_loss",
    "simsiam_view",
    "train_ssl",
]
