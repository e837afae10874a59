"""Run the ``benchmarks/bench_*.py`` modules in every thread/BLAS configuration and print Markdown tables.

    python benchmarks/run.py                       # default threads and 1 thread, each BLAS configuration
    python benchmarks/run.py --quick               # fewer sizes/steps, for a smoke test
    python benchmarks/run.py --threads 2 --blas user --only conv
    python benchmarks/run.py --cold-cache          # Numba compiles everything again (worst-case first step)
    python benchmarks/run.py --memory              # + resident memory over 10,000 steps (bench_memory.py)
    python benchmarks/run.py --markdown bench.md   # also write every table to bench.md

Configurations. Each one runs in two fresh Python processes, shendu and hand NumPy in one and PyTorch in the
other, whose environment is set before NumPy, Numba or PyTorch is imported. The two run in turns: one works
while the other waits, and they hand over after every timing round, so both sides of a ratio are timed a few
seconds apart however the host's speed drifts (``run_in_turns``; ``--no-torch`` runs the first alone):

* threads: the machine's default (``os.cpu_count()``: NumPy's BLAS, the Numba kernels and PyTorch all
  use every core, as a user's program does) and 1 thread; ``--threads N`` (repeatable) picks others.
  ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS`` (...) are set
  to N and the process calls ``torch.set_num_threads(N)``.
* BLAS: "pinned" keeps the environment's ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` (a development
  machine may pin OpenBLAS to an older kernel); "user" removes those two variables from the benchmark
  process's environment only, so OpenBLAS picks the kernel for this CPU as it does on a user's machine.
  When the environment sets neither, the two are the same and only "user" runs (``--coretype NAME`` pins
  one by hand for the "pinned" run). threadpoolctl reports, from inside the process, which OpenBLAS
  kernel (``architecture``) and how many threads actually ran; the table heading prints it.

Tables. One table per configuration with every row, then a summary: one row per target workload of issue 8
(``key`` in the row) per configuration. Columns: the value in the row's unit for shendu, PyTorch and NumPy
(``us/step``: lower is better; ``samples/s``: higher is better), their ratios, shendu's first step in
seconds (Numba compile or cache load included; ``--cold-cache`` gives every process an empty
``NUMBA_CACHE_DIR`` so it is the compile) and the wall seconds of shendu's whole workload (build, warm-up
and timing). The medians are taken after the warm-up. A target reads ``<= 1.5x torch``, ``>= 1.0x numpy``,
``<= 200 us/step``, ``>= 1000 samples/s``, ``<= 5 %`` or ``>= 0.95x base``; "met?" checks it.

Issue 8's targets hold at the default thread count. At 1 thread the target is "no workload slower than
before": the summary compares with ``baseline_1thread.json`` (the same benchmarks run on the code before
issue 8's work; ``--write-baseline FILE`` makes one, see README.md) and allows 5% for noise.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_BASELINE = HERE / "baseline_1thread.json"
#: the variables that pin OpenBLAS's kernel and cache size; the "user" configuration runs without them
PIN_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: modules that start their own processes with their own thread counts: run in the first configuration only
ONCE = ("bench_distributed",)
#: modules that are not part of the default run (``--memory`` adds it)
OPT_IN = ("bench_memory",)
#: at 1 thread, the slack "no slower than the baseline" allows for noise
BASE_SLACK = 0.05
#: seconds between one process's turn and the next (see ``run_in_turns``)
HANDOFF_S = 0.2

_TARGET = re.compile(r"^\s*(<=|>=)\s*([0-9.]+)\s*(x\s*torch|x\s*numpy|x\s*base|us/step|samples/s|%)\s*$")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="shendu benchmarks against PyTorch CPU and NumPy",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and steps (a smoke test)")
    parser.add_argument("--only", metavar="SUBSTRING", action="append",
                        help="run only bench_*.py modules whose name contains it (repeatable)")
    parser.add_argument("--markdown", metavar="FILE", help="also write all tables to FILE")
    parser.add_argument("--threads", type=int, action="append", metavar="N",
                        help=f"threads for BLAS, Numba and PyTorch (repeatable; default: {os.cpu_count()} and 1)")
    parser.add_argument("--blas", choices=("pinned", "user", "both"), default="both",
                        help="OpenBLAS configuration: the environment's pin, the user's kernel, or both (default)")
    parser.add_argument("--coretype", metavar="NAME", help="pin OPENBLAS_CORETYPE=NAME for the 'pinned' runs")
    parser.add_argument("--cold-cache", action="store_true",
                        help="give each process an empty NUMBA_CACHE_DIR: the first step includes the compile")
    parser.add_argument("--memory", action="store_true",
                        help="also run bench_memory.py (RSS over --memory-steps steps, default threads only)")
    parser.add_argument("--memory-steps", type=int, default=10_000, metavar="N",
                        help="steps per workload in bench_memory.py (default 10,000)")
    parser.add_argument("--baseline", metavar="FILE", default=str(DEFAULT_BASELINE),
                        help="1-thread baseline to compare with (default benchmarks/baseline_1thread.json)")
    parser.add_argument("--baseline-src", metavar="DIR",
                        help="measure the baseline in this run instead: 1-thread runs of the target workloads "
                             "with PYTHONPATH=DIR (the src/ folder of an older checkout)")
    parser.add_argument("--write-baseline", metavar="FILE", help="write the target rows of this run to FILE")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="run each configuration N times (with --baseline-src: new and old code in turn) "
                             "and report the medians: steadier figures on a busy machine (default 1)")
    parser.add_argument("--no-torch", dest="torch", action="store_false",
                        help="skip the PyTorch process (shendu and hand NumPy only)")
    parser.add_argument("--worker", metavar="JSON_OUT", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------- targets and tables
def target_met(row: dict) -> bool | None:
    """Whether ``row`` meets its target (None when there is no target or nothing to compare with)."""
    match = _TARGET.match(row.get("target") or "")
    if not match:
        return None
    op, bound, against = match.group(1), float(match.group(2)), match.group(3).replace(" ", "")
    if against in ("xtorch", "xnumpy", "xbase"):
        other = row.get(against[1:])
        if not other:
            return None
        value = row["shendu"] / other
    else:
        if against != row["unit"]:
            return None
        value = row["shendu"]
    return value <= bound if op == "<=" else value >= bound


def base_target(unit: str) -> str:
    """The 1-thread target against the baseline: no slower than before, with ``BASE_SLACK`` for noise."""
    if unit == "samples/s":
        return f">= {1 - BASE_SLACK:.2f}x base"
    return f"<= {1 / (1 - BASE_SLACK):.2f}x base"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if 0 < value < 0.1:
        return f"{value:.2g}"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(a: float, b: float | None) -> str:
    return "-" if not b else f"{a / b:.2f}x"


def _met(row: dict) -> str:
    met = target_met(row)
    return "-" if met is None else ("yes" if met else "NO")


def _markdown(header: list[str], right: set[int], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def format_table(rows: list[dict]) -> str:
    """The rows of one configuration as one Markdown table."""
    header = ["workload", "unit", "shendu", "torch", "numpy", "shendu/torch", "shendu/numpy", "first step (s)",
              "wall (s)", "target", "met?"]
    lines = [[r["workload"], r["unit"], _fmt(r["shendu"]), _fmt(r.get("torch")), _fmt(r.get("numpy")),
              _ratio(r["shendu"], r.get("torch")), _ratio(r["shendu"], r.get("numpy")), _fmt(r.get("first_s")),
              _fmt(r.get("wall_s")), r.get("target") or "-", _met(r)] for r in rows]
    return _markdown(header, {2, 3, 4, 5, 6, 7, 8}, lines)


def summary_rows(results: list[dict], baseline: dict | None) -> list[dict]:
    """One row per target workload (rows with a ``key``) per configuration. At 1 thread the target is the
    baseline's figure for the same key and BLAS configuration (when the baseline has it)."""
    rows = []
    for result in results:
        config = result["config"]
        base_rows = (baseline or {}).get("rows", {}).get(config_key(config["threads"], config["blas"]), {})
        for r in result["rows"]:
            if not r.get("key"):
                continue
            r = dict(r, config=result["label"])
            if config["threads"] == 1 and r["unit"] != "%":
                base = base_rows.get(r["key"])
                r["base"] = base["shendu"] if base and base["unit"] == r["unit"] else None
                r["target"] = base_target(r["unit"])
            rows.append(r)
    return rows


def format_summary(rows: list[dict]) -> str:
    """The summary rows as one Markdown table."""
    header = ["workload", "configuration", "unit", "shendu", "torch", "numpy", "baseline", "shendu/torch",
              "shendu/numpy", "shendu/baseline", "first step (s)", "wall (s)", "target", "met?"]
    lines = [[r["workload"], r["config"], r["unit"], _fmt(r["shendu"]), _fmt(r.get("torch")), _fmt(r.get("numpy")),
              _fmt(r.get("base")), _ratio(r["shendu"], r.get("torch")), _ratio(r["shendu"], r.get("numpy")),
              _ratio(r["shendu"], r.get("base")), _fmt(r.get("first_s")), _fmt(r.get("wall_s")),
              r.get("target") or "-", _met(r)] for r in rows]
    return _markdown(header, set(range(3, 12)), lines)


# ---------------------------------------------------------------------------- configurations
def config_key(threads: int, blas: str) -> str:
    return f"threads={threads},blas={blas}"


def configurations(threads: list[int] | None, blas: str, environ: dict[str, str],
                   coretype: str | None = None) -> tuple[list[dict], list[str]]:
    """The (threads, BLAS) configurations to run, default threads first, and notes on what was left out.

    Each configuration is ``{"threads", "blas", "env"}`` with ``env`` the whole environment of its process.
    """
    counts = threads or [os.cpu_count() or 1, 1]
    counts = list(dict.fromkeys(counts))
    pin = {name: environ[name] for name in PIN_VARS if environ.get(name)}
    if coretype:
        pin["OPENBLAS_CORETYPE"] = coretype
    notes = []
    kinds = ["pinned", "user"] if blas == "both" else [blas]
    if not pin and "pinned" in kinds:
        kinds.remove("pinned")
        notes.append(f"the environment sets no {' / '.join(PIN_VARS)}: the 'pinned' BLAS configuration is the "
                     "user's kernel, measured once")
        if not kinds:
            kinds = ["user"]
    configs = []
    for n in counts:
        for kind in kinds:
            env = {k: v for k, v in environ.items() if k not in PIN_VARS}
            if kind == "pinned":
                env.update(pin)
            env.update({name: str(n) for name in _thread_env_vars()})
            configs.append({"threads": n, "blas": kind, "env": env, "pin": pin if kind == "pinned" else {}})
    return configs, notes


def _thread_env_vars() -> tuple[str, ...]:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from common import THREAD_ENV_VARS

    return THREAD_ENV_VARS


def label(config: dict) -> str:
    threads = config["threads"]
    blas = config["blas"]
    if blas == "pinned":
        blas += " (" + ", ".join(f"{k}={v}" for k, v in config["pin"].items()) + ")"
    return f"{threads} thread{'s' if threads != 1 else ''}, BLAS {blas}"


# ---------------------------------------------------------------------------- the worker (one process)
def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _environment() -> dict:
    """What actually ran in this process: thread pools (threadpoolctl), Numba, PyTorch, which shendu."""
    import numpy as np
    from common import frameworks

    import shendu

    info: dict = {"python": platform.python_version(), "numpy": np.__version__,
                  "cpu": platform.processor() or platform.machine(), "shendu": str(Path(shendu.__file__).parent)}
    try:
        commit = subprocess.run(["git", "-C", info["shendu"], "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", info["shendu"], "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["commit"] = commit + ("+changes" if dirty else "") if commit else "?"
    except (OSError, subprocess.SubprocessError):
        info["commit"] = "?"
    try:
        from shendu import kernels

        info["jit"] = kernels.enabled()
        info["numba_threads"] = kernels.get_num_threads()
    except ImportError:  # code from before shendu.kernels
        info["jit"] = None
    try:
        import numba

        info["numba"] = numba.__version__
        try:
            info["numba_layer"] = numba.threading_layer()
        except ValueError:
            info["numba_layer"] = "none launched"
    except ImportError:
        info["numba"] = None
    try:
        if "torch" not in frameworks():  # timed in a process of its own: run_config fills these in
            raise ImportError
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    try:
        from threadpoolctl import threadpool_info

        info["pools"] = [dict({k: p.get(k) for k in ("user_api", "internal_api", "architecture", "num_threads",
                                                     "version")}, owner=_owner(p.get("filepath") or ""))
                         for p in threadpool_info()]
    except ImportError:
        info["pools"] = None
    return info


def _owner(filepath: str) -> str:
    """The package a thread pool's library came with (numpy, scipy, torch, ...), from its file path."""
    parts = Path(filepath).parts
    if "site-packages" in parts and parts.index("site-packages") + 1 < len(parts):
        return parts[parts.index("site-packages") + 1].removesuffix(".libs")
    return Path(filepath).name


def worker(args: argparse.Namespace) -> int:
    """Run the selected modules in this process (its environment already set) and write the rows as JSON."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from common import setup_torch, take_turn, threads

    take_turn()  # the configuration's other process works until it hands over (run_in_turns)
    setup_torch()  # torch.set_num_threads before any benchmark imports it
    started = time.perf_counter()
    rows, failed, seconds = [], [], {}
    for path in _modules(args.only, args.memory, first=args.label.startswith("first")):
        print(f"[{args.label.split(':', 1)[-1]}] running {path.name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            module = _load(path)
            if path.stem == "bench_memory":
                rows.extend(module.run(quick=args.quick, steps=args.memory_steps))
            else:
                rows.extend(module.run(quick=args.quick))
        except Exception:  # one broken workload must not hide the others' results
            traceback.print_exc()
            failed.append(path.name)
        seconds[path.stem] = time.perf_counter() - start
    out = {"rows": rows, "failed": failed, "seconds": seconds, "wall_s": time.perf_counter() - started,
           "threads": threads(), "env": _environment()}
    Path(args.worker).write_text(json.dumps(out))
    return 0


def _modules(only: list[str] | None, memory: bool, first: bool) -> list[Path]:
    """The bench modules to run: ``--only`` filters; ``ONCE`` modules, and ``bench_memory`` (with
    ``--memory``), run in the first configuration (the default thread count) only."""
    paths = []
    for p in sorted(HERE.glob("bench_*.py")):
        if only and not any(s in p.stem for s in only):
            continue
        if (p.stem in ONCE or p.stem in OPT_IN) and not first:
            continue
        if p.stem in OPT_IN and not memory:
            continue
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------- the parent
def heading(result: dict) -> str:
    """What ran: the OpenBLAS kernel and threads threadpoolctl saw, Numba's and PyTorch's threads, shendu."""
    env = result.get("env", {})
    pools = env.get("pools") or []

    def threads(n: object) -> str:
        return f"{n} thread{'s' if n != 1 else ''}"

    parts = [f"NumPy's OpenBLAS {p.get('version')}: kernel {p.get('architecture')}, {threads(p.get('num_threads'))}"
             for p in pools if p.get("internal_api") == "openblas" and p.get("owner") == "numpy"]
    others = [f"{p.get('owner')} {p.get('internal_api')}"
              + (f" {p.get('architecture')}" if p.get("architecture") else "") + f" x{p.get('num_threads')}"
              for p in pools if not (p.get("internal_api") == "openblas" and p.get("owner") == "numpy")]
    if others:
        parts.append("other pools: " + ", ".join(others))
    if env.get("pools") is None:
        parts.append("threadpoolctl not installed: BLAS kernel unknown")
    jit = env.get("jit")
    parts.append("Numba kernels " + ("off" if not jit else
                                     f"on, {threads(env.get('numba_threads'))} ({env.get('numba_layer')} layer)"))
    parts.append(f"PyTorch {env.get('torch')}, {threads(env.get('torch_threads'))}, timed in a process of its own "
                 "in turns with shendu's"
                 + "".join(f" ({p.get('internal_api')} x{p.get('num_threads')})" for p in env.get("torch_pools") or []))
    parts.append(f"shendu {env.get('commit')} from {env.get('shendu')}")
    return f"### {result['label']}\n\n{'; '.join(parts)}"


def run_config(config: dict, args: argparse.Namespace, first: bool, tag: str = "") -> dict:
    """Run one configuration and return its result: shendu and hand NumPy in one fresh process, PyTorch in
    another (see ``common.py``: one GNU OpenMP runtime per process, its wait policy set by whoever loads it
    first), the two in turns (:func:`run_in_turns`), the PyTorch figures merged into the first process's rows."""
    groups = ["shendu,numpy"] + ["torch"] * args.torch
    result, *torch_results = _run_processes(config, args, first, tag, groups)
    for apart in torch_results:
        torch_rows = {_ident(r): r.get("torch") for r in apart.get("rows", [])}
        for r in result.get("rows", []):
            if r.get("torch") is None and torch_rows.get(_ident(r)) is not None:
                r["torch"] = torch_rows[_ident(r)]
        env = apart.get("env", {})
        torch_pools = [p for p in env.get("pools") or [] if p.get("owner") == "torch"]
        result.setdefault("env", {}).update(torch=env.get("torch"), torch_threads=env.get("torch_threads"),
                                            torch_pools=torch_pools)
        result["failed"] = result.get("failed", []) + [f"{f} (PyTorch process)" for f in apart.get("failed", [])]
    return result


def _ident(row: dict) -> str:
    return row.get("key") or row["workload"]


def _run_processes(config: dict, args: argparse.Namespace, first: bool, tag: str, groups: list[str]) -> list[dict]:
    """Run the selected modules in one fresh process per group of frameworks (comma-separated names), the
    processes in turns; only the first group's process runs the once-only modules (``first``)."""
    name = label(config)
    commands, outs, caches = [], [], []
    for i, frameworks in enumerate(groups):
        env = dict(config["env"], SHENDU_BENCH_FRAMEWORKS=frameworks)
        if args.cold_cache:
            caches.append(tempfile.mkdtemp(prefix="shendu-numba-cache-"))
            env["NUMBA_CACHE_DIR"] = caches[-1]
        fd, out = tempfile.mkstemp(suffix=".json", prefix="shendu-bench-")
        os.close(fd)
        outs.append(out)
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", out,
                   "--label", ("first:" if first and i == 0 else "later:") + name,
                   "--memory-steps", str(args.memory_steps)]
        command += ["--quick"] * args.quick + ["--memory"] * args.memory
        for s in args.only or []:
            command += ["--only", s]
        commands.append((command, env))
    print(f"== {name}{tag}: {' and '.join(groups)} in turns", file=sys.stderr, flush=True)
    results = []
    try:
        codes = run_in_turns(commands)
        for code, out in zip(codes, outs):
            results.append(json.loads(Path(out).read_text() or "{}") if code == 0 else {})
    finally:
        for out in outs:
            os.unlink(out)
        for cache in caches:
            shutil.rmtree(cache, ignore_errors=True)
    for code, result in zip(codes, results):
        if not result:
            result.update(rows=[], failed=[f"the process (exit {code})"])
        result.update(label=name, config={"threads": config["threads"], "blas": config["blas"]})
    return results


def run_in_turns(commands: list[tuple[list[str], dict[str, str]]], handoff_s: float = HANDOFF_S) -> list[int]:
    """Start every ``(command, env)`` at once and let one work at a time; return their exit codes.

    Each process waits for its turn before it starts work and hands the turn on after each timing round
    (``common.py``: ``take_turn``, ``pass_turn``), through two pipes named in ``SHENDU_BENCH_TURNS``; a process
    that ends passes it for good. Between turns the parent waits ``handoff_s``, so the threads of the process
    that just stopped (OpenMP and OpenBLAS workers spin a while before they sleep) are idle when the next starts.
    """
    procs = []
    for command, env in commands:
        go_read, go_write = os.pipe()
        done_read, done_write = os.pipe()
        env = dict(env, SHENDU_BENCH_TURNS=f"{go_read},{done_write}")
        procs.append((subprocess.Popen(command, env=env, pass_fds=(go_read, done_write)), go_write, done_read))
        os.close(go_read)
        os.close(done_write)
    waiting = list(range(len(procs)))
    turn = 0
    while waiting:
        proc, go_write, done_read = procs[waiting[turn]]
        with contextlib.suppress(BrokenPipeError):  # it has already ended: its pipe reads as ended below
            os.write(go_write, b"g")
        if os.read(done_read, 1):
            turn = (turn + 1) % len(waiting)
        else:  # it ended: wait until it has left, so its exit does not overlap the next one's turn
            proc.wait()
            os.close(go_write)
            os.close(done_read)
            waiting.pop(turn)
            turn = turn % len(waiting) if waiting else 0
        if len(waiting) > 1:  # alone (or after the other has left) there are no spinning threads to wait out
            time.sleep(handoff_s)
    return [proc.wait() for proc, _, _ in procs]


def baseline_config(config: dict, args: argparse.Namespace) -> tuple[dict, argparse.Namespace]:
    """The configuration and options that measure the baseline: the same configuration, the target
    workloads only, with the older code (``--baseline-src``) first on ``PYTHONPATH``."""
    src = str(Path(args.baseline_src).resolve())
    env = dict(config["env"], PYTHONPATH=os.pathsep.join(filter(None, [src, config["env"].get("PYTHONPATH")])))
    old = argparse.Namespace(**{**vars(args), "memory": False,
                                "only": args.only or ["bench_conv", "bench_rnn", "bench_keras"]})
    return dict(config, env=env), old


def merge(runs: list[dict]) -> dict:
    """Several runs of one configuration as one result: the median of each figure of each row."""
    if len(runs) == 1:
        return runs[0]
    ident = _ident
    merged: dict[str, dict] = {}
    for run in runs:
        for r in run["rows"]:
            merged.setdefault(ident(r), dict(r))
    for name, r in merged.items():
        for field in ("shendu", "torch", "numpy", "first_s", "wall_s"):
            values = [x[field] for run in runs for x in run["rows"] if ident(x) == name and x.get(field) is not None]
            if values:
                r[field] = statistics.median(values)
    out = dict(runs[0], rows=list(merged.values()), failed=[f for run in runs for f in run.get("failed", [])])
    out["label"] += f" (median of {len(runs)} runs)"
    return out


def baseline_data(results: list[dict]) -> dict:
    """The target rows of ``results`` as a baseline: ``{"meta": ..., "rows": {config key: {key: row}}}``."""
    rows = {}
    for result in results:
        config = result["config"]
        rows[config_key(config["threads"], config["blas"])] = {
            r["key"]: {"workload": r["workload"], "unit": r["unit"], "shendu": r["shendu"]}
            for r in result["rows"] if r.get("key")}
    meta = {"shendu": results[0].get("env", {}).get("commit") if results else None,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    return {"meta": meta, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.worker:
        return worker(args)
    configs, notes = configurations(args.threads, args.blas, dict(os.environ), args.coretype)
    if not _modules(args.only, args.memory, first=True):
        print(f"no benchmarks/bench_*.py matches --only {args.only!r}", file=sys.stderr)
        return 2
    baseline, baseline_name = None, "none"
    if args.baseline and Path(args.baseline).exists():
        baseline, baseline_name = json.loads(Path(args.baseline).read_text()), args.baseline
    started = time.perf_counter()
    results, base_results = [], []
    for i, config in enumerate(configs):
        runs, base_runs = [], []
        for k in range(max(1, args.rounds)):
            runs.append(run_config(config, args, first=i == 0 and k == 0))
            if args.baseline_src and config["threads"] == 1:
                base_runs.append(run_config(*baseline_config(config, args), first=False, tag=" (baseline code)"))
        results.append(merge(runs))
        if base_runs:
            base_results.append(merge(base_runs))
    if args.baseline_src:
        baseline = baseline_data(base_results)
        baseline_name = f"measured in this run from {args.baseline_src}, in turn with the new code"
    total = time.perf_counter() - started
    sections = [f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                f"{platform.python_version()}{' (quick)' if args.quick else ''}"
                f"{'; cold Numba cache' if args.cold_cache else ''}; whole run {total / 60:.1f} min"]
    sections += [f"Note: {n}" for n in notes]
    summary = summary_rows(results, baseline)
    if summary:
        base = (baseline or {}).get("meta", {})
        sections.append("### Summary: issue 8's target workloads\n\n"
                        f"Baseline (1 thread): {baseline_name} "
                        f"(shendu {base.get('shendu', '?')}, {base.get('date', '?')}).\n\n{format_summary(summary)}")
    failed = []
    for result in results:
        sections.append(f"{heading(result)}\n\n{format_table(result['rows'])}")
        failed += [f"{result['label']}: {f}" for f in result.get("failed", [])]
    text = "\n\n".join(sections) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.write_baseline:
        Path(args.write_baseline).write_text(json.dumps(baseline_data(results), indent=1) + "\n")
    if failed:
        print(f"failed: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
