"""A layer's weights: ``add_weight``, the ``weights``/``trainable_weights`` lists, freezing, ``get_weights``/
``set_weights``, ``stateless_call`` and moving weights to a device.

``weights`` lists the layer's own weights (in ``add_weight`` order, then Parameters assigned as attributes),
then its sublayers' (in attribute order), without duplicates. A frozen layer (``trainable = False``) lists
every weight below it as non-trainable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shendu import backend
from shendu import initializers as initializers_module
from shendu import regularizers as regularizers_module
from shendu.autograd.tensor import Parameter, Tensor
from shendu.layers.shapes import normalize_shape
from shendu.layers.tracking import Trackable, bump_version
from shendu.utils.weight_budget import charge


class WeightsMixin(Trackable):
    """The weight-related part of ``Layer`` (see the module docstring)."""

    _trainable: bool
    _dtype: np.dtype
    name: str
    built: bool
    #: where weights (and converted NumPy inputs) live after ``to(device)``; None: where they were made (CPU)
    _device: str | None = None

    def _collect(self, kind: str, seen: set[int]) -> list[Parameter]:
        frozen = not self._trainable
        if kind == "trainable" and frozen:
            return []
        out = []
        for p in self._own_params():
            if id(p) in seen:
                continue
            if kind == "all" or (kind == "trainable" and p.trainable) or (kind == "non_trainable" and
                                                                           (frozen or not p.trainable)):
                seen.add(id(p))
                out.append(p)
        sub_kind = "all" if (kind == "non_trainable" and frozen) else kind
        for layer in self._sublayers():
            out.extend(layer._collect(sub_kind, seen))
        return out

    @property
    def weights(self) -> list[Parameter]:
        """All weights: this layer's (in creation order), then its sublayers'."""
        return self._collect("all", set())

    @property
    def trainable_weights(self) -> list[Parameter]:
        return self._collect("trainable", set())

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        return self._collect("non_trainable", set())

    @property
    def variables(self) -> list[Parameter]:
        return self.weights

    @property
    def trainable_variables(self) -> list[Parameter]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list[Parameter]:
        return self.non_trainable_weights

    def parameters(self):
        """The trainable weights, as an iterator (PyTorch style: ``SGD(params=model.parameters())``)."""
        return iter(self.trainable_weights)

    def named_parameters(self):
        """(name, parameter) pairs of the trainable weights; names are 'layer/weight' paths."""
        return ((p.name, p) for p in self.trainable_weights)

    def zero_grad(self) -> None:
        """Clear ``.grad`` of every weight."""
        for p in self.weights:
            p.grad = None

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freeze (False) or unfreeze this layer and every sublayer; frozen weights get no gradient."""
        value = bool(value)
        object.__setattr__(self, "_trainable", value)
        bump_version()
        for p in self._own_params():
            p.requires_grad = value and p.trainable
        for layer in self._sublayers():
            layer.trainable = value

    def count_params(self) -> int:
        """The number of scalars in all weights (the layer must be built)."""
        if not self.built:
            raise ValueError(f"layer '{self.name}' is not built yet, so it has no weights to count; call it on "
                             "data or give the first layer input_shape=...")
        return int(sum(p.data.size for p in self.weights))

    def add_weight(self, name: str | None = None, shape: Any = None, initializer: Any = "glorot_uniform",
                   regularizer: Any = None, trainable: bool = True, constraint: Any = None,
                   dtype: Any = None) -> Parameter:
        """Create a weight: a Parameter named 'layer/name', initialised, registered in ``weights``.

        ``regularizer(w)`` adds to ``losses``; ``constraint(w)`` is applied by optimisers after each update.
        A non-trainable weight (moving statistics) gets ``requires_grad=False``.
        """
        if name is not None and not isinstance(name, str):
            raise TypeError(f"layer '{self.name}': add_weight's first argument is the name (a string), got {name!r}; "
                            "pass the shape by keyword: add_weight(shape=..., initializer=...)")
        shape = () if shape is None else normalize_shape(shape, f"layer '{self.name}': add_weight shape")
        if any(d is None or d < 0 for d in shape):
            raise ValueError(f"layer '{self.name}': weight '{name}' needs a fully known shape, got {shape}")
        dtype = self._dtype if dtype is None else np.dtype(dtype)
        charge(math.prod(shape) * np.dtype(dtype).itemsize, f"layer '{self.name}' weight '{name}' {shape}")
        init = initializers_module.get(initializer)
        value = init(shape, dtype=dtype)
        if isinstance(value, Tensor):
            value = value.data
        if name is None:
            name = f"weight_{len(self._own_weights)}"
        value = backend.as_array(np.asarray(value, dtype=dtype).reshape(shape), device=self._device)
        p = Parameter(value, requires_grad=bool(trainable) and self._trainable, name=f"{self.name}/{name}")
        p.trainable = bool(trainable)
        p.regularizer = regularizers_module.get(regularizer)
        p.constraint = constraint
        self._own_weights.append(p)
        bump_version()
        return p

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights as NumPy arrays, in ``weights`` order."""
        return [backend.to_numpy(p.data).copy() for p in self.weights]

    def set_weights(self, weights: list[Any]) -> None:
        """Set every weight from arrays in ``weights`` order (shapes must match)."""
        params = self.weights
        if len(weights) != len(params):
            raise ValueError(f"layer '{self.name}' has {len(params)} weights "
                             f"({', '.join(p.name or '?' for p in params)}) but set_weights received {len(weights)}")
        for p, w in zip(params, weights):
            w = w.data if isinstance(w, Tensor) else w
            w = np.asarray(backend.to_numpy(w))
            if w.shape != p.shape:
                raise ValueError(f"layer '{self.name}': weight '{p.name}' has shape {p.shape} but set_weights "
                                 f"received shape {w.shape}")
        for p, w in zip(params, weights):
            w = w.data if isinstance(w, Tensor) else w
            p.data[...] = backend.as_array(w, dtype=p.dtype, device=p.device)
            p._version += 1

    def stateless_call(self, trainable_weights: list[Any], non_trainable_weights: list[Any], *args: Any,
                       **kwargs: Any) -> tuple[Any, list[Any]]:
        """Call the layer with the given tensors standing in for ``trainable_weights`` and
        ``non_trainable_weights`` (same order); returns ``(outputs, non_trainable_weights)`` (Keras 3).

        The stand-ins receive the gradients, so ``shendu.gradcheck`` can check a layer's weights.
        """
        originals = self.trainable_weights + self.non_trainable_weights
        stand_ins = list(trainable_weights) + list(non_trainable_weights)
        if len(stand_ins) != len(originals):
            raise ValueError(f"layer '{self.name}'.stateless_call: expected {len(self.trainable_weights)} trainable "
                             f"and {len(self.non_trainable_weights)} non-trainable weights, received "
                             f"{len(trainable_weights)} and {len(non_trainable_weights)}")
        mapping = {id(p): t for p, t in zip(originals, stand_ins)}
        swapped = []
        for layer in self._all_layers():
            for name in list(layer.__dict__.get("_tracked", ())):
                value = layer.__dict__.get(name)
                if id(value) in mapping:
                    swapped.append((layer, name, value))
                    object.__setattr__(layer, name, mapping[id(value)])
        try:
            outputs = self(*args, **kwargs)
        finally:
            for layer, name, value in swapped:
                object.__setattr__(layer, name, value)
        return outputs, list(non_trainable_weights)

    def to(self, device: str) -> Any:
        """Move every weight to ``device`` ('cpu' or 'cuda') in place; NumPy inputs then follow (PyTorch style)."""
        for layer in self._all_layers():
            object.__setattr__(layer, "_device", device)
        for p in self.weights:
            p.data = backend.as_array(p.data, device=device)
            p.grad = None
        return self
