"""Gradient checks for users and tests: analytic gradients against central finite differences.

Both checks compute in float64, check every input that requires grad with a random upstream
gradient, and raise ``AssertionError`` with a table of the worst mismatches; they never print and
return False.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from shendu import backend
from shendu.autograd.engine import backward
from shendu.autograd.engine import grad as _grad
from shendu.autograd.grad_mode import enable_grad
from shendu.autograd.tensor import Tensor


def _as_float64_inputs(inputs: Sequence[Any]) -> list[Any]:
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            data = x.data.astype(np.float64) if x.dtype.kind == "f" else x.data
            out.append(Tensor._wrap(data.copy(), requires_grad=x.requires_grad and data.dtype.kind == "f"))
        elif backend.is_array(x) and x.dtype.kind == "f":
            out.append(Tensor._wrap(x.astype(np.float64, order="C"), requires_grad=True))  # C order: perturbed in place
        else:
            out.append(x)
    return out


def _like(values: np.ndarray, t: Tensor) -> Any:
    """``values`` (a host array) with the dtype and device of ``t``."""
    return backend.as_array(values, dtype=t.dtype, device=t.device)


def _outputs(result: Any) -> list[Tensor]:
    items = result if isinstance(result, (tuple, list)) else [result]
    return [y if isinstance(y, Tensor) else Tensor._wrap(backend.ensure_array(y)) for y in items if y is not None]


def _objective(fn: Callable, xs: list[Any], vs: list[np.ndarray]) -> float:
    # grad mode stays on: fn may itself differentiate (gradgradcheck)
    with enable_grad():
        ys = _outputs(fn(*xs))
    return float(sum(np.sum(backend.to_numpy(y.data) * v) for y, v in zip(ys, vs)))


def gradcheck(fn: Callable[..., Any], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              seed: int = 0) -> bool:
    """Check ``fn``'s gradients with respect to every input that requires grad.

    For random upstream gradients v (one per output), the analytic vector-Jacobian product from
    backward is compared with central differences of L(x) = sum(v * fn(x)), element by element:
    ``|analytic - numeric| <= atol + rtol * |numeric|``. Float arrays passed as inputs count as
    requiring grad. Returns True, or raises AssertionError with the worst mismatches.

    >>> import shendu
    >>> x = shendu.randn(3, 4, requires_grad=True)
    >>> shendu.gradcheck(lambda t: (t * t).sum(axis=0), x)
    True
    """
    xs = _as_float64_inputs(inputs)
    checked = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; pass tensors with requires_grad=True")
    rng = np.random.default_rng(seed)
    with enable_grad():
        ys = _outputs(fn(*xs))
    vs = [rng.standard_normal(y.shape) for y in ys]
    for i in checked:
        xs[i].grad = None
    roots = [(y, v) for y, v in zip(ys, vs) if y.requires_grad]
    if roots:
        backward([y for y, _ in roots], [_like(v, y) for y, v in roots])
    rows = []
    for i in checked:
        x = xs[i]
        analytic = np.zeros(x.shape) if x.grad is None else backend.to_numpy(x.grad.data)
        if analytic.shape != x.shape:
            raise AssertionError(f"gradcheck: input {i} has shape {x.shape} but its gradient has shape "
                                 f"{analytic.shape}")
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)  # a view: perturb in place
        for k in range(flat.size):
            orig = flat[k].item()
            flat[k] = orig + eps
            plus = _objective(fn, xs, vs)
            flat[k] = orig - eps
            minus = _objective(fn, xs, vs)
            flat[k] = orig
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric)
        bad = ~(err <= atol + rtol * np.abs(numeric))  # NaN counts as a mismatch
        for k in np.flatnonzero(bad):
            idx = np.unravel_index(k, x.shape) if x.shape else ()
            rows.append((err.reshape(-1)[k], i, idx, analytic.reshape(-1)[k], numeric.reshape(-1)[k]))
    if rows:
        rows.sort(key=lambda r: -r[0])
        lines = [f"{'input':>5}  {'index':<16} {'analytic':>14} {'numeric':>14} {'abs error':>11}"]
        for err, i, idx, a, n in rows[:10]:
            lines.append(f"{i:>5}  {str(tuple(int(j) for j in idx)):<16} {a:>14.6g} {n:>14.6g} {err:>11.3g}")
        raise AssertionError(f"gradcheck: {len(rows)} gradient entries differ from finite differences "
                             f"(atol={atol}, rtol={rtol}, eps={eps}); the worst:\n" + "\n".join(lines))
    return True


def gradgradcheck(fn: Callable[..., Any], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of x -> dL/dx (with ``create_graph=True``), L = sum(v * fn(x)).

    >>> import shendu
    >>> x = shendu.randn(5, requires_grad=True)
    >>> shendu.gradgradcheck(lambda t: t.tanh(), x)
    True
    """
    xs = _as_float64_inputs(inputs)
    checked = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    rng = np.random.default_rng(seed + 1)
    with enable_grad():
        shapes = [y.shape for y in _outputs(fn(*xs))]
    vs = [rng.standard_normal(s) for s in shapes]

    def first_derivative(*args: Any) -> tuple[Tensor, ...]:
        ys = _outputs(fn(*args))
        pairs = [(y, Tensor._wrap(_like(v, y))) for y, v in zip(ys, vs) if y.requires_grad]
        targets = [args[i] for i in checked]
        if not pairs:
            return tuple(Tensor._wrap(_like(np.zeros(t.shape), t)) for t in targets)
        gs = _grad([y for y, _ in pairs], targets, [v for _, v in pairs], create_graph=True, allow_unused=True)
        return tuple(g if g is not None else Tensor._wrap(_like(np.zeros(t.shape), t)) for g, t in zip(gs, targets))

    return gradcheck(first_derivative, *xs, eps=eps, atol=atol, rtol=rtol, seed=seed + 2)
