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


def _run(body: str, start: str = _START, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER", "SHENDU_BLAS_THREADS", "SHENDU_JIT")}
    environment.update(NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", **env)
    done = subprocess.run([sys.executable, "-c", start + body + "\nprint(json.dumps(report))"],
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


def test_thread_count_set_before_the_pool_starts_waits_for_it():
    """kernels.set_num_threads/get_num_threads before the first parallel kernel must not start Numba's pool
    (numba.set_num_threads would, outside _first_launch, and the pool would then miss the BLAS callback)."""
    report = _run("""
import importlib, json
import numpy as np
from shendu import kernels
from shendu.kernels import blas_threads
jit = importlib.import_module("shendu.kernels.jit")
report = {"before": kernels.get_num_threads()}
kernels.set_num_threads(1)
report["asked"] = kernels.get_num_threads()
report["started_early"] = bool(jit._layer) or jit._openmp_loaded_by_another()
from shendu.kernels.elementwise import relu
x = np.linspace(-1, 1, 1 << 18, dtype=np.float32)
relu(x, np.empty_like(x))
report.update(layer=jit._layer[0], installed=blas_threads.installed(), after=kernels.get_num_threads())
""", start="")
    assert report == {"before": 2, "asked": 1, "started_early": False, "layer": "omp", "installed": True,
                      "after": 1}


def test_recurrent_sequence_kernels_on_the_pool():
    """The LSTM/GRU sequence kernels (their GEMMs called inside a parallel kernel, OpenBLAS held to one thread
    per call) on the one pool: the reference's results, also with other threads multiplying at once, and
    OpenBLAS's thread count back to 2 afterwards (a product made meanwhile may have run on one thread and
    rounded differently)."""
    report = _run("""
import shendu
from shendu import kernels
from shendu.kernels import gemm
from shendu.ops import rnn
def case(kind, seed):
    r = np.random.default_rng(seed)
    k = 4 if kind == "lstm" else 3
    t = lambda *s: shendu.tensor((r.standard_normal(s) * 0.5).astype(np.float32), requires_grad=True)
    states = [t(64, 32)] * (2 if kind == "lstm" else 1)
    bias = t(k * 32) if kind == "lstm" else t(2, k * 32)
    return [t(64, 9, 8), t(8, k * 32), t(32, k * 32), bias] + states
def run(kind, inputs):
    outs = getattr(rnn, kind)(*inputs, mask=np.arange(9)[None, :] < np.arange(64)[:, None] % 10)
    grads = shendu.grad(sum((o * o).sum() for o in outs), inputs)
    return [o.data for o in outs] + [g.data for g in grads]
report["gemm"] = gemm.available()
ok = []
for kind in ("lstm", "gru"):
    inputs = case(kind, 1)
    fast = run(kind, inputs)
    with kernels.disabled():
        ref = run(kind, inputs)
    ok.append(all(np.allclose(a, b, rtol=2e-5, atol=2e-5) for a, b in zip(fast, ref)))
report["agree"] = all(ok)
want = products()
results = [None] * 4
def work(i):
    if i % 2:  # while an LSTM holds OpenBLAS to one thread, a product may run on one: rounding may differ
        results[i] = all(all(np.allclose(g, w, rtol=1e-5, atol=1e-4) for g, w in zip(products(), want))
                         for _ in range(3))
    else:
        inputs = case("lstm", 1)
        results[i] = all(all(np.array_equal(a, b) for a, b in zip(run("lstm", inputs), fast_lstm))
                         for _ in range(3))
fast_lstm = run("lstm", case("lstm", 1))
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
report["threads"] = all(results)
report["blas_threads_after"] = gemm._THREADS[0]()
""")
    assert report == {"layer": "omp", "installed": True, "gemm": True, "agree": True, "threads": True,
                      "blas_threads_after": 2}
