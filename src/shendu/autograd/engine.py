"""The backward engine: reverse-mode accumulation over the recorded graph.

Ops are processed in order of decreasing generation (the depth of the op in the graph) from a
heap, so every op runs once, after all gradients flowing into it have been summed, without
recursion (a chain of 10,000 ops needs no deep stack). Gradients are un-broadcast here, once,
centrally: each input receives a gradient of exactly its own shape and dtype.

Other rules kept here: an op whose input tensor changed in place since the forward pass (its
``_version`` moved on) refuses to run backward; every ``.grad`` written is an independent, writable
array (ops may hand one array to several inputs, or a read-only broadcast view); after backward each
op's saved arrays are released unless ``retain_graph``, and a later backward through it fails clearly.
"""

from __future__ import annotations

from heapq import heappop, heappush
from itertools import count
from typing import Any, Sequence

from shendu import backend, ops
from shendu.autograd.grad_mode import swap_grad_enabled
from shendu.autograd.op import raw
from shendu.autograd.tensor import Tensor

_FREED = ("Trying to backward through the graph a second time (or to use saved values after they were "
          "freed). The graph's saved arrays are freed after backward; pass retain_graph=True to the first "
          "backward() if you need to call it twice.")


def _seed_gradient(root: Tensor, gradient: Any, create_graph: bool) -> Any:
    """dL/d(root): ones for a one-element root, else the caller's ``gradient`` (on the root's device)."""
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient works only for one-element outputs, but this tensor has shape "
                f"{root.shape}; pass gradient=<array of shape {root.shape}> (dL/d output), or reduce it first, "
                "e.g. y.sum().backward()")
        data = _ones_like(root.data)
    elif isinstance(gradient, Tensor):
        data = gradient.data
    else:
        data = backend.as_array(gradient, dtype=root.dtype, device=root.device)
    if data.shape != root.shape:
        raise RuntimeError(f"backward(): gradient has shape {data.shape} but the output has shape {root.shape}")
    if not create_graph:
        return data
    return gradient if isinstance(gradient, Tensor) else Tensor._wrap(data)


_ONES: dict[tuple, Any] = {}


def _ones_like(a: Any) -> Any:
    """A shared read-only array of ones (the implicit seed dL/dL = 1); backward rules never write to gy."""
    key = (a.shape, a.dtype, type(a))
    ones = _ONES.get(key)
    if ones is None:
        ones = backend.get_array_module(a).ones_like(a)
        if hasattr(ones, "flags") and hasattr(ones.flags, "writeable"):
            ones.flags.writeable = False
        ones = _ONES.setdefault(key, ones)
    return ones


def _unbroadcast(g: Any, x: Tensor) -> Any:
    """Sum ``g`` back to the shape of ``x`` and give it ``x``'s dtype."""
    return unbroadcast_array(g, x.data)


def unbroadcast_array(g: Any, data: Any) -> Any:
    """Sum ``g`` back to the shape of the array ``data`` and give it ``data``'s dtype."""
    if g.shape != data.shape:
        g = ops.sum_to(g, data.shape)
    if g.dtype != data.dtype:
        g = ops.astype(g, data.dtype)
    return g


def zeros_like_array(a: Any) -> Any:
    """Zeros of ``a``'s shape and dtype (the gradient of an output nobody used)."""
    return backend.get_array_module(a).zeros(a.shape, dtype=a.dtype)


def backward(roots: Sequence[Tensor], gradients: Sequence[Any], retain_graph: bool = False,
             create_graph: bool = False, inputs: Sequence[Tensor] | None = None) -> list[Any] | None:
    """Run reverse mode from ``roots``.

    Without ``inputs``, gradients are accumulated into ``.grad`` of the leaves (and of tensors that
    called ``retain_grad()``). With ``inputs``, nothing is written to ``.grad``: the gradients of
    those tensors are returned (``shendu.grad``).

    The loop is the per-step cost of every small model (a training step of a one-layer model is mostly this
    function), so it is written flat: one heap entry per op, leaves' ``.grad`` written in place of a call
    where the array is already private, no helper calls on the common path.
    """
    retain_graph = retain_graph or create_graph
    captured: dict[int, Any] | None = None if inputs is None else {id(t): None for t in inputs}
    needed = None if inputs is None else _ops_leading_to(roots, inputs)  # grad(): skip the rest of the graph
    pending: dict[Any, list[Any]] = {}  # op -> the gradients of its outputs, summed so far
    heap: list[tuple[int, int, Any]] = []
    tie = count()  # equal generations pop in the order they were pushed (ops are never compared)
    stored: set[int] = set()  # ids of arrays already stored as a .grad (or owned by the caller)
    to_leaves = captured is None and not create_graph  # .grad written from raw arrays (the common case)

    def deliver(t: Tensor, g: Any) -> None:
        """Hand ``g`` (dL/dt) to a leaf's ``.grad`` or to the pending gradients of the op that made ``t``."""
        if captured is not None and id(t) in captured:
            old = captured[id(t)]
            captured[id(t)] = _private(g, stored) if old is None else old + g
        op = t.creator
        if op is None:
            if captured is None:
                _accumulate(t, g, stored)
            return
        if needed is not None and op not in needed:
            return
        slots = pending.get(op)
        if slots is None:
            if op.inputs is None:
                raise RuntimeError(_FREED)
            slots = pending[op] = [None] * len(op.outputs)
            heappush(heap, (-op.generation, next(tie), op))
        old = slots[t.output_index]
        slots[t.output_index] = g if old is None else old + g

    previous_mode = swap_grad_enabled(create_graph)  # the backward pass is recorded only for higher-order grads
    try:
        for root, gradient in zip(roots, gradients):
            if not root.requires_grad:
                raise RuntimeError(f"backward(): this tensor (shape {root.shape}) does not require grad and has "
                                   "no graph; did you create it under no_grad() or forget requires_grad=True?")
            if gradient is None and not create_graph and root.data.size == 1:  # dL/dL = 1, the usual seed
                seed = _ONES.get((root.data.shape, root.data.dtype, type(root.data)))
                if seed is None:
                    seed = _ones_like(root.data)
            else:
                seed = _seed_gradient(root, gradient, create_graph)
            stored.add(id(raw(seed)))  # the caller's array or the shared ones: never hand it out as a .grad
            deliver(root, seed)
        while heap:  # the hot loop: deepest op first; one backward call and one delivery per input
            op = heappop(heap)[2]
            gys = pending.pop(op)
            op_inputs = op.inputs
            for x, version in zip(op_inputs, op.versions):
                if version is not None and x._version != version:
                    raise _modified_in_place(op, x, version)
            if op.retains_grad and captured is None:
                _store_retained(op, gys, stored)
            if len(gys) > 1:
                if not op.missing_grads_as_none:
                    gys = [g if g is not None else _zeros_like_output(op, i, create_graph) for i, g in enumerate(gys)]
                gy = tuple(gys)
            else:
                gy = gys[0]
            if create_graph:  # Tensors in, so the backward's own operations are recorded
                gxs = op.backward(gy, *op_inputs, _output_tensors(op, len(gys) > 1) if op.saves_output else None)
            else:  # raw arrays in: nothing is recorded, as fast as NumPy
                gxs = op.backward(gy, *op.arrays, op.y if op.saves_output else None)
            if type(gxs) is not tuple:
                gxs = (gxs,)
            for x, gx, wanted in zip(op_inputs, gxs, op.needs_grad):
                if wanted and gx is not None:
                    data = x.data
                    if gx.shape != data.shape or gx.dtype != data.dtype:
                        gx = _unbroadcast(gx, x)
                    if to_leaves and x.creator is None and x.grad is None and gx.base is None \
                            and id(gx) not in stored:  # a leaf's first gradient, in its own memory: store it
                        stored.add(id(gx))
                        x.grad = Tensor._wrap(gx)
                    else:
                        deliver(x, gx)
            if not retain_graph:
                op.release()
    finally:
        swap_grad_enabled(previous_mode)
    if captured is None:
        return None
    return [captured[id(t)] for t in inputs]


def _ops_leading_to(roots: Sequence[Tensor], inputs: Sequence[Tensor]) -> set[Any]:
    """The ops between ``roots`` and ``inputs`` (with a path down to one of the inputs), plus freed ops,
    so that reaching one still raises the clear second-backward error."""
    targets = {id(t) for t in inputs}
    seen, stack = set(), [t.creator for t in roots if t.creator is not None]
    while stack:  # every op above the roots, without recursion
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend(x.creator for x in op.inputs or () if isinstance(x, Tensor) and x.creator is not None)
    leading: set[Any] = set()
    for op in sorted(seen, key=lambda o: o.generation):  # an op's inputs come from lower generations
        if op.inputs is None or any(isinstance(x, Tensor) and (id(x) in targets or x.creator in leading)
                                    for x in op.inputs):
            leading.add(op)
    return leading


def _modified_in_place(op: Any, x: Tensor, version: int) -> RuntimeError:
    return RuntimeError(
        f"{type(op).__name__}: an input of shape {x.shape} was modified in place after it was used "
        f"(version {version} -> {x._version}); its backward needs the original values. Use an "
        "out-of-place operation (y = x + 1 rather than x += 1), or clone before modifying.")


def _store_retained(op: Any, gys: list[Any], stored: set[int]) -> None:
    """``.grad`` for the op's outputs that called ``retain_grad()``."""
    for ref, g in zip(op.outputs, gys):
        o = ref()
        if o is not None and o._retain_grad and g is not None:
            _accumulate(o, g, stored)


def _output_tensors(op: Any, multi: bool) -> Any:
    """The op's outputs as graph Tensors (re-created around the saved data where one was garbage-collected)."""
    ys = op.y if multi else (op.y,)
    outputs = [ref() for ref in op.outputs]
    outputs = tuple(o if o is not None else Tensor._wrap(data, True, op, i, op.generation)
                    for i, (o, data) in enumerate(zip(outputs, ys)))
    return outputs if multi else outputs[0]


def _zeros_like_output(op: Any, index: int, create_graph: bool) -> Any:
    """The gradient of an output nobody used: zeros of its shape and dtype (the output may be gone)."""
    shape, dtype = op.output_specs[index]
    z = backend.get_array_module(*op.arrays).zeros(shape, dtype=dtype)
    return Tensor._wrap(z) if create_graph else z


def _private(g: Any, stored: set[int]) -> Any:
    """``g``, or a copy of it when it may be shared: a view (e.g. a read-only broadcast) or an array
    already stored as another ``.grad`` (add returns ``gy, gy``) or owned by the caller.

    So every ``.grad`` holds its own writable memory. (Under ``create_graph`` ``g`` is a Tensor of the
    recorded graph; its copy is ``g.clone()``, which stays differentiable.)
    """
    data = g.data if isinstance(g, Tensor) else g
    if data.base is not None or id(data) in stored:
        g = g.clone() if isinstance(g, Tensor) else g.copy()
        data = g.data if isinstance(g, Tensor) else g
    stored.add(id(data))
    return g


def _accumulate(t: Tensor, g: Any, stored: set[int]) -> None:
    """Add ``g`` to ``t.grad``, out of place: the old array may still be read by the pass in progress
    (``add`` hands one array to a leaf and to another op), so it is never written to."""
    old = t.grad
    if old is None:
        g = _private(g, stored)
        t.grad = g if isinstance(g, Tensor) else Tensor._wrap(g)
    elif isinstance(g, Tensor):
        t.grad = old + g
    else:
        t.grad = Tensor._wrap(old.data + g)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, returned instead of stored in ``.grad``.

    >>> import shendu
    >>> x = shendu.tensor(3.0, requires_grad=True)
    >>> (dx,) = shendu.grad(x ** 3, x, create_graph=True)   # 3 x^2 = 27
    >>> (ddx,) = shendu.grad(dx, x)                          # 6 x = 18
    >>> float(dx), float(ddx)
    (27.0, 18.0)
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor) or backend.is_array(grad_outputs):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError(f"grad(): an input of shape {t.shape} does not require grad")
    retain = create_graph if retain_graph is None else retain_graph
    found = backward(outputs, list(grad_outputs), retain_graph=retain, create_graph=create_graph, inputs=inputs)
    result = []
    for t, g in zip(inputs, found):
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad(): an input of shape {t.shape} was not used to compute the outputs; "
                                   "pass allow_unused=True to get None for it")
            result.append(None)
        else:
            result.append(g if isinstance(g, Tensor) else Tensor._wrap(g))
    return tuple(result)
