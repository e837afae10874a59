"""Shared helpers for the op tests (tinygrad ``test_ops.py`` style): one table row per op, checked by

* ``shendu.gradcheck`` / ``shendu.gradgradcheck``: finite differences of the gradient and double backward;
* ``compare_with_torch``: forward, backward and double backward against PyTorch in float64;
* ``check_float32``: float32 in -> float32 out, float32 gradients, and no hidden float64 round trip.

Test modules load this file by path (pytest runs with ``--import-mode=importlib``, so tests/ is not on
sys.path): see the four lines under the imports of each tests/test_ops_*.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pytest

import shendu
from shendu.autograd.op import Op

try:
    import torch
except ImportError:  # pragma: no cover - CI installs torch
    torch = None

Shapes = tuple[tuple[int, ...], ...]

UNARY_SHAPES: list[Shapes] = [((2, 3),), ((),), ((1, 4),), ((0, 3),), ((2, 1, 2),)]
BINARY_SHAPES: list[Shapes] = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((2, 3), ()),
                               ((1, 2, 1), (3, 1, 2)), ((0, 3), (1, 3)), ((1,), (0,))]


@dataclass
class OpCase:
    """One row of an op table: ``fn`` (shendu) and ``torch_fn`` (the same maths in PyTorch) applied to
    inputs of each shape set; ``domain`` picks values where the op is smooth."""

    op: str
    fn: Callable[..., Any]
    torch_fn: Callable[..., Any] | None
    shapes: list[Shapes] = field(default_factory=lambda: UNARY_SHAPES)
    domain: str = "real"
    double: bool = True
    keeps_dtype: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.op


def make_arrays(shapes: Shapes, domain: str = "real", dtype: Any = np.float64, seed: int = 0) -> list[np.ndarray]:
    """Random arrays of the given shapes, with values where the op is differentiable:

    real: uniform(-2, 2); positive: uniform(0.5, 2); nonzero: |x| in [0.3, 2] (for kinks at 0);
    distinct: all values of all arrays on a shuffled grid, far apart next to gradcheck's eps (max/min: no ties)."""
    rng = np.random.default_rng(seed)
    sizes = [int(np.prod(s)) for s in shapes]
    if domain == "distinct":
        pool = rng.permutation(np.linspace(-2.0, 2.0, max(sum(sizes), 2)))
        parts = np.split(pool[:sum(sizes)], np.cumsum(sizes)[:-1])
        return [p.reshape(s).astype(dtype) for p, s in zip(parts, shapes)]
    out = []
    for s in shapes:
        if domain == "real":
            a = rng.uniform(-2.0, 2.0, s)
        elif domain == "positive":
            a = rng.uniform(0.5, 2.0, s)
        elif domain == "nonzero":
            a = rng.uniform(0.3, 2.0, s) * rng.choice([-1.0, 1.0], s)
        else:
            raise ValueError(f"unknown domain {domain!r}")
        out.append(np.asarray(a, dtype=dtype))
    return out


def as_tensors(arrays: Sequence[np.ndarray], requires_grad: bool = True) -> list[shendu.Tensor]:
    return [shendu.tensor(a, dtype=a.dtype, requires_grad=requires_grad) for a in arrays]  # tensor() copies


def outputs_of(result: Any) -> list[Any]:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def graph_op_names(result: Any) -> set[str]:
    """Names of the op classes in the graph that produced ``result`` (walking creator -> inputs)."""
    names: set[str] = set()
    seen: set[int] = set()
    stack = [t for t in outputs_of(result) if isinstance(t, shendu.Tensor)]
    while stack:
        op = stack.pop().creator
        if op is None or id(op) in seen:
            continue
        seen.add(id(op))
        names.add(type(op).__name__)
        stack.extend(x for x in (op.inputs or ()) if isinstance(x, shendu.Tensor))
    return names


def _torch_grads(outs: list[Any], xs: list[Any], vs: list[Any], create_graph: bool) -> list[Any]:
    pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    if not pairs:
        return [torch.zeros_like(x) for x in xs]
    gs = torch.autograd.grad([o for o, _ in pairs], xs, [v for _, v in pairs], create_graph=create_graph,
                             allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(gs, xs)]


def _shendu_grads(outs: list[Any], xs: list[Any], vs: list[Any], create_graph: bool) -> list[Any]:
    pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    if not pairs:
        return [shendu.zeros_like(x) for x in xs]
    gs = shendu.grad([o for o, _ in pairs], xs, [v for _, v in pairs], create_graph=create_graph,
                     allow_unused=True)
    return [shendu.zeros_like(x) if g is None else g for g, x in zip(gs, xs)]


def _assert_close(ours: Any, theirs: Any, what: str, rtol: float, atol: float) -> None:
    ours = np.asarray(ours.data if isinstance(ours, shendu.Tensor) else ours)
    theirs = theirs.detach().numpy(force=True)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch's {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


def compare_with_torch(fn: Callable[..., Any], torch_fn: Callable[..., Any], arrays: Sequence[np.ndarray],
                       double: bool = True, rtol: float = 1e-7, atol: float = 1e-10, seed: int = 1) -> None:
    """Forward, gradient (random cotangent) and double backward (random second cotangent) against PyTorch."""
    if torch is None:
        pytest.skip("torch is not installed")
    xs = as_tensors(arrays)
    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    outs, touts = outputs_of(fn(*xs)), outputs_of(torch_fn(*txs))
    assert len(outs) == len(touts), f"{len(outs)} outputs, torch gives {len(touts)}"
    for k, (o, t) in enumerate(zip(outs, touts)):
        _assert_close(o, t, f"forward output {k}", rtol, atol)
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(o.shape) for o in outs]
    gs = _shendu_grads(outs, xs, [shendu.tensor(v, dtype=np.float64) for v in vs], create_graph=double)
    tgs = _torch_grads(touts, txs, [torch.tensor(v) for v in vs], create_graph=double)
    for k, (g, t) in enumerate(zip(gs, tgs)):
        _assert_close(g, t, f"gradient of input {k}", rtol, atol)
    if not double:
        return
    ws = [rng.standard_normal(x.shape) for x in arrays]
    gs2 = _shendu_grads(gs, xs, [shendu.tensor(w, dtype=np.float64) for w in ws], create_graph=False)
    tgs2 = _torch_grads(tgs, txs, [torch.tensor(w) for w in ws], create_graph=False)
    for k, (g, t) in enumerate(zip(gs2, tgs2)):
        _assert_close(g, t, f"second-order gradient of input {k}", rtol, atol)


def check_float32(fn: Callable[..., Any], arrays: Sequence[np.ndarray], double: bool = True) -> None:
    """float32 inputs give float32 outputs and gradients; no op in the forward or backward graph casts
    (the engine would hide a float64 detour in backward by casting the result back: look for Astype)."""
    xs = as_tensors([a.astype(np.float32) for a in arrays])
    outs = [o for o in outputs_of(fn(*xs)) if isinstance(o, shendu.Tensor)]
    for k, o in enumerate(outs):
        assert o.dtype == np.float32, f"output {k} is {o.dtype} for float32 inputs"
    assert "AstypeOp" not in graph_op_names(outs), "the forward graph casts between dtypes"
    vs = [shendu.ones_like(o) for o in outs]
    gs = _shendu_grads(outs, xs, vs, create_graph=True)
    for k, g in enumerate(gs):
        assert g.dtype == np.float32, f"gradient of input {k} is {g.dtype} for float32 inputs"
    assert "AstypeOp" not in graph_op_names(gs), "backward computes in another dtype and casts back"
    if double:
        for k, g in enumerate(_shendu_grads(gs, xs, [shendu.ones_like(g) for g in gs], create_graph=False)):
            assert g.dtype == np.float32, f"second-order gradient of input {k} is {g.dtype}"


def gradcheck_cases(table: Sequence[OpCase]) -> list[tuple[str, Callable[..., Any], Callable[[], list[Any]]]]:
    """``GRADCHECK_CASES`` for the op registry: each table row on its first shape set."""
    return [(c.op, c.fn, (lambda c=c: as_tensors(make_arrays(c.shapes[0], c.domain)))) for c in table]


def expand(table: Sequence[OpCase]) -> list[Any]:
    """pytest params: one per (row, shape set), with readable ids."""
    return [pytest.param(c, shapes, id=f"{c.name}-{'-'.join(str(s) for s in shapes)}")
            for c in table for shapes in c.shapes]


def registered_ops(module: Any) -> set[str]:
    """Names of the public op classes defined in ``module``."""
    return {n for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, Op) and v.__module__ == module.__name__ and n[0] != "_"}


def table_tests(table: Sequence[OpCase]) -> tuple[Callable[..., None], ...]:
    """The four standard tests over an op table; a test module binds them to names of its own:
    ``test_gradcheck, test_gradgradcheck, test_matches_torch, test_float32 = optest.table_tests(TABLE)``."""

    @pytest.mark.parametrize("case, shapes", expand(table))
    def test_gradcheck(case: OpCase, shapes: Shapes) -> None:
        shendu.gradcheck(case.fn, *as_tensors(make_arrays(shapes, case.domain)))

    @pytest.mark.parametrize("case, shapes", expand([c for c in table if c.double]))
    def test_gradgradcheck(case: OpCase, shapes: Shapes) -> None:
        shendu.gradgradcheck(case.fn, *as_tensors(make_arrays(shapes, case.domain)))

    @pytest.mark.parametrize("case, shapes", expand([c for c in table if c.torch_fn is not None]))
    def test_matches_torch(case: OpCase, shapes: Shapes) -> None:
        compare_with_torch(case.fn, case.torch_fn, make_arrays(shapes, case.domain), double=case.double)

    @pytest.mark.parametrize("case, shapes", expand([c for c in table if c.keeps_dtype]))
    def test_float32(case: OpCase, shapes: Shapes) -> None:
        check_float32(case.fn, make_arrays(shapes, case.domain), double=case.double)

    return test_gradcheck, test_gradgradcheck, test_matches_torch, test_float32
