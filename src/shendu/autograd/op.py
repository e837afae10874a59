"""``Op``: the base class of every differentiable operation.

An op is one small class with ``forward`` and ``backward`` side by side::

    class Exp(Op):
        '''y = exp(x);   dx = gy * y'''
        saves_output = True

        def forward(self, x):
            return get_array_module(x).exp(x)

        def backward(self, gy, x, y):
            return gy * y

``forward`` receives ndarrays and returns an ndarray (or a tuple for several outputs).
``backward(gy, *inputs, y)`` receives the upstream gradient, the inputs and the output and returns
one gradient per input (``None`` for inputs that get none). It is written with operators and
``shendu`` functions only, which accept raw arrays and Tensors alike: during an ordinary backward
it runs on raw arrays (fast, nothing recorded); with ``create_graph=True`` the engine hands it
Tensors instead, so the same lines record the backward pass and give higher-order gradients.
Gradients are summed back to each input's shape (un-broadcast) by the engine, in one place.

Calling an op with no Tensor among its inputs just returns ``forward``'s array.
"""

from __future__ import annotations

import weakref
from typing import Any

from shendu.autograd.grad_mode import is_grad_enabled
from shendu.autograd.tensor import Tensor
from shendu.backend import ensure_array

#: Every op class by name; tests walk it to make sure each one is gradient-checked.
OP_REGISTRY: dict[str, type[Op]] = {}


class Op:
    """Base class: subclasses define ``forward`` and ``backward`` (see the module docstring)."""

    #: keep the forward output for backward (set by ops whose derivative reuses y)
    saves_output = False
    #: ops that are not differentiable (their outputs never require grad)
    differentiable = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            OP_REGISTRY[cls.__name__] = cls

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def backward(self, gy: Any, *inputs_and_output: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def __call__(self, *inputs: Any) -> Any:
        arrays = []
        tensors = False
        record = False
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                tensors = True
                if x.requires_grad:
                    record = True
            else:
                arrays.append(x)
        y = self.forward(*arrays)
        if not tensors:
            return y
        record = record and self.differentiable and is_grad_enabled()
        multi = type(y) is tuple
        outputs = tuple(_new_tensor(o, record) for o in y) if multi else (_new_tensor(y, record),)
        if record:
            self.inputs = inputs
            self.arrays = arrays
            self.needs_grad = [isinstance(x, Tensor) and x.requires_grad for x in inputs]
            self.versions = [x._version if isinstance(x, Tensor) else 0 for x in inputs]
            self.generation = gen = max(x.generation for x in inputs if isinstance(x, Tensor)) + 1
            self.outputs = [weakref.ref(o) for o in outputs]
            if self.saves_output:
                self.y = tuple(o.data for o in outputs) if multi else outputs[0].data
            for i, o in enumerate(outputs):
                o.creator = self
                o.output_index = i
                o.generation = gen
        return outputs if multi else outputs[0]

    def release(self) -> None:
        """Free what backward needed (after a backward without ``retain_graph``)."""
        generation = self.generation
        self.__dict__.clear()
        self.generation = generation
        self.inputs = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def raw(x: Any) -> Any:
    """The array behind ``x`` (a Tensor's data, or ``x`` itself): for masks and shapes in backward rules."""
    return x.data if isinstance(x, Tensor) else x


def _new_tensor(data: Any, requires_grad: bool) -> Tensor:
    t = Tensor.__new__(Tensor)
    t.data = ensure_array(data)
    t.grad = None
    t.requires_grad = requires_grad
    t.creator = None
    t.output_index = 0
    t.generation = 0
    t._version = 0
    t._retain_grad = False
    t.name = None
    return t
