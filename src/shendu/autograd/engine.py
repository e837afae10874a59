"""The backward engine: reverse-mode accumulation over the recorded graph.

Ops are processed in order of decreasing generation (the depth of the op in the graph) from a
heap, so every op runs once, after all gradients flowing into it have been summed, without
recursion (a chain of 10,000 ops needs no deep stack). Gradients are un-broadcast here, once,
centrally: each input receives a gradient of exactly its own shape.
"""

from __future__ import annotations

import heapq
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
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient works only for one-element outputs, but this tensor has shape "
                f"{root.shape}; pass gradient=<array of shape {root.shape}> (dL/d output), or reduce it first, "
                "e.g. y.sum().backward()")
        xp = backend.get_array_module(root.data)
        gradient = xp.ones_like(root.data)
    else:
        data = gradient.data if isinstance(gradient, Tensor) else backend.as_array(gradient, dtype=root.dtype)
        if data.shape != root.shape:
            raise RuntimeError(f"backward(): gradient has shape {data.shape} but the output has shape {root.shape}")
        if create_graph and isinstance(gradient, Tensor):
            return gradient
        gradient = data
    return Tensor._wrap(gradient) if create_graph else gradient


def _unbroadcast(g: Any, x: Tensor) -> Any:
    """Sum ``g`` back to the shape of ``x`` and give it ``x``'s dtype."""
    if g.shape != x.data.shape:
        g = ops.sum_to(g, x.data.shape)
    if g.dtype != x.data.dtype:
        g = ops.astype(g, x.data.dtype)
    return g


def backward(roots: Sequence[Tensor], gradients: Sequence[Any], retain_graph: bool = False,
             create_graph: bool = False, inputs: Sequence[Tensor] | None = None) -> list[Any] | None:
    """Run reverse mode from ``roots``.

    Without ``inputs``, gradients are accumulated into ``.grad`` of the leaves (and of tensors that
    called ``retain_grad()``). With ``inputs``, nothing is written to ``.grad``: the gradients of
    those tensors are returned (``shendu.grad``).
    """
    retain_graph = retain_graph or create_graph
    captured: dict[int, Any] | None = None if inputs is None else {id(t): None for t in inputs}
    pending: dict[Any, list[Any]] = {}  # op -> the gradients of its outputs, summed so far
    heap: list[tuple[int, int, Any]] = []
    tie = count()
    stored: set[int] = set()  # ids of arrays already stored as a .grad (or owned by the caller)

    def deliver(t: Tensor, g: Any) -> None:
        if captured is not None and id(t) in captured:
            old = captured[id(t)]
            captured[id(t)] = _private(g, stored) if old is None else old + g
        op = t.creator
        if op is None:
            if captured is None:
                _accumulate(t, g, stored)
            return
        slots = pending.get(op)
        if slots is None:
            if op.inputs is None:
                raise RuntimeError(_FREED)
            slots = pending[op] = [None] * len(op.outputs)
            heapq.heappush(heap, (-op.generation, next(tie), op))
        old = slots[t.output_index]
        slots[t.output_index] = g if old is None else old + g

    previous_mode = swap_grad_enabled(create_graph)  # the backward pass is recorded only for higher-order grads
    try:
        for root, gradient in zip(roots, gradients):
            if not root.requires_grad:
                raise RuntimeError(f"backward(): this tensor (shape {root.shape}) does not require grad and has "
                                   "no graph; did you create it under no_grad() or forget requires_grad=True?")
            seed = _seed_gradient(root, gradient, create_graph)
            if gradient is not None:
                stored.add(id(raw(seed)))  # the caller's array: never hand it out as a .grad
            deliver(root, seed)
        while heap:
            op = heapq.heappop(heap)[2]
            _run_op(op, pending.pop(op), deliver, create_graph, accumulate_retained=captured is None,
                    stored=stored)
            if not retain_graph:
                op.release()
    finally:
        swap_grad_enabled(previous_mode)
    if captured is None:
        return None
    return [captured[id(t)] for t in inputs]


def _run_op(op: Any, gys: list[Any], deliver: Any, create_graph: bool, accumulate_retained: bool,
            stored: set[int]) -> None:
    inputs = op.inputs
    for x, version in zip(inputs, op.versions):
        if version is not None and x._version != version:
            raise RuntimeError(
                f"{type(op).__name__}: an input of shape {x.shape} was modified in place after it was used "
                f"(version {version} -> {x._version}); its backward needs the original values. Use an "
                "out-of-place operation (y = x + 1 rather than x += 1), or clone before modifying.")
    outputs = [ref() for ref in op.outputs]
    if accumulate_retained:
        for o, g in zip(outputs, gys):
            if o is not None and o._retain_grad and g is not None:
                _accumulate(o, g, stored)
    multi = len(gys) > 1
    if multi:
        gys = [g if g is not None else _zeros_like_output(op, i, create_graph) for i, g in enumerate(gys)]
    if create_graph:
        xs = inputs
        y = None
        if op.saves_output:
            ys = op.y if multi else (op.y,)
            y = tuple(o if o is not None else _rewrap(op, i, ys[i]) for i, o in enumerate(outputs))
            y = y if multi else y[0]
    else:
        xs = op.arrays
        y = op.y if op.saves_output else None
    gxs = op.backward(tuple(gys) if multi else gys[0], *xs, y)
    if type(gxs) is not tuple:
        gxs = (gxs,)
    for x, gx, needed in zip(inputs, gxs, op.needs_grad):
        if needed and gx is not None:
            data = x.data
            if gx.shape != data.shape or gx.dtype != data.dtype:
                gx = _unbroadcast(gx, x)
            deliver(x, gx)


def _rewrap(op: Any, index: int, data: Any) -> Tensor:
    return Tensor._wrap(data, True, op, index, op.generation)


def _zeros_like_output(op: Any, index: int, create_graph: bool) -> Any:
    ref = op.y[index] if op.saves_output else op.outputs[index]().data
    xp = backend.get_array_module(ref)
    z = xp.zeros_like(ref)
    return Tensor._wrap(z) if create_graph else z


def _private(g: Any, stored: set[int]) -> Any:
    """``g``, or a copy of it when it may be shared: a view (e.g. a read-only broadcast) or an array
    already stored as another ``.grad`` (add returns ``gy, gy``) or owned by the caller.

    A first-order ``.grad`` is thus always an independent, writable array. (Under ``create_graph``
    gradients are Tensors of the recorded graph and are kept as they are.)
    """
    if isinstance(g, Tensor):
        return g
    if g.base is not None or id(g) in stored:
        g = g.copy()
    stored.add(id(g))
    return g


def _accumulate(t: Tensor, g: Any, stored: set[int]) -> None:
    """Add ``g`` to ``t.grad`` (a Tensor with a graph under create_graph, plain data otherwise)."""
    if t.grad is None:
        g = _private(g, stored)
        t.grad = g if isinstance(g, Tensor) else Tensor._wrap(g)
    elif isinstance(g, Tensor):
        t.grad = t.grad + g
    else:
        t.grad = Tensor._wrap(t.grad.data + g)


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
