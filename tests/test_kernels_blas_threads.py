"""NumPy's BLAS on the kernels' thread pool (shendu.kernels.blas_threads): same results, no hang.

Each test runs a fresh Python process, since the pool is chosen once per process when the first parallel
kernel starts it (and the test process itself has PyTorch, which changes that choice)."""

import json
import os
import subprocess
import sys

import pytest

from shendu import kernels
from shendu.kernels.openblas import blas_offers_callback

pytestmark = pytest.mark.skipif(not (kernels.available() and blas_offers_callback()),
                                reason="needs Numba and NumPy's OpenBLAS with a threads callback (0.3.27+)")

_START = """
import importlib, json, os, sys, threading
import numpy as np
import numba
from shendu.kernels import blas_threads
jit = importlib.import_module("shendu.kernels.jit")
from shendu.kernels.elementwise import relu
x = np.linspace(-1, 1, 1 << 18, dtype=np.float32)
relu(x, np.empty_like(x))  # the first parallel kernel starts the pool
rng = np.random.default_rng(0)
pairs = [(rng.standard_normal((m, k)).astype(t), rng.standard_normal((k, n)).astype(t))
         for m, k, n in [(700, 500, 300), (64, 128, 512), (2304, 288, 64), (128, 784, 512)]
         for t in (np.float32, np.float64)]
def products():
    return [a @ b for a, b in pairs]
def same(got, want):
    return all(np.array_equal(g, w) for g, w in zip(got, want))
report = {"layer": jit._layer[0], "installed": blas_threads.installed()}
"""


def _run(body: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER", "SHENDU_BLAS_THREADS", "SHENDU_JIT")}
    environment.update(NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", **env)
    done = subprocess.run([sys.executable, "-c", _START + body + "\nprint(json.dumps(report))"],
                          capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_blas_runs_on_the_kernel_pool_with_the_same_results():
    report = _run("""
pooled = products()
blas_threads.uninstall()
report["own_threads_again"] = not blas_threads.installed()
report["same"] = same(pooled, products())  # OpenBLAS splits the work alike: bit for bit
a = rng.standard_normal((400, 400)); spd = a @ a.T + 400 * np.eye(400)
blas_threads.install()
pooled = [np.linalg.solve(a, spd), np.linalg.cholesky(spd), np.linalg.svd(a)[1], np.linalg.inv(a)]
blas_threads.uninstall()
own = [np.linalg.solve(a, spd), np.linalg.cholesky(spd), np.linalg.svd(a)[1], np.linalg.inv(a)]
report["linalg"] = all(np.allclose(p, o, rtol=1e-10, atol=1e-10) for p, o in zip(pooled, own))
""")
    assert report == {"layer": "omp", "installed": True, "own_threads_again": True, "same": True, "linalg": True}


def test_more_jobs_than_pool_threads_start_threads_of_their_own():
    """A calling thread with fewer pool threads than BLAS jobs (its Numba thread count lowered, or OpenBLAS
    given more threads than the pool has) gets its jobs run on threads started for the call: the jobs of
    one GEMM wait for each other, so they must all run at once."""
    report = _run("""
from threadpoolctl import threadpool_limits
want = products()
numba.set_num_threads(1)
report["fewer_pool_threads"] = same(products(), want)
numba.set_num_threads(2)
with threadpool_limits(4, user_api="blas"):  # more BLAS threads than the pool's 2
    report["more_blas_threads"] = all(np.allclose(g, w, rtol=1e-5, atol=1e-4) for g, w in zip(products(), want))
""")
    assert report == {"layer": "omp", "installed": True, "fewer_pool_threads": True, "more_blas_threads": True}


def test_threads_and_forked_children_get_right_products():
    report = _run("""
want = products()
results = [None] * 4
def work(i):
    results[i] = all(same(products(), want) for _ in range(3))
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
report["threads"] = all(results)
read, write = os.pipe()
child = os.fork()
if child == 0:  # OpenMP's pool does not survive fork: the child's BLAS uses OpenBLAS's own threads
    os.write(write, json.dumps([blas_threads.installed(), same(products(), want)]).encode())
    os._exit(0)
os.waitpid(child, 0)
report["child"] = json.loads(os.read(read, 100))
""")
    assert report == {"layer": "omp", "installed": True, "threads": True, "child": [False, True]}


def test_the_switch_turns_it_off():
    report = _run("", SHENDU_BLAS_THREADS="0")
    assert report == {"layer": "omp", "installed": False}
