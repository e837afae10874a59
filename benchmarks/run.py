"""Run every ``benchmarks/bench_*.py`` and print one Markdown table of shendu against PyTorch and NumPy.

    python benchmarks/run.py                  # everything, full timing
    python benchmarks/run.py --quick          # fewer sizes/steps, for a smoke test
    python benchmarks/run.py --only ops       # only modules whose name contains "ops" (bench_ops.py)
    python benchmarks/run.py --markdown bench.md --threads 1

Each module's ``run(quick)`` returns rows (see ``common.py``). The ratio columns are the plain ratio of
the values in the row's unit: for ``us/step`` (lower is better) 2.0 means shendu takes twice as long;
for ``samples/s`` (higher is better) 0.5 means shendu gets half the throughput. A target reads
``<= 1.5x torch``, ``>= 0.5x numpy``, ``<= 200 us/step`` or ``>= 1000 samples/s``; "met?" checks it.
All timings come from this one run, with the same thread count for every framework.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import re
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent

_TARGET = re.compile(r"^\s*(<=|>=)\s*([0-9.]+)\s*(x\s*torch|x\s*numpy|us/step|samples/s)\s*$")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="shendu benchmarks against PyTorch CPU and NumPy")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and steps (a smoke test)")
    parser.add_argument("--only", metavar="SUBSTRING", help="run only bench_*.py modules whose name contains it")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    parser.add_argument("--threads", type=int, default=1, help="threads for NumPy's BLAS and PyTorch (default 1)")
    return parser.parse_args(argv)


def target_met(row: dict) -> bool | None:
    """Whether ``row`` meets its target (None when there is no target or nothing to compare with)."""
    match = _TARGET.match(row.get("target") or "")
    if not match:
        return None
    op, bound, against = match.group(1), float(match.group(2)), match.group(3).replace(" ", "")
    if against in ("xtorch", "xnumpy"):
        other = row.get(against[1:])
        if not other:
            return None
        value = row["shendu"] / other
    else:
        if against != row["unit"]:
            return None
        value = row["shendu"]
    return value <= bound if op == "<=" else value >= bound


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(a: float, b: float | None) -> str:
    return "-" if not b else f"{a / b:.2f}x"


def format_table(rows: list[dict]) -> str:
    """The rows as one Markdown table."""
    header = ["workload", "unit", "shendu", "torch", "numpy", "shendu/torch", "shendu/numpy", "target", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 5 + ["---"] * 2) + "|"]
    for r in rows:
        met = target_met(r)
        cells = [r["workload"], r["unit"], _fmt(r["shendu"]), _fmt(r.get("torch")), _fmt(r.get("numpy")),
                 _ratio(r["shendu"], r.get("torch")), _ratio(r["shendu"], r.get("numpy")), r.get("target") or "-",
                 "-" if met is None else ("yes" if met else "NO")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _environment() -> str:
    import numpy as np
    from common import setup_torch, threads

    torch = setup_torch()
    torch_version = torch.__version__ if torch is not None else "not installed"
    return (f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
            f"NumPy {np.__version__}, PyTorch {torch_version}, {threads()} thread(s) for BLAS and PyTorch")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    sys.path.insert(0, str(HERE))
    from common import set_thread_env

    set_thread_env(args.threads)  # before anything imports NumPy
    paths = sorted(p for p in HERE.glob("bench_*.py") if not args.only or args.only in p.stem)
    if not paths:
        print(f"no benchmarks/bench_*.py matches --only {args.only!r}", file=sys.stderr)
        return 2
    rows: list[dict] = []
    failed = []
    for path in paths:
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(_load(path).run(quick=args.quick))
        except Exception:  # one broken workload must not hide the others' results
            traceback.print_exc()
            failed.append(path.name)
    text = f"{_environment()}{' (quick)' if args.quick else ''}\n\n{format_table(rows)}\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
