"""The base layer's public names, in one place: ``Layer`` (:mod:`shendu.layers.base_layer`), ``Input`` and
``InputLayer`` (:mod:`shendu.layers.input_layer`), ``InputSpec``, the functional graph's ``Node`` and
``SymbolicTensor``, the class registry and the automatic names.

Each lives in a module with one job (the list is in :mod:`shendu.layers.base_layer`'s docstring); this
module only gathers them, so ``from shendu.layers.layer import Layer`` keeps working.
"""

from __future__ import annotations

from shendu.layers.base_layer import Layer
from shendu.layers.input_layer import Input, InputLayer
from shendu.layers.input_spec import InputSpec
from shendu.layers.names import reset_name_counters, unique_name
from shendu.layers.registry import LAYER_REGISTRY, get_layer_class, registered_name
from shendu.layers.symbolic import Node, SymbolicTensor

__all__ = ["LAYER_REGISTRY", "Input", "InputLayer", "InputSpec", "Layer", "Node", "SymbolicTensor",
           "get_layer_class", "registered_name", "reset_name_counters", "unique_name"]
