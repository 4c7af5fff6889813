"""Augmentations as batched tensor ops on the training device (torchvision's wheels do not
pair with the CPU torch build here)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from crossmodal.models.small import normalize_uint8
from crossmodal.train.ssl.config import SSLConfig

# RGB <-> YIQ: hue jitter is a rotation of the chroma plane (I, Q), which keeps luma intact.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def random_resized_crop(
    pixels: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_prob: float = 0.5,
) -> torch.Tensor:
    """Per-sample random crop (area fraction in `scale`, aspect in `ratio`) resized back to the
    input size, and a horizontal flip, as one affine `grid_sample` over the batch.

    Random numbers come from a CPU generator and are moved over, so a run is reproducible on
    either device from the same seed.
    """
    n = pixels.shape[0]
    r = torch.rand(n, 5, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * r[:, 0]
    log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * r[:, 1]
    aspect = torch.exp(log_ratio)
    # crop width and height as fractions of the side; a too-wide crop is clipped to the image
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - w) * (2 * r[:, 2] - 1)
    cy = (1 - h) * (2 * r[:, 3] - 1)
    flip = torch.where(r[:, 4] < flip_prob, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    theta = theta.to(pixels.device, pixels.dtype)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    return F.grid_sample(
        pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def color_jitter(
    pixels: torch.Tensor,
    generator: torch.Generator,
    strength: float = 0.4,
    hue: float = 0.1,
    prob: float = 0.8,
    gray_prob: float = 0.2,
) -> torch.Tensor:
    """SimSiam's colour distortion on [0, 1] pixels: brightness, contrast and saturation by a
    factor in [1 - s, 1 + s] and hue by up to `hue` of a turn (with probability `prob`), then
    grayscale with probability `gray_prob`. A fixed order keeps it one pass of tensor ops."""
    n = pixels.shape[0]
    device, dtype = pixels.device, pixels.dtype
    r = torch.rand(n, 6, generator=generator)
    on = (r[:, 0] < prob).float()

    def factor(u: torch.Tensor) -> torch.Tensor:
        f = 1 + strength * (2 * u - 1)
        return (on * f + (1 - on)).to(device, dtype).view(n, 1, 1, 1)

    luma = _LUMA.to(device, dtype).view(1, 3, 1, 1)
    x = (pixels * factor(r[:, 1])).clamp(0, 1)  # brightness
    mean = (x * luma).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * factor(r[:, 2]) + mean).clamp(0, 1)  # contrast
    gray = (x * luma).sum(1, keepdim=True)
    x = ((x - gray) * factor(r[:, 3]) + gray).clamp(0, 1)  # saturation
    angle = on * hue * (2 * r[:, 4] - 1) * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    to_yiq = _RGB_TO_YIQ
    matrix = (torch.linalg.inv(to_yiq) @ rot @ to_yiq).to(device, dtype)  # (n, 3, 3)
    x = torch.einsum("nij,njhw->nihw", matrix, x).clamp(0, 1)  # hue
    gray = (x * luma).sum(1, keepdim=True).expand_as(x)
    to_gray = (r[:, 5] < gray_prob).to(device).view(n, 1, 1, 1)
    return torch.where(to_gray, gray, x)


def simsiam_view(pixels: torch.Tensor, generator: torch.Generator, cfg: SSLConfig) -> torch.Tensor:
    """uint8 batch -> one augmented view in [-1, 1] (the towers' input scaling)."""
    x = pixels.float() / 255.0
    x = random_resized_crop(x, generator, scale=(cfg.min_crop_scale, 1.0))
    x = color_jitter(x, generator)
    return x * 2 - 1


def align_view(pixels: torch.Tensor, generator: torch.Generator, cfg: SSLConfig) -> torch.Tensor:
    """Milder augmentation for alignment: a caption describes the whole picture, so crops keep
    most of it and colours are left alone ("a red shirt")."""
    x = normalize_uint8(pixels)
    return random_resized_crop(x, generator, scale=(cfg.align_min_crop_scale, 1.0))
