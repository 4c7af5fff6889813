"""Encoders: pretrained towers, our dual encoder, CLIP backends, and the name registry."""

from crossmodal.models.base import Encoder, l2_normalize
from crossmodal.models.registry import BUILTIN_MODELS, load_model

__all__ = ["BUILTIN_MODELS", "Encoder", "l2_normalize", "load_model"]
