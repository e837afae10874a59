"""The weight budget of a file being loaded: a config cannot build more weights than the file stores.

A ``.shendu`` file stores every weight of its model, so the bytes of its ``weights.safetensors`` entry are
exactly what rebuilding the model from its config may allocate. While :func:`weight_budget` is active (during
``load_model``), ``Layer.add_weight`` charges each weight's bytes *before* allocating it
(:mod:`shendu.utils.weight_budget`); as soon as the weights asked for exceed the budget the load
stops with a :class:`FormatError`. So a small hostile config that stacks 96 ``Dense(4096)`` layers is refused
after its first layer instead of after allocating gigabytes. Outside a load nothing is checked.
The budget is per thread, so two threads may load files at the same time.

Before anything is built, :func:`implied_weights` reads a lower bound of the weights a config implies from
the configs of shendu's weight-holding layers (a table, one line per layer kind: ``Dense(units)`` holds at
least ``units`` weights, ``LSTM(units)`` at least ``4 * units**2``, ...); a config that implies more weights
than the file stores is refused in milliseconds. Layers not in the table count as zero there and are caught
by the budget while building.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from shendu.utils.weight_budget import weight_budget
from shendu.utils.weights_io import fail

__all__ = ["check_implied_weights", "implied_weights", "weight_budget"]

_STATE = threading.local()


def _int(config: dict[str, Any], key: str, default: int = 1) -> int:
    value = config.get(key, default)
    return value if type(value) is int and value > 0 else default


def _kernel(config: dict[str, Any]) -> int:
    size = config.get("kernel_size", 1)
    sizes = size if isinstance(size, list) else [size]
    return math.prod(d if type(d) is int and d > 0 else 1 for d in sizes)


#: layer class -> the fewest weights a layer with this config can hold, whatever its input
_MIN_WEIGHTS: dict[str, Callable[[dict[str, Any]], int]] = {
    "Dense": lambda c: _int(c, "units"),                                   # kernel (in, units)
    "Conv1D": lambda c: _int(c, "filters") * _kernel(c),                   # kernel (*k, in / groups, filters)
    "Conv2D": lambda c: _int(c, "filters") * _kernel(c),
    "Conv2DTranspose": lambda c: _int(c, "filters") * _kernel(c),
    "DepthwiseConv2D": lambda c: _int(c, "depth_multiplier") * _kernel(c),  # kernel (*k, in, multiplier)
    "SeparableConv2D": lambda c: _int(c, "depth_multiplier") * _kernel(c) + _int(c, "filters"),
    "Embedding": lambda c: _int(c, "input_dim") * _int(c, "output_dim"),    # table (input_dim, output_dim)
    "SimpleRNN": lambda c: _int(c, "units") ** 2,                           # recurrent kernel (units, units)
    "GRU": lambda c: 3 * _int(c, "units") ** 2,                             # (units, 3 units)
    "LSTM": lambda c: 4 * _int(c, "units") ** 2,                            # (units, 4 units)
    "MultiHeadAttention": lambda c: _int(c, "num_heads") * _int(c, "key_dim"),  # query kernel (in, heads, key)
}


def implied_weights(spec: Any) -> int:
    """A lower bound of the number of weights the layers in a config (nested ones too) will hold."""
    total, stack = 0, [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            config = node.get("config")
            if isinstance(node.get("class_name"), str) and isinstance(config, dict):
                rule = _MIN_WEIGHTS.get(node["class_name"])
                total += rule(config) if rule is not None else 0
                if node["class_name"] == "Bidirectional" and isinstance(config.get("layer"), dict):
                    stack.append(config["layer"])  # a forward and a backward copy
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return total


def check_implied_weights(path: Any, spec: Any, stored: int) -> None:
    """Refuse a config that implies more weights than the ``stored`` ones, before anything is built."""
    implied = implied_weights(spec)
    if implied > stored:
        raise fail(path, f"the model's config implies at least {implied:,} weights, the file stores {stored:,}",
                   "the config does not match the weights, or the file is hostile")
