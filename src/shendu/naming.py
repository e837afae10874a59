"""Keras's automatic names, shared by layers, losses, metrics and optimisers."""

from __future__ import annotations

import re


def snake_case(name: str) -> str:
    """'BatchNormalization' -> 'batch_normalization', 'Conv2D' -> 'conv2d', 'AdamW' -> 'adam_w'."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
