"""The benchmark harness (benchmarks/run.py, common.py): target parsing, the configuration matrix, the summary
against a baseline. Nothing here is timed."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _load("run")
common = _load("common")


def _row(unit: str = "samples/s", shendu: float = 10.0, **extra) -> dict:
    return dict({"workload": "w", "unit": unit, "shendu": shendu, "torch": None, "numpy": None}, **extra)


@pytest.mark.parametrize("target, row, met", [
    (">= 1.0x torch", _row(shendu=10, torch=9), True),
    (">= 1.0x torch", _row(shendu=10, torch=11), False),
    (">= 1.3x torch", _row(shendu=12, torch=10), False),
    ("<= 2.0x numpy", _row("us/step", shendu=40, numpy=20), True),
    ("<= 2.0x numpy", _row("us/step", shendu=41, numpy=20), False),
    (">= 0.95x base", _row(shendu=96, base=100), True),
    (">= 0.95x base", _row(shendu=94, base=100), False),
    ("<= 1.05x base", _row("us/step", shendu=104, base=100), True),
    ("<= 5 %", _row("%", shendu=4.9), True),
    ("<= 5 %", _row("%", shendu=5.1), False),
    ("<= 35 us/step", _row("us/step", shendu=30), True),
    ("<= 35 us/step", _row("samples/s", shendu=30), None),   # unit mismatch: nothing to check
    (">= 1.0x torch", _row(shendu=10), None),                 # no torch figure
    (">= 1.0x base", _row(shendu=10), None),                  # no baseline figure
    ("", _row(), None),
    ("faster", _row(), None),
])
def test_target_met(target, row, met):
    assert run.target_met(dict(row, target=target)) is met


def test_base_target_allows_noise_both_ways():
    assert run.target_met(dict(_row(shendu=96, base=100), target=run.base_target("samples/s")))
    assert run.target_met(dict(_row("us/step", shendu=104, base=100), target=run.base_target("us/step")))
    assert not run.target_met(dict(_row("us/step", shendu=110, base=100), target=run.base_target("us/step")))


def test_configurations_without_a_pin_run_the_users_kernel_once():
    configs, notes = run.configurations(None, "both", {"PATH": "/bin"})
    assert [(c["threads"], c["blas"]) for c in configs] == [(os.cpu_count() or 1, "user"), (1, "user")][
        : 1 if (os.cpu_count() or 1) == 1 else 2]
    assert notes and "OPENBLAS_CORETYPE" in notes[0]
    for c in configs:
        for name in common.THREAD_ENV_VARS:
            assert c["env"][name] == str(c["threads"])
        assert c["env"]["PATH"] == "/bin"


def test_configurations_pinned_and_user():
    environ = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "HOME": "/root"}
    configs, notes = run.configurations([4, 1, 4], "both", environ)
    assert not notes
    assert [(c["threads"], c["blas"]) for c in configs] == [(4, "pinned"), (4, "user"), (1, "pinned"), (1, "user")]
    for c in configs:
        pinned = c["blas"] == "pinned"
        assert (c["env"].get("OPENBLAS_CORETYPE") == "Haswell") is pinned
        assert ("OPENBLAS_L2_SIZE" in c["env"]) is pinned
        assert c["env"]["NUMBA_NUM_THREADS"] == c["env"]["OMP_NUM_THREADS"] == str(c["threads"])
    assert environ["OPENBLAS_CORETYPE"] == "Haswell"  # the parent's own environment is left alone
    assert "OPENBLAS_CORETYPE=Haswell" in run.label(configs[0]) and run.label(configs[1]) == "4 threads, BLAS user"
    only_user, _ = run.configurations([2], "user", environ)
    assert [c["blas"] for c in only_user] == ["user"]
    by_hand, _ = run.configurations([2], "pinned", {}, coretype="Zen")
    assert by_hand[0]["env"]["OPENBLAS_CORETYPE"] == "Zen"


def test_summary_compares_one_thread_with_the_baseline():
    rows = [dict(_row(shendu=90.0, torch=100.0), key="convnet", target=">= 1.0x torch"),
            dict(_row(), workload="not a target", target="")]
    results = [{"label": "2 threads", "config": {"threads": 2, "blas": "user"}, "rows": rows},
               {"label": "1 thread", "config": {"threads": 1, "blas": "user"}, "rows": rows}]
    baseline = run.baseline_data([{"config": {"threads": 1, "blas": "user"},
                                   "rows": [dict(_row(shendu=80.0), key="convnet")]}])
    summary = run.summary_rows(results, baseline)
    assert [(r["config"], r["target"]) for r in summary] == [("2 threads", ">= 1.0x torch"),
                                                             ("1 thread", ">= 0.95x base")]
    assert run.target_met(summary[0]) is False and run.target_met(summary[1]) is True
    assert summary[1]["base"] == 80.0
    table = run.format_summary(summary)
    assert "1.12x" in table and table.count("\n") == 3


def test_merge_takes_medians_per_row():
    runs = [{"label": "1 thread", "rows": [dict(_row(shendu=v, torch=2 * v), key="k"), dict(_row(), workload="x")]}
            for v in (3.0, 1.0, 2.0)]
    runs[1]["rows"].append(dict(_row(shendu=5.0), workload="only once"))
    merged = run.merge(runs)
    assert [r.get("key") or r["workload"] for r in merged["rows"]] == ["k", "x", "only once"]
    assert merged["rows"][0]["shendu"] == 2.0 and merged["rows"][0]["torch"] == 4.0
    assert merged["label"] == "1 thread (median of 3 runs)"
    assert run.merge(runs[:1]) is runs[0]


def test_modules_selection():
    names = lambda **kw: [p.stem for p in run._modules(**kw)]  # noqa: E731
    first = names(only=None, memory=False, first=True)
    assert "bench_conv" in first and "bench_distributed" in first and "bench_memory" not in first
    assert "bench_distributed" not in names(only=None, memory=False, first=False)
    assert "bench_memory" in names(only=None, memory=True, first=True)
    assert "bench_memory" not in names(only=None, memory=True, first=False)
    assert names(only=["conv", "rnn"], memory=False, first=True) == ["bench_conv", "bench_rnn"]


def test_row_and_tracked():
    with pytest.raises(ValueError):
        common.row("w", "ms", 1.0, None, None, "")
    calls = []
    tracked = common.Tracked(lambda: lambda: calls.append(1))
    tracked()
    tracked()
    assert len(calls) == 2 and tracked.first_s is not None and tracked.wall_s >= tracked.first_s
    r = common.row("w", "us/step", 1.0, None, None, "", key="k", tracked=tracked)
    assert r["key"] == "k" and r["first_s"] == tracked.first_s
    firsts = []
    with_first = common.Tracked(lambda: (lambda: None, lambda: firsts.append(1)))
    assert firsts == [1] and with_first.first_s is not None


def test_owner_of_a_thread_pool():
    path = "/x/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_-abc.so"
    assert run._owner(path) == "numpy"
    assert run._owner("/x/site-packages/torch/lib/libgomp.so.1") == "torch"


def test_a_process_times_only_its_frameworks(monkeypatch):
    monkeypatch.setenv("SHENDU_BENCH_FRAMEWORKS", "shendu,numpy")
    assert common.setup_torch() is None
    calls = {"shendu": 0, "torch": 0}

    def step(name):
        return lambda: calls.__setitem__(name, calls[name] + 1)

    times = common.interleaved({"shendu": step("shendu"), "torch": step("torch"), "numpy": None}, rounds=2)
    assert calls["torch"] == 0 and calls["shendu"] > 0
    assert set(times) == {"shendu", "torch"} and times["torch"] != times["torch"]  # NaN: not timed here
    assert times["shendu"] >= 0


def test_run_config_takes_torch_figures_from_torch_process(monkeypatch):
    seen = []

    def fake_processes(config, args, first, tag, groups):
        seen.append((groups, first))
        shendu = {"rows": [dict(_row(shendu=5.0), key="k"), dict(_row(shendu=3.0), workload="only shendu")],
                  "failed": [], "env": {"torch": None}}
        torch = {"rows": [dict(_row(shendu=1.0, torch=7.0), key="k")], "failed": ["bench_x.py"],
                 "env": {"torch": "2.13", "torch_threads": 2,
                         "pools": [{"owner": "torch", "internal_api": "openmp", "num_threads": 2}]}}
        return [shendu, torch][:len(groups)]

    monkeypatch.setattr(run, "_run_processes", fake_processes)
    args = run._parse_args([])
    result = run.run_config({"threads": 2, "blas": "user", "env": {}}, args, first=True)
    assert seen == [(["shendu,numpy", "torch"], True)]
    assert result["rows"][0]["shendu"] == 5.0 and result["rows"][0]["torch"] == 7.0
    assert result["rows"][1]["torch"] is None
    assert result["env"]["torch"] == "2.13" and result["env"]["torch_pools"][0]["internal_api"] == "openmp"
    assert result["failed"] == ["bench_x.py (PyTorch process)"]
    seen.clear()
    run.run_config({"threads": 2, "blas": "user", "env": {}}, run._parse_args(["--no-torch"]), first=True)
    assert seen == [(["shendu,numpy"], True)]


_TURNS_CHILD = """
import sys, time
sys.path.insert(0, {benchmarks!r})
from common import pass_turn, take_turn
name, rounds, code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
take_turn()
for i in range(rounds):
    with open({log!r}, "a") as log:
        log.write(f"{{name}}{{i}} start {{time.perf_counter()}}\\n")
    time.sleep(0.02)
    with open({log!r}, "a") as log:
        log.write(f"{{name}}{{i}} end {{time.perf_counter()}}\\n")
    pass_turn()
sys.exit(code)
"""


def test_processes_run_in_turns(tmp_path):
    log = tmp_path / "log"
    script = tmp_path / "child.py"
    script.write_text(_TURNS_CHILD.format(benchmarks=str(Path(run.__file__).parent), log=str(log)))
    env = dict(os.environ)
    commands = [([sys.executable, str(script), "a", "3", "0"], env),
                ([sys.executable, str(script), "b", "1", "3"], env)]
    assert run.run_in_turns(commands, handoff_s=0.01) == [0, 3]
    lines = [line.split() for line in log.read_text().splitlines()]
    # one process at a time, in turns, until b has ended; a then keeps the turn
    assert [name for name, _, _ in lines[::2]] == ["a0", "b0", "a1", "a2"]
    assert all(a[0] == b[0] and a[1] == "start" and b[1] == "end" for a, b in zip(lines[::2], lines[1::2]))
    times = [float(t) for _, _, t in lines]
    assert times == sorted(times)  # no turn overlaps another


def test_take_and_pass_turn_without_run_py(monkeypatch):
    monkeypatch.delenv("SHENDU_BENCH_TURNS", raising=False)
    assert common._turn_pipes() is None
    common.take_turn()
    common.pass_turn()  # nothing to wait for: returns at once
    monkeypatch.setenv("SHENDU_BENCH_TURNS", "7,9")
    assert common._turn_pipes() == (7, 9)
