"""``Op``: the base class of every differentiable operation.

An op is one small class with ``forward`` and ``backward`` side by side::

    class ExpOp(Op):
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

Calling an op with no Tensor among its inputs just returns ``forward``'s array. When a Tensor is among
them, NumPy scalars (``np.float64(2)``) are passed on as Python scalars, so they take the tensor's dtype.
"""

from __future__ import annotations

import weakref
from threading import get_ident
from typing import Any

import numpy as np

from shendu.autograd.grad_mode import is_grad_enabled
from shendu.autograd.tensor import Tensor

#: shendu's own op classes (the derivative table) by name; tests walk it to make sure each one is
#: gradient-checked. Only classes defined in the shendu package are listed, and a name taken twice there is an
#: error. An op defined elsewhere (yours, a test's) works the same but is not listed, so it can never replace
#: a built-in op that shares its name.
OP_REGISTRY: dict[str, type[Op]] = {}

#: set by ``shendu.layers`` when it is imported: ``handler(op, inputs)`` records an op called on a functional
#: model's symbolic tensors as a node of its graph (autograd ranks below layers, so layers registers itself)
symbolic_handler: Any = None


class SymbolicValue:
    """Marker base of a functional model's placeholder tensors (``shendu.layers.symbolic.SymbolicTensor``): an op
    called on one is recorded by :data:`symbolic_handler` before any of its forward runs."""

    __slots__ = ()


_GRAPH_INPUTS = (Tensor, SymbolicValue)  # one isinstance per input finds either, so the raw path costs the same


#: recorders of the ops called in a thread, by thread id (``shendu.models.step_plan`` records one training step
#: of a model to replay it): empty nearly always, so the check on every call is one truth test
_RECORDERS: dict[int, Any] = {}


def start_recording(recorder: Any) -> None:
    """Hand every op called in this thread to ``recorder.add(op, config, inputs, outputs, in_graph)``, and tell
    ``recorder.unrecorded()`` about ops that ran on raw arrays, until :func:`stop_recording`."""
    _RECORDERS[get_ident()] = recorder


def stop_recording() -> None:
    _RECORDERS.pop(get_ident(), None)


def _is_symbolic(inputs: tuple) -> bool:
    return any(getattr(x, "is_symbolic", False) for x in inputs)


class Op:
    """Base class: subclasses define ``forward`` and ``backward`` (see the module docstring)."""

    #: keep the forward output for backward (set by ops whose derivative reuses y)
    saves_output = False
    #: ops that are not differentiable (their outputs never require grad)
    differentiable = True
    #: set when an output called ``retain_grad()``
    retains_grad = False
    #: multi-output ops whose backward takes None for the gradient of an output nobody used (else: zeros)
    missing_grads_as_none = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("_") or not cls.__module__.startswith("shendu."):
            return
        held = OP_REGISTRY.get(cls.__name__)
        if held is not None and (held.__module__, held.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"op class name {cls.__name__!r} of {cls.__module__} is already taken by "
                            f"{held.__module__}.{held.__qualname__}; every shendu op needs its own name")
        OP_REGISTRY[cls.__name__] = cls  # (the same class defined again, as by importlib.reload, replaces itself)

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def backward(self, gy: Any, *inputs_and_output: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def __call__(self, *inputs: Any) -> Any:
        for x in inputs:
            if isinstance(x, _GRAPH_INPUTS):
                if isinstance(x, SymbolicValue) and symbolic_handler is not None:
                    return symbolic_handler(self, inputs)
                break
        else:  # raw arrays in (a backward without create_graph): raw array out, nothing recorded
            if _RECORDERS and get_ident() in _RECORDERS:
                _RECORDERS[get_ident()].unrecorded()
            try:  # (free when nothing raises: the hot path of every backward stays as it was)
                return self.forward(*inputs)
            except Exception:  # symbolic tensors nested in a list argument are found only here
                if symbolic_handler is not None and _is_symbolic(inputs):
                    return symbolic_handler(self, inputs)
                raise
        # one pass over the inputs collects what forward and backward need. A NumPy scalar meeting a tensor
        # acts like a Python scalar (as in PyTorch): np.float64 must not turn float32 data into float64
        arrays, needs_grad, versions, generation, record = [], [], [], 0, False
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                versions.append(x._version)
                if x.requires_grad:
                    record = True
                    needs_grad.append(True)
                else:
                    needs_grad.append(False)
                if x.generation > generation:
                    generation = x.generation
            else:
                arrays.append(x.item() if isinstance(x, np.generic) else x)
                needs_grad.append(False)
                versions.append(None)
        recorder = _RECORDERS.get(get_ident()) if _RECORDERS else None
        if recorder is not None:
            config = dict(self.__dict__)  # the op's own arguments, before forward adds what it keeps
        y = self.forward(*arrays)
        multi = type(y) is tuple
        if not (record and self.differentiable and is_grad_enabled()):
            out = tuple(Tensor._wrap(o) for o in y) if multi else Tensor._wrap(y)
            if recorder is not None:
                recorder.add(self, config, inputs, out, False)
            return out
        self.inputs = inputs
        self.arrays = arrays
        self.needs_grad = needs_grad
        self.versions = versions
        self.generation = generation = generation + 1
        if multi:
            outputs = tuple(Tensor._wrap(o, True, self, i, generation) for i, o in enumerate(y))
            self.output_specs = [(o.shape, o.dtype) for o in y]  # zeros for outputs that get no gradient
            self.outputs = [weakref.ref(o) for o in outputs]
            if self.saves_output:
                self.y = tuple(o.data for o in outputs)
            if recorder is not None:
                recorder.add(self, config, inputs, outputs, True)
            return outputs
        output = Tensor._wrap(y, True, self, 0, generation)
        self.outputs = [weakref.ref(output)]
        if self.saves_output:
            self.y = output.data
        if recorder is not None:
            recorder.add(self, config, inputs, output, True)
        return output

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
