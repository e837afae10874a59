"""Reliability of saving and loading under hostile files and crashes (issue 13).

- Hostile files that claim large memory: each is loaded in a subprocess whose address space is capped with
  ``resource.setrlimit(RLIMIT_AS)`` (1.5 GB) and timed; each must be refused with ``FormatError`` in well under a
  second, naming the limit (and how to raise it) where the limit is a size bound.
- A pickle in a ``.pt`` is refused with shendu's ``FormatError``.
- Kill -9 during ``save`` / ``ModelCheckpoint``: the previous file still loads, and the next save removes the
  temporaries left by the killed writers.
- ``model.save('m.h5')`` is refused with a hint; loading finds the format from the file's bytes.
- A fresh ``from shendu.saving import load_model`` (no ``shendu.models`` imported) loads the v1 fixtures.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib

import numpy as np
import pytest

import shendu
from shendu.callbacks import BackupAndRestore
from shendu.layers import Dense
from shendu.models import Sequential, load_model
from shendu.saving import FormatError
from shendu.utils.atomic import remove_stale_temporaries

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
POSIX = pytest.mark.skipif(os.name != "posix", reason="needs POSIX (setrlimit, SIGKILL, os.kill(pid, 0))")
ADDRESS_SPACE = 1536 * 2**20  # 1.5 GB: the hostile files below would need several GB without the checks
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------- building hostile files
def _small_model_file(directory) -> str:
    shendu.seed(0)
    model = Sequential([Dense(2, input_dim=4)], name="small")
    path = os.path.join(directory, "small.shendu")
    model.save(path)
    return path


def _entries(path: str) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(path: str, entries: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _dense_stack(small: str, out: str, layers: int = 96, units: int = 4096) -> str:
    """A ~9 KB model file whose config stacks ``layers`` Dense(units): 6 GB of weights if built."""
    entries = _entries(small)
    document = json.loads(entries["config.json"])
    template = document["model"]["config"]["layers"][0]["config"]
    stack = []
    for i in range(layers):
        config = {k: v for k, v in template.items() if k not in ("batch_input_shape", "input_dim")}
        stack.append({"class_name": "Dense", "config": {**config, "name": f"d{i}", "units": units}})
    document["model"]["config"]["layers"] = stack
    document["model"]["config"]["batch_input_shape"] = [None, units]
    document["model"]["build_input_shape"] = [None, units]
    entries["config.json"] = json.dumps(document).encode()
    return _zip(out, entries)


def _deflated_bomb(size_mib: int = 1536) -> tuple[bytes, int]:
    """A raw deflate stream that inflates to ``size_mib`` MiB at a modest ratio (~170:1, under any ratio cap),
    built in milliseconds by repeating one fully flushed block; returns (stream, inflated size)."""
    chunk = bytearray(2**20)
    chunk[:5000] = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * size_mib + zlib.compressobj(9, zlib.DEFLATED, -15).flush(), size_mib * 2**20


def _raw_zip(path: str, entries: list[tuple[str, bytes, int, int]]) -> str:
    """Write a zip by hand: (name, data as stored, method 0/8, inflated size); CRCs of big entries are left 0
    (the loader must refuse on the declared sizes before it ever inflates them)."""
    local, central, offset = [], [], 0
    for name, data, method, size in entries:
        crc = zlib.crc32(data) if method == 0 else 0
        raw = name.encode()
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0)
        local.append(header + raw + data)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data),
                                   size, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        offset += len(header) + len(raw) + len(data)
    directory = b"".join(central)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory), offset, 0)
    with open(path, "wb") as f:
        f.write(b"".join(local) + directory + end)
    return path


def _model_with_inflating_weights(small: str, out: str) -> str:
    """A ~9 MB .shendu whose weights.safetensors entry is deflated and inflates to 1.5 GiB."""
    entries = _entries(small)
    stream, size = _deflated_bomb()
    return _raw_zip(out, [("meta.json", entries["meta.json"], 0, len(entries["meta.json"])),
                          ("config.json", entries["config.json"], 0, len(entries["config.json"])),
                          ("weights.safetensors", stream, 8, size)])


def _npz_with_inflating_member(out: str) -> str:
    stream, size = _deflated_bomb()
    return _raw_zip(out, [("0000_w.npy", stream, 8, size)])


# ---------------------------------------------------------------------------- the capped subprocess
CAPPED_LOADER = textwrap.dedent('''
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
    import shendu.saving
    from shendu.layers import Dense
    from shendu.models import Sequential
    model = Sequential([Dense(2, input_dim=4)])
    results = []
    for kind, path in zip(sys.argv[2::2], sys.argv[3::2]):
        start = time.perf_counter()
        try:
            shendu.saving.load_model(path) if kind == "model" else model.load_weights(path)
            outcome = ("loaded", "")
        except BaseException as e:
            outcome = (type(e).__name__, str(e))
        results.append({"path": path, "error": outcome[0], "message": outcome[1],
                        "seconds": time.perf_counter() - start})
    try:  # this process's own peak (ru_maxrss would include the parent's, inherited across fork + exec)
        with open("/proc/self/status") as f:
            peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.append({"max_rss_mb": peak_kb / 1024})
    print(json.dumps(results))
''')


def _load_capped(tmp_path, files: list[tuple[str, str]]) -> tuple[list[dict], float]:
    """Load each (kind, path) in ONE subprocess capped at ADDRESS_SPACE; the results and its peak RSS in MB."""
    script = tmp_path / "capped_loader.py"
    script.write_text(CAPPED_LOADER)
    args = [str(ADDRESS_SPACE)] + [item for kind_path in files for item in kind_path]
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60,
                            env=CHILD_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    *results, rss = json.loads(result.stdout.strip().splitlines()[-1])
    return results, rss["max_rss_mb"]


@POSIX
def test_hostile_files_cannot_claim_large_memory(tmp_path):
    small = _small_model_file(tmp_path)
    files = [("model", _dense_stack(small, str(tmp_path / "dense_stack.shendu"))),
             ("model", _model_with_inflating_weights(small, str(tmp_path / "inflating.shendu"))),
             ("weights", _npz_with_inflating_member(str(tmp_path / "inflating.npz"))),
             ("weights", _model_with_inflating_weights(small, str(tmp_path / "inflating_weights.shendu")))]
    assert os.path.getsize(files[0][1]) < 16_000 and os.path.getsize(files[1][1]) < 12 * 2**20
    results, rss = _load_capped(tmp_path, files)
    expected = ["implies at least 393,216 weights, the file stores 10", "over the limit", "over the limit",
                "over the limit"]
    for outcome, message in zip(results, expected):
        assert outcome["error"] == "FormatError" and message in outcome["message"], outcome
        assert outcome["seconds"] < 1.0, outcome  # milliseconds in practice; generous for slow CI machines
    for outcome in results[1:]:  # a size bound: the refusal says how to raise it
        assert "by default max(" in outcome["message"] and "raise the limit with max_bytes=16106" in \
            outcome["message"], outcome
    assert rss < 500, f"peak RSS {rss:.0f} MB while refusing small hostile files"


@POSIX
def test_one_square_layer_cannot_claim_the_square_of_what_the_file_stores(tmp_path):
    """An ~100 KB file storing 25,000 weights whose config asks for ONE Dense(25000) on inputs of size 25,000
    (625 M weights, 2.5 GB): it passes the pre-build check (units <= stored), so the budget must refuse the
    kernel before it is allocated."""
    shendu.seed(0)
    stored = 25_000
    source = str(tmp_path / "source.shendu")
    Sequential([Dense(stored // 5, input_dim=4)]).save(source)  # 4*5000 + 5000 = 25,000 weights
    path = _dense_stack(source, str(tmp_path / "square.shendu"), layers=1, units=stored)
    assert os.path.getsize(path) < 200_000
    (outcome,), rss = _load_capped(tmp_path, [("model", path)])
    assert outcome["error"] == "FormatError" and "builds more weights than the file stores" in outcome["message"] \
        and "weight 'kernel' (25000, 25000)" in outcome["message"], outcome
    assert outcome["seconds"] < 1.0, outcome
    assert rss < 500, f"peak RSS {rss:.0f} MB while refusing a small hostile file"


def test_max_bytes_raises_the_bound_for_a_genuinely_large_file(tmp_path):
    model = Sequential([Dense(4, input_dim=3)])
    path = str(tmp_path / "w.npz")
    np.savez_compressed(path, **{"0000/w": np.zeros((3, 4), "float32"), "0001/b": np.zeros(4, "float32")})
    with pytest.raises(FormatError, match=r"320 bytes declared, over the limit of 16 bytes \(the max_bytes "
                       r"passed\); if you trust the file, raise the limit with max_bytes=320"):
        model.load_weights(path, max_bytes=16)
    model.load_weights(path, max_bytes=320)
    with pytest.raises(ValueError, match="max_bytes must be a positive int"):
        model.load_weights(path, max_bytes=-1)


def test_backup_and_restore_reads_through_the_validated_reader(tmp_path):
    backup = BackupAndRestore(str(tmp_path))
    _npz_with_inflating_member(backup.path)
    model = Sequential([Dense(1, input_dim=2)])
    model.compile("sgd", "mse")
    with pytest.raises(FormatError, match="over the limit"):
        model.fit(np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32"), callbacks=[backup], verbose=0)


# ---------------------------------------------------------------------------- pickles
class PicklePayload:
    """Any class: a pickle that names it would import and build it on load."""


def test_pickle_in_a_pt_file_is_refused_with_format_error(tmp_path):
    torch = pytest.importorskip("torch")
    path = str(tmp_path / "evil.pt")
    torch.save({"dense.weight": torch.zeros(2, 4), "payload": PicklePayload()}, path)
    model = Sequential([Dense(2, input_dim=4)])
    with pytest.raises(FormatError, match="pickled Python objects.*state_dict"):
        model.load_weights(path)
    with open(path, "rb") as f:
        (tmp_path / "evil.pth").write_bytes(f.read())
    with pytest.raises(FormatError, match="never unpickles"):
        shendu.interop.load_torch_state_dict(model, str(tmp_path / "evil.pth"))


# ---------------------------------------------------------------------------- crash leftovers
def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


@POSIX
def test_stale_temporaries_of_dead_writers_are_removed_by_the_next_save(tmp_path):
    model = Sequential([Dense(2, input_dim=3)])
    path = tmp_path / "m.shendu"
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".m.shendu.{dead}.abc123.tmp"
    live = tmp_path / f".m.shendu.{alive}.def456.tmp"  # a writer that is still running: never touched
    other = tmp_path / f".n.shendu.{dead}.abc123.tmp"  # another target's temporary: not this save's business
    legacy = tmp_path / ".m.shendu.q9x8y7.tmp"  # no pid in the name: nobody can tell whose it is
    for leftover in (stale, live, other, legacy):
        leftover.write_bytes(b"x" * 1000)
    model.save(str(path))
    assert not stale.exists() and live.exists() and other.exists() and legacy.exists()
    assert remove_stale_temporaries(tmp_path / "n.shendu") == [str(other)]


KILLED_WRITER = textwrap.dedent('''
    import sys
    import numpy as np
    import shendu
    from shendu.callbacks import ModelCheckpoint
    from shendu.layers import Dense
    from shendu.models import Sequential
    mode, path = sys.argv[1:3]
    shendu.seed(1)
    model = Sequential([Dense(1024, input_dim=512), Dense(1024), Dense(1)])  # ~6 MB of weights per save
    model.compile("sgd", "mse")
    print("ready", flush=True)
    if mode == "save":
        while True:
            model.save(path)
    x, y = np.zeros((4096, 512), "float32"), np.zeros((4096, 1), "float32")
    model.fit(x, y, batch_size=32, epochs=1000, verbose=0, callbacks=[ModelCheckpoint(path, save_freq=1)])
''')


def _stale(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(".") and name.endswith(".tmp")]


@POSIX
@pytest.mark.parametrize("mode", ["save", "checkpoint"])
def test_kill_during_save_keeps_the_old_file_and_the_next_save_cleans_up(tmp_path, mode):
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    path = str(tmp_path / "run.shendu")
    Sequential([Dense(1024, input_dim=512), Dense(1024), Dense(1)]).save(path)  # the file every kill must spare
    rng = np.random.default_rng(0)
    kills, seen_stale = 0, 0
    while kills < 3 or (not seen_stale and kills < 8):
        child = subprocess.Popen([sys.executable, str(script), mode, path], stdout=subprocess.PIPE, text=True,
                                 env=CHILD_ENV)
        assert child.stdout.readline().strip() == "ready"
        # kill around a write of this child: once its temporary file (named with its pid) exists, after a random
        # 0-30 ms (a fixed delay from "ready" often ended every child before its first save on a busy machine)
        deadline = time.monotonic() + 60
        while (not any(f".{child.pid}." in name for name in _stale(tmp_path)) and child.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.001)
        time.sleep(0.03 * rng.random())
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        kills += 1
        leftovers = _stale(tmp_path)
        assert len(leftovers) <= 1, leftovers  # each writer removed the temporaries of the writers before it
        seen_stale += len(leftovers)
        assert len(load_model(path).weights) == 6  # the old (or a complete new) file, never a torn one
    assert seen_stale, "no kill landed inside a write: the test proved nothing"
    Sequential([Dense(1, input_dim=2)]).save(path)
    assert _stale(tmp_path) == []


# ---------------------------------------------------------------------------- names and formats
def test_save_refuses_other_frameworks_suffixes_with_a_hint(tmp_path):
    model = Sequential([Dense(2, input_dim=3)])
    for name in ("m.h5", "m.pt", "m.HDF5"):
        with pytest.raises(ValueError, match=r"suffix of .* files.*name the file 'm.shendu'"):
            model.save(str(tmp_path / name))
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match=r"must end with one of \('.safetensors', '.npz'\)"):
        model.save_weights(str(tmp_path / "m.h5"))


def test_save_under_keras_suffix_says_what_it_wrote_and_loads_back(tmp_path):
    """Keras 3 programs write model.save('m.keras') and load_model('m.keras'): that round trip works, and the
    warning says the file is shendu's format, which Keras itself cannot read."""
    model = Sequential([Dense(2, input_dim=3)])
    path = str(tmp_path / "m.keras")
    with pytest.warns(UserWarning, match=r"shendu's own format .* not Keras's \.keras format"):
        model.save(path)
    np.testing.assert_array_equal(load_model(path).get_weights()[0], model.get_weights()[0])


def test_load_weights_detects_the_format_from_the_bytes_not_the_name(tmp_path):
    model = Sequential([Dense(2, input_dim=3)])
    other = Sequential([Dense(2, input_dim=3)])
    model.save(str(tmp_path / "m.shendu"))
    model.save_weights(str(tmp_path / "w.npz"))
    model.save_weights(str(tmp_path / "w.safetensors"))
    for source, misnamed in (("m.shendu", "old_save.h5"), ("w.npz", "w.safetensors.bin"), ("w.safetensors", "w.pt")):
        os.replace(tmp_path / source, tmp_path / misnamed)
        other.load_weights(str(tmp_path / misnamed))  # an .h5 name used to ask for h5py
        np.testing.assert_array_equal(other.get_weights()[0], model.get_weights()[0])
    (tmp_path / "junk.npz").write_bytes(b"not a weights file at all")
    with pytest.raises(FormatError, match="first bytes match none of"):
        other.load_weights(str(tmp_path / "junk.npz"))


def test_v1_fixtures_load_in_a_fresh_process_through_shendu_saving():
    script = textwrap.dedent(f'''
        import sys
        import numpy as np
        from shendu.saving import load_model
        assert "shendu.models" not in sys.modules
        expected = np.load({os.path.join(FIXTURES, "expected_v1.npz")!r})
        mlp = load_model({os.path.join(FIXTURES, "mlp_v1.shendu")!r})
        np.testing.assert_allclose(mlp.predict(expected["x"], verbose=0), expected["mlp"], rtol=1e-6, atol=1e-6)
        two = load_model({os.path.join(FIXTURES, "functional_v1.shendu")!r})
        main, aux = two.predict([expected["x"], expected["xb"]], verbose=0)
        np.testing.assert_allclose(main, expected["functional_main"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(aux, expected["functional_aux"], rtol=1e-6, atol=1e-6)
        print(type(mlp).__name__, type(two).__name__)
    ''')
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env=CHILD_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["Sequential", "Model"]


def test_load_model_of_a_real_keras_file_says_what_it_is_and_what_to_do(tmp_path):
    import zipfile

    path = tmp_path / "real.keras"
    with zipfile.ZipFile(path, "w") as archive:  # the entries Keras 3 writes
        for name in ("metadata.json", "config.json", "model.weights.h5"):
            archive.writestr(name, b"{}")
    with pytest.raises(FormatError, match=r"Keras 3 \.keras file .* call model\.load_weights"):
        load_model(str(path))
