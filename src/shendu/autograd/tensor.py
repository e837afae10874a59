"""The Tensor: an ndarray (``.data``) plus what reverse-mode autograd needs.

A tensor made by an op remembers it in ``creator`` (PyTorch calls it ``grad_fn``); ops hold
their inputs strongly and their outputs weakly, so a graph lives exactly as long as its
outputs and never through a reference cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shendu import backend
from shendu.autograd.grad_mode import is_grad_enabled, no_grad

#: the out-of-place op behind each in-place operator (see ``Tensor._inplace``)
_INPLACE_OPS = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div"}


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    >>> import shendu
    >>> x = shendu.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "output_index", "generation",
                 "_version", "_retain_grad", "name", "__weakref__")
    __array_ufunc__ = None  # make ``ndarray + Tensor`` call ``Tensor.__radd__``
    __array_priority__ = 1000

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False,
                 name: str | None = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        data = backend.as_array(data, dtype=dtype)
        if requires_grad and data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {data.dtype}")
        self.data = data
        self.grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.output_index = 0
        self.generation = 0
        self._version = 0
        self._retain_grad = False
        self.name = name

    # ---------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def T(self) -> Tensor:
        return ops.transpose(self)

    @property
    def grad_fn(self):
        """The op that made this tensor (None for leaves); PyTorch's name for ``creator``."""
        return self.creator

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    # ---------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array, sharing memory (copied to the host for GPU tensors), as Keras's
        ``model(x).numpy()``. For a tensor in a graph it is a read-only view, since backward may need these
        values: writing to it raises. ``detach().numpy()`` (PyTorch) or ``np.array(t)`` give writable arrays."""
        arr = backend.to_numpy(self.data)
        if self.creator is not None and arr is self.data:
            arr = arr.view()
            arr.flags.writeable = False
        return arr

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A new leaf tensor sharing this data, outside any graph."""
        return Tensor._wrap(self.data)

    def astype(self, dtype: Any) -> Tensor:
        """A copy converted to ``dtype`` (differentiable between float types)."""
        return ops.astype(self, dtype)

    def to(self, device: str) -> Tensor:
        """This tensor on ``device`` ('cpu' or 'cuda'): itself when already there, else a copy that is a new
        leaf (moving between devices is not recorded for backward) keeping ``requires_grad``."""
        backend.module_for(device)  # a clear error for unknown devices or a missing GPU
        if device == self.device or (device == "gpu" and self.device == "cuda"):
            return self
        return Tensor(backend.as_array(self.data, device=device), requires_grad=self.requires_grad)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """NumPy's conversion protocol: ``np.asarray(t)`` shares memory, ``np.array(t)`` copies."""
        arr = backend.to_numpy(self.data)
        if dtype is not None and arr.dtype != dtype:
            if copy is False:
                raise ValueError(f"cannot convert a {arr.dtype} tensor to {np.dtype(dtype)} without a copy")
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self.data), separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype not in (backend.default_float_dtype(), np.int64, np.bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self.creator is not None:
            extras.append(f"grad_fn=<{type(self.creator).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                             "use .any() or .all()")
        return bool(self.data)

    def __format__(self, spec: str) -> str:
        if spec and self.data.size == 1:
            return format(self.item(), spec)
        return format(str(self), spec)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.data.item())

    __hash__ = object.__hash__

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getstate__(self):
        raise TypeError("shendu tensors are not pickled; save them with shendu's safetensors-based saving")

    # ---------------------------------------------------------------- autograd
    def backward(self, gradient: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into each leaf's ``.grad``.

        ``gradient`` is the upstream gradient (dL/dself); it may be omitted for one-element tensors.
        The graph's saved arrays are freed afterwards unless ``retain_graph`` (or ``create_graph``).
        """
        engine.backward((self,), (gradient,), retain_graph, create_graph)

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if self.creator is not None:
            self._retain_grad = True
            self.creator.retains_grad = True  # the engine looks for retained outputs only on such ops
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self.creator is not None and not requires_grad:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use detach()")
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ---------------------------------------------------------------- in place
    def _check_inplace(self, operand: Any = None) -> None:
        """Refuse in-place changes autograd could not follow; count the others in ``_version``."""
        if is_grad_enabled():
            if self.requires_grad:
                kind = "a leaf tensor that requires grad" if self.creator is None else "a tensor in a graph"
                raise RuntimeError(f"in-place change of {kind} (shape {self.shape}); wrap it in "
                                   "`with shendu.no_grad():` (as optimisers do) or use the out-of-place op")
            if isinstance(operand, Tensor) and operand.requires_grad:
                raise RuntimeError(f"in-place change of a tensor (shape {self.shape}) that does not require grad "
                                   "with a value that does: its gradient would be lost; use the out-of-place op "
                                   "(x = x + w rather than x += w)")
        self._version += 1

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_inplace(value)
        self.data[ops.unwrap_index(key)] = value.data if isinstance(value, Tensor) else value

    def _inplace(self, other: Any, ufunc: str) -> Tensor:
        """``x += y`` and friends. In grad mode, a tensor computed in a graph (``x = a * 2; x -= b``), or one that
        meets an operand requiring grad, is treated as immutable, as Keras 3 code expects: the operator returns
        the out-of-place result (Python rebinds the name; other references keep the old value) so gradients stay
        right. Otherwise (no grad, or plain tensors) the data is changed in place and ``_version`` bumped; a leaf
        that requires grad is still refused (as PyTorch does)."""
        if is_grad_enabled() and not (self.requires_grad and self.creator is None) and (
                self.requires_grad or (isinstance(other, Tensor) and other.requires_grad)):
            return getattr(ops, _INPLACE_OPS[ufunc])(self, other)
        self._check_inplace(other)
        xp = backend.get_array_module(self.data)
        getattr(xp, ufunc)(self.data, other.data if isinstance(other, Tensor) else other, out=self.data)
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(other, "add")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(other, "subtract")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(other, "multiply")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(other, "divide")

    def copy_(self, src: Any) -> Tensor:
        """Copy ``src`` into this tensor's data in place (shapes must broadcast)."""
        self._check_inplace(src)
        self.data[...] = src.data if isinstance(src, Tensor) else src
        return self

    def zero_(self) -> Tensor:
        self._check_inplace()
        self.data[...] = 0
        return self

    # ---------------------------------------------------------------- operators
    def __add__(self, other: Any) -> Tensor:
        return ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return ops.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return ops.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return ops.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return ops.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return ops.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.div(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return ops.pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return ops.pow(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return ops.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return ops.abs(self)

    def __getitem__(self, key: Any) -> Tensor:
        return ops.getitem(self, key)

    # comparisons, logic and integer division are not differentiable: they return tensors outside any graph
    def _no_grad_op(self, other: Any, name: str) -> Tensor:
        other = other.data if isinstance(other, Tensor) else other
        result = getattr(self.data, name)(other)
        if result is NotImplemented:
            return NotImplemented
        return Tensor._wrap(result)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._no_grad_op(other, "__eq__")

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._no_grad_op(other, "__ne__")

    def __lt__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__lt__")

    def __le__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__le__")

    def __gt__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__gt__")

    def __ge__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__ge__")

    def __invert__(self) -> Tensor:
        return Tensor._wrap(~self.data)

    def __and__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__and__")

    def __rand__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__rand__")

    def __or__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__or__")

    def __ror__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__ror__")

    def __xor__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__xor__")

    def __rxor__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__rxor__")

    def __floordiv__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__floordiv__")

    def __rfloordiv__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__rfloordiv__")

    def __mod__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__mod__")

    def __rmod__(self, other: Any) -> Tensor:
        return self._no_grad_op(other, "__rmod__")

    # ---------------------------------------------------------------- methods (NumPy / PyTorch names)
    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis, keepdims)

    def var(self, axis=None, ddof=0, keepdims=False):
        return ops.var(self, axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis=None, ddof=0, keepdims=False):
        return ops.std(self, axis, keepdims=keepdims, ddof=ddof)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis, keepdims)

    def prod(self, axis=None, keepdims=False):
        return ops.prod(self, axis, keepdims)

    def cumsum(self, axis=None):
        return ops.cumsum(self, axis)

    def logsumexp(self, axis=None, keepdims=False):
        return ops.logsumexp(self, axis, keepdims)

    def softmax(self, axis=-1):
        return ops.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return ops.log_softmax(self, axis)

    def argmax(self, axis=None, keepdims=False):
        return Tensor._wrap(self.data.argmax(axis=axis, keepdims=keepdims))

    def argmin(self, axis=None, keepdims=False):
        return Tensor._wrap(self.data.argmin(axis=axis, keepdims=keepdims))

    def any(self, axis=None, keepdims=False):
        return Tensor._wrap(self.data.any(axis=axis, keepdims=keepdims))

    def all(self, axis=None, keepdims=False):
        return Tensor._wrap(self.data.all(axis=axis, keepdims=keepdims))

    def reshape(self, *shape):
        return ops.reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    def view(self, *shape):
        return self.reshape(*shape)

    def transpose(self, *axes):
        return ops.transpose(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else (axes or None))

    def permute(self, *axes):
        return ops.transpose(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes)

    def swapaxes(self, axis1, axis2):
        return ops.swapaxes(self, axis1, axis2)

    def expand_dims(self, axis):
        return ops.expand_dims(self, axis)

    def unsqueeze(self, dim):
        return ops.expand_dims(self, dim)

    def squeeze(self, axis=None):
        return ops.squeeze(self, axis)

    def flatten(self, start_axis=0, end_axis=-1):
        return ops.flatten(self, start_axis, end_axis)

    def broadcast_to(self, shape):
        return ops.broadcast_to(self, shape)

    def repeat(self, repeats, axis=None):
        return ops.repeat(self, repeats, axis)

    def tile(self, reps):
        return ops.tile(self, reps)

    def take(self, indices, axis=None):
        return ops.take(self, indices, axis)

    def clip(self, min=None, max=None):
        return ops.clip(self, min, max)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def log1p(self):
        return ops.log1p(self)

    def sqrt(self):
        return ops.sqrt(self)

    def abs(self):
        return ops.abs(self)

    def sign(self):
        return ops.sign(self)

    def sin(self):
        return ops.sin(self)

    def cos(self):
        return ops.cos(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def erf(self):
        return ops.erf(self)

    def relu(self):
        return ops.relu(self)

    def matmul(self, other):
        return ops.matmul(self, other)

    def pow(self, exponent):
        return ops.pow(self, exponent)

    def add(self, other):
        return ops.add(self, other)

    def sub(self, other):
        return ops.sub(self, other)

    def mul(self, other):
        return ops.mul(self, other)

    def div(self, other):
        return ops.div(self, other)

    def neg(self):
        return ops.neg(self)

    def where(self, condition, other):
        """``self`` where ``condition`` holds, else ``other`` (PyTorch's ``Tensor.where``)."""
        return ops.where(condition, self, other)

    def take_along_axis(self, indices, axis):
        return ops.take_along_axis(self, indices, axis)

    def gather(self, dim, index):
        """PyTorch's ``gather(dim, index)``: :meth:`take_along_axis` with PyTorch's argument order."""
        return ops.take_along_axis(self, index, dim)

    def expand(self, *shape):
        """PyTorch's name for :meth:`broadcast_to` (-1 keeps a size)."""
        shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
        lead = len(shape) - self.ndim
        return ops.broadcast_to(self, tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape)))

    def square(self):
        return ops.mul(self, self)

    def maximum(self, other):
        return ops.maximum(self, other)

    def minimum(self, other):
        return ops.minimum(self, other)

    def clamp(self, min=None, max=None):
        """PyTorch's name for :meth:`clip`."""
        return ops.clip(self, min, max)

    def split(self, indices_or_sections, axis=0):
        return ops.split(self, indices_or_sections, axis)

    def numel(self) -> int:
        """The number of elements (PyTorch's name for ``size``)."""
        return self.data.size

    def dim(self) -> int:
        """The number of dimensions (PyTorch's name for ``ndim``)."""
        return self.data.ndim

    def float(self) -> Tensor:
        """Converted to float32 (differentiable)."""
        return ops.astype(self, np.float32)

    def double(self) -> Tensor:
        """Converted to float64 (differentiable)."""
        return ops.astype(self, np.float64)

    def clone(self) -> Tensor:
        """A copy in new memory; gradients flow back to this tensor (y = x * 1)."""
        if not (self.requires_grad and is_grad_enabled()):
            return Tensor._wrap(self.data.copy())
        return ops.mul(self, 1)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def dot(self, other):
        return ops.matmul(self, other)

    # ---------------------------------------------------------------- internal
    @staticmethod
    def _wrap(data: Any, requires_grad: bool = False, creator: Any = None, output_index: int = 0,
              generation: int = 0) -> Tensor:
        """A tensor around an existing array, without conversion: the fast path for ops and the engine."""
        t = Tensor.__new__(Tensor)
        t.data = data if type(data) is np.ndarray else backend.ensure_array(data)
        t.grad = None
        t.requires_grad = requires_grad
        t.creator = creator
        t.output_index = output_index
        t.generation = generation
        t._version = 0
        t._retain_grad = False
        t.name = None
        return t


class Parameter(Tensor):
    """A leaf tensor that is a trainable weight: ``requires_grad=True`` by default.

    It is also Keras 3's ``keras.Variable``: ``Variable(initializer, shape=None, dtype=None, trainable=True,
    name=None)`` works, the initializer a value or a callable ``initializer(shape, dtype)`` such as
    ``shendu.initializers.GlorotUniform()``; and it has ``assign``, ``assign_add``, ``assign_sub``, ``value``.
    """

    __slots__ = ("trainable", "regularizer", "constraint")

    def __init__(self, data: Any = None, dtype: Any = None, requires_grad: bool = True, name: str | None = None, *,
                 initializer: Any = None, shape: Any = None, trainable: bool | None = None) -> None:
        if initializer is not None:
            if data is not None:
                raise TypeError("Parameter: give the initial value once, as data or as initializer")
            data = initializer
        if isinstance(data, str):
            raise TypeError(f"Parameter: the initializer {data!r} is a name; pass the initializer object, e.g. "
                            f"shendu.initializers.get({data!r}), with shape=")
        if callable(data) and not isinstance(data, Tensor):
            if shape is None:
                raise ValueError("Parameter: an initializer needs shape=")
            data = data(tuple(shape), dtype=backend.default_float_dtype() if dtype is None else dtype)
        if data is None:
            raise TypeError("Parameter: give the initial value (data, or initializer= as in keras.Variable)")
        if trainable is not None:
            requires_grad = trainable
        super().__init__(data, dtype=dtype, requires_grad=requires_grad, name=name)
        if not self.data.flags.c_contiguous:  # kept C-ordered, so the fused optimiser updates can read it flat
            self.data = backend.get_array_module(self.data).ascontiguousarray(self.data)
        if shape is not None and self.shape != tuple(shape):
            raise ValueError(f"Parameter: the initial value has shape {self.shape}, but shape={tuple(shape)}")
        self.trainable = requires_grad
        self.regularizer = None
        self.constraint = None

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__()[len("tensor("):]

    # ------------------------------------------------ Keras 3's Variable API (``keras.Variable`` is Parameter)
    @property
    def value(self) -> Parameter:
        """The weight as a tensor for computations: the Parameter itself, so gradients reach it (as Keras's
        ``variable.value`` on the PyTorch backend)."""
        return self

    @property
    def path(self) -> str | None:
        """Keras's ``variable.path``: the weight's name, ``'layer/name'`` for a layer's weight."""
        return self.name

    def _assign_value(self, value: Any, broadcast: bool = False) -> Any:
        data = value.data if isinstance(value, Tensor) else value
        data = backend.as_array(data, dtype=self.dtype, device=backend.device_of(self.data))
        shape = np.broadcast_shapes(data.shape, self.shape) if broadcast and data.ndim <= self.ndim else data.shape
        if shape != self.shape:
            raise ValueError(f"cannot assign a value of shape {data.shape} to the weight {self.name!r} of shape "
                             f"{self.shape}; the shapes must be equal" + (" (or broadcast)" if broadcast else ""))
        return data

    def assign(self, value: Any) -> Parameter:
        """Replace the data in place by ``value`` (same shape; cast to this dtype). Like an optimiser step it is
        not recorded in any graph and bumps ``_version``, so a graph that saved the old value refuses backward."""
        data = self._assign_value(value)
        with no_grad():
            self.copy_(data)
        return self

    def assign_add(self, delta: Any) -> Parameter:
        """``self.assign(self + delta)``, in place."""
        data = self._assign_value(delta, broadcast=True)
        with no_grad():
            self._inplace(data, "add")
        return self

    def assign_sub(self, delta: Any) -> Parameter:
        """``self.assign(self - delta)``, in place."""
        data = self._assign_value(delta, broadcast=True)
        with no_grad():
            self._inplace(data, "subtract")
        return self


from shendu import ops  # noqa: E402  (ops import Tensor; the operators above look ops up at call time)
from shendu.autograd import engine  # noqa: E402
