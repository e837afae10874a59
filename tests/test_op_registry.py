"""The op registry contract: every op class in ``shendu.OP_REGISTRY`` has a gradient check.

Each tests/test_*.py module that adds ops defines ``GRADCHECK_CASES = [(op_class_name, fn, make_inputs), ...]``:
``fn(*make_inputs())`` returns a Tensor (or a tuple). Here every case is gradient-checked against finite
differences, the named op class must appear in fn's graph (walking ``creator`` -> ``inputs``), and a test fails
listing every registered op that no case covers.
"""

import builtins
import importlib
import importlib.util
import pkgutil
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu
import shendu.ops

TESTS = Path(__file__).parent
if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", TESTS / "optest.py")
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402


def _load_cases():
    """Import every test module by path; gather its cases and note the modules that could not be imported."""
    cases, broken, skipped = [], {}, {}
    for path in sorted(TESTS.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        name = f"_registry_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except pytest.skip.Exception as e:  # e.g. a module-level importorskip
            skipped[path.name] = str(e)
            continue
        except Exception as e:  # reported by test_case_modules_import
            broken[path.name] = f"{type(e).__name__}: {e}"
            continue
        for k, case in enumerate(getattr(module, "GRADCHECK_CASES", [])):
            cases.append(pytest.param(*case, id=f"{path.stem}-{case[0]}-{k}"))
    return cases, broken, skipped


CASES, BROKEN, SKIPPED = _load_cases()


def test_case_modules_import():
    assert not BROKEN, "test modules with GRADCHECK_CASES failed to import:\n" + "\n".join(
        f"  {name}: {err}" for name, err in BROKEN.items())


@pytest.mark.parametrize("op_name, fn, make_inputs", CASES)
def test_registered_op_gradcheck(op_name, fn, make_inputs):
    assert op_name in shendu.OP_REGISTRY, f"GRADCHECK_CASES names {op_name!r}, which is not a registered op"
    inputs = make_inputs()
    found = optest.graph_op_names(fn(*inputs))
    assert op_name in found, f"{op_name} does not occur in the case's graph (found: {sorted(found)})"
    shendu.gradcheck(fn, *inputs)


def test_every_registered_op_has_a_gradcheck_case():
    for module in pkgutil.iter_modules(shendu.ops.__path__):  # ops no test imports must be covered too
        importlib.import_module(f"shendu.ops.{module.name}")
    covered = {case.values[0] for case in CASES}
    missing = sorted(name for name in shendu.OP_REGISTRY if not name.startswith("_") and name not in covered)
    if missing and SKIPPED:
        pytest.skip(f"{missing} may be covered by skipped modules: {SKIPPED}")
    assert not missing, ("registered ops without a gradient check; add (op_name, fn, make_inputs) to a test "
                         f"module's GRADCHECK_CASES: {missing}")


# issue 2, item 3: the ops every user can call as shendu.<name> ...
ISSUE_OPS = """add sub mul div neg pow matmul exp log log1p sqrt abs sign sin cos tanh sigmoid relu leaky_relu elu selu
gelu softplus silu clip maximum minimum where sum mean var std max min prod logsumexp softmax log_softmax cumsum
reshape transpose permute swapaxes expand_dims squeeze broadcast_to flatten concatenate stack split pad repeat tile
take gather take_along_axis getitem""".split()
# ... and those NumPy/PyTorch users call as methods
TENSOR_METHODS = """pow matmul exp log log1p sqrt abs sign sin cos tanh sigmoid relu clip sum mean var std max min prod
logsumexp softmax log_softmax cumsum reshape transpose permute swapaxes expand_dims unsqueeze squeeze broadcast_to
flatten split repeat tile take maximum minimum""".split()


@pytest.mark.parametrize("name", ISSUE_OPS)
def test_issue_op_is_public(name):
    assert callable(getattr(shendu, name, None)), f"shendu.{name} is missing"


def test_tensor_methods_exist():
    missing = [name for name in TENSOR_METHODS if not callable(getattr(shendu.Tensor, name, None))]
    assert not missing, f"Tensor methods missing: {missing}"


def test_every_op_docstring_states_its_maths():
    """The derivative table is readable: each op's docstring gives the forward (y = ...) and a gradient (dx = ...)."""
    unstated = [name for name, cls in sorted(shendu.OP_REGISTRY.items())
                if not (re.search(r"\by\S*\s*=", cls.__doc__ or "")
                        and re.search(r"\bd\w+(\[[^\]]*\])?\s*\+?=", cls.__doc__ or ""))]
    assert not unstated, f"op docstrings without 'y = ...;  dx = ...': {unstated}"


def test_no_ops_module_shadows_a_python_builtin():
    """Inside the ops modules ``max(a, b)`` must be Python's: shendu.sum/max/min/abs/pow are bound in
    shendu.ops/__init__.py only (the ops modules define reduce_sum, reduce_max, reduce_min, absolute, power)."""
    shadowing = {}
    for module in pkgutil.iter_modules(shendu.ops.__path__):
        mod = importlib.import_module(f"shendu.ops.{module.name}")
        names = sorted(n for n in vars(mod) if not n.startswith("_") and hasattr(builtins, n))
        if names:
            shadowing[module.name] = names
    assert not shadowing, f"ops modules shadow Python builtins: {shadowing}"
    assert shendu.sum is shendu.ops.reduce.reduce_sum and shendu.abs is shendu.ops.elementwise.absolute
    assert shendu.max(shendu.tensor([1.0, 3.0])).item() == 3.0 and shendu.tensor([2.0]).pow(3).item() == 8.0


def test_a_user_op_with_a_builtin_name_does_not_replace_it():
    builtin = shendu.OP_REGISTRY["ExpOp"]

    class ExpOp(shendu.Op):  # a user's op that happens to share a built-in's name (and gets it wrong)
        """y = exp(x);   dx = 0"""

        def forward(self, x):
            return np.exp(x)

        def backward(self, gy, x, y):
            return gy * 0

    assert shendu.OP_REGISTRY["ExpOp"] is builtin is shendu.ops.elementwise.ExpOp
    assert ExpOp.__qualname__ not in {cls.__qualname__ for cls in shendu.OP_REGISTRY.values()}
    x = shendu.tensor([0.0, 1.0], requires_grad=True)
    shendu.exp(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp([0.0, 1.0]))
    y = shendu.tensor([1.0], requires_grad=True)
    ExpOp()(y).sum().backward()  # the user's op still works, with its own (wrong) rule
    assert y.grad.data.tolist() == [0.0]


def test_two_shendu_ops_cannot_share_a_name():
    with pytest.raises(TypeError, match=r"'ExpOp'.*already taken by shendu\.ops\.elementwise\.ExpOp"):
        type("ExpOp", (shendu.Op,), {"__module__": "shendu.ops.imagined", "__doc__": "y = x;  dx = gy"})
    assert shendu.OP_REGISTRY["ExpOp"] is shendu.ops.elementwise.ExpOp
