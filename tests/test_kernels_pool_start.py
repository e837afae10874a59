"""Starting the kernels' OpenMP pool leaves the OpenMP runtime's nesting as it found it (kernels/jit.py).

Numba's "omp" layer turns nested parallel regions on for the whole runtime when its pool starts; PyTorch,
sharing that runtime, then oversubscribes the cores in its element-wise kernels. Each test runs a fresh Python
process (the pool starts once per process) and reads the runtime's setting after the first kernel.
"""

import json
import os
import subprocess
import sys

import pytest

from shendu import kernels

pytestmark = pytest.mark.skipif(not kernels.available(), reason="needs Numba")

_BODY = """
import ctypes, importlib, json, sys
import numpy as np
jit = importlib.import_module("shendu.kernels.jit")
from shendu.kernels.elementwise import relu
x = np.linspace(-1, 1, 1 << 18, dtype=np.float32)
relu(x, np.empty_like(x))  # the first parallel kernel starts the pool (nothing loaded OpenMP before it)
if jit._layer[0] != "omp":
    print(json.dumps({"omp": False})); sys.exit(0)
from numba.np.ufunc import omppool
runtime = ctypes.CDLL(omppool.__file__)
after = runtime.omp_get_max_active_levels()
out = np.empty_like(x)
relu(x[::-1].copy(), out)  # later launches keep it too
print(json.dumps({"omp": True, "after": after,
                  "later": runtime.omp_get_max_active_levels(),
                  "result": bool(np.array_equal(np.maximum(x[::-1], 0), out))}))
"""


def _run(**env: str) -> dict:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("OMP_NESTED", "OMP_MAX_ACTIVE_LEVELS", "NUMBA_THREADING_LAYER", "SHENDU_JIT")}
    environment.update(NUMBA_NUM_THREADS="2", **env)
    done = subprocess.run([sys.executable, "-c", _BODY], capture_output=True, text=True, env=environment,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _require_omp(report: dict) -> None:
    if not report["omp"]:
        pytest.skip("Numba's OpenMP layer is not the pool here")


def test_the_pool_starts_without_turning_nested_regions_on():
    report = _run()
    _require_omp(report)
    assert report["after"] == 1  # OpenMP's default (no nesting); Numba's layer had set 255
    assert report["later"] == 1
    assert report["result"]


def test_a_users_nesting_setting_is_kept():
    report = _run(OMP_MAX_ACTIVE_LEVELS="3")
    _require_omp(report)
    assert report["after"] == 3 and report["later"] == 3


def test_pytorch_imported_first_keeps_its_setting():
    """The kernels on PyTorch's runtime (imported first): the level found there (set to 3 here, so that putting
    back a fixed default would show) is the one put back. In this order Numba's start left the level alone even
    before the fix; the test guards the fix, which must not replace another library's setting."""
    pytest.importorskip("torch")
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("OMP_NESTED", "OMP_MAX_ACTIVE_LEVELS", "NUMBA_THREADING_LAYER", "SHENDU_JIT")}
    body = """
import ctypes, importlib, json
import torch
torch.set_num_threads(2)
torch.randn(1 << 20).exp()  # PyTorch's OpenMP runtime loaded and started
from numba.np.ufunc import omppool
runtime = ctypes.CDLL(omppool.__file__)  # the same runtime: already loaded under its name
runtime.omp_set_max_active_levels(3)
before = runtime.omp_get_max_active_levels()
import numpy as np
jit = importlib.import_module("shendu.kernels.jit")
from shendu.kernels.elementwise import relu
x = np.linspace(-1, 1, 1 << 18, dtype=np.float32)
relu(x, np.empty_like(x))
print(json.dumps({"layer": jit._layer[0], "before": before, "after": runtime.omp_get_max_active_levels()}))
"""
    done = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True,
                          env=dict(environment, NUMBA_NUM_THREADS="2"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["layer"] != "omp":
        pytest.skip("the kernels took another pool beside PyTorch's runtime")
    assert report["before"] == 3 and report["after"] == 3
