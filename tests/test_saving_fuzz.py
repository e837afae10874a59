"""Fuzzing the model loader: whatever the bytes, ``load_model`` either loads or raises ``FormatError``.

Four generators (hypothesis): byte edits of a valid file, edits of one entry re-zipped with valid CRCs (so the
JSON and safetensors parsers see the damage), random JSON values planted in config/training/optimizer
documents (so the deserialisers see it), and random zips. Every example must end cleanly and quickly. The kept
corpus (tests/fuzz_corpus/, one small file per distinct failure found) is replayed on every run; rebuild it with
``python tests/test_saving_fuzz.py`` after changing the format.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tempfile
import time
import warnings
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import shendu  # noqa: E402
from shendu.saving import FormatError, load_model  # noqa: E402
from shendu.saving.format import ENTRIES  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_corpus")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _valid_file() -> bytes:
    """A small, valid, compiled and trained model file (built once)."""
    if not hasattr(_valid_file, "data"):
        from shendu.layers import BatchNormalization, Dense
        from shendu.models import Sequential

        shendu.seed(5)
        model = Sequential([Dense(3, activation="relu", input_dim=2), BatchNormalization(), Dense(1)])
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        x = np.arange(8, dtype="float32").reshape(4, 2)
        model.fit(x, x[:, :1], epochs=1, verbose=0)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "seed.shendu")
            model.save(path)
            _valid_file.data = open(path, "rb").read()
    return _valid_file.data


def _entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are one of the things being tested
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def outcome(data: bytes) -> str:
    """Load ``data`` as a model file: 'ok' or the FormatError's message. Any other exception propagates."""
    state = shendu.random.get_state()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "fuzz.shendu")
        with open(path, "wb") as f:
            f.write(data)
        start = time.perf_counter()
        try:
            load_model(path)
            result = "ok"
        except FormatError as e:
            result = str(e).replace(path, "<file>")
        finally:
            shendu.random.set_state(state)
        assert time.perf_counter() - start < 10, "the loader took too long"
    return result


# ---------------------------------------------------------------------------- generators
edits = st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=8)


def byte_edited(data: bytes, changes: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in changes:
        out[position % len(out)] = value
    return bytes(out[:cut] if cut else out)


def entry_edited(data: bytes, entry_index: int, changes: list[tuple[int, int]], cut: int | None) -> bytes:
    entries = list(_entries(data).items())
    name, content = entries[entry_index % len(entries)]
    entries[entry_index % len(entries)] = (name, byte_edited(content, changes, cut) if content else b"x")
    return _zip(entries)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=3), max_leaves=6)


def _paths(document, prefix=()):
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield from _paths(value, prefix + (i,))


def json_planted(data: bytes, entry_index: int, path_index: int, value) -> bytes:
    entries = _entries(data)
    names = [n for n in entries if n.endswith(".json") and n != "meta.json"]
    name = names[entry_index % len(names)]
    document = json.loads(entries[name])
    paths = [p for p in _paths(document) if p]
    target = paths[path_index % len(paths)]
    parent = document
    for key in target[:-1]:
        parent = parent[key]
    parent[target[-1]] = value
    entries[name] = json.dumps(document).encode()
    return _zip(list(entries.items()))


random_zips = st.lists(st.tuples(st.sampled_from([*ENTRIES, "x.json", "../a", "/b", "dir/"]),
                                 st.binary(max_size=64)), max_size=7).map(_zip)


# ---------------------------------------------------------------------------- tests
@FUZZ
@given(edits, st.none() | st.integers(1, 4000))
def test_fuzz_byte_edits_of_a_valid_file(changes, cut):
    outcome(byte_edited(_valid_file(), changes, cut))


@FUZZ
@given(st.integers(0, 10), edits, st.none() | st.integers(0, 4000))
def test_fuzz_edited_entries_with_valid_crc(entry_index, changes, cut):
    outcome(entry_edited(_valid_file(), entry_index, changes, cut))


@FUZZ
@given(st.integers(0, 10), st.integers(0, 10**6), json_values)
def test_fuzz_planted_json_values(entry_index, path_index, value):
    outcome(json_planted(_valid_file(), entry_index, path_index, value))


@FUZZ
@given(random_zips)
def test_fuzz_random_zips(data):
    assert outcome(data) != "ok"


def _weights_files() -> tuple[object, dict[str, bytes]]:
    """A small built model and its weights as .npz and .safetensors bytes (built once)."""
    if not hasattr(_weights_files, "data"):
        from shendu.layers import Dense
        from shendu.models import Sequential

        model = Sequential([Dense(3, input_dim=2), Dense(1)])
        files = {}
        with tempfile.TemporaryDirectory() as directory:
            for suffix in (".npz", ".safetensors"):
                path = os.path.join(directory, "w" + suffix)
                model.save_weights(path)
                files[suffix] = open(path, "rb").read()
        _weights_files.data = model, files
    return _weights_files.data


@FUZZ
@given(st.sampled_from([".npz", ".safetensors"]), edits, st.none() | st.integers(1, 2000))
def test_fuzz_weight_files(suffix, changes, cut):
    model, files = _weights_files()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "w" + suffix)
        with open(path, "wb") as f:
            f.write(byte_edited(files[suffix], changes, cut))
        try:
            model.load_weights(path)
        except FormatError:
            pass


def test_valid_seed_file_loads():
    assert outcome(_valid_file()) == "ok"


def _corpus_files() -> list[str]:
    return sorted(f for f in os.listdir(CORPUS) if f.endswith(".bin")) if os.path.isdir(CORPUS) else []


@pytest.mark.parametrize("name", _corpus_files())
def test_fuzz_corpus_replays_cleanly(name):
    with open(os.path.join(CORPUS, name), "rb") as f:
        result = outcome(f.read())
    assert result == "ok" or result.startswith("<file>: ")


def test_fuzz_corpus_is_kept():
    assert len(_corpus_files()) >= 10


# ---------------------------------------------------------------------------- corpus maintenance
def _kind(message: str) -> str:
    """A failure's kind: the first words of its message, without numbers and quoted details."""
    return " ".join(re.sub(r"'[^']*'|\d+", "#", message.split(" (")[0]).split()[:5])


def build_corpus(directory: str = CORPUS, per_generator: int = 300) -> None:
    """Run the generators with a fixed seed and keep the smallest input of every distinct failure kind."""
    import random

    rng = random.Random(0)
    base = _valid_file()
    kept: dict[str, bytes] = {}

    def consider(data: bytes) -> None:
        kind = _kind(outcome(data))
        if kind not in kept or len(data) < len(kept[kind]):
            kept[kind] = data

    def changes():
        return [(rng.randrange(2**31), rng.randrange(256)) for _ in range(rng.randint(1, 4))]

    def value():
        return rng.choice([None, True, -1, 0, 2**40, 1.5, float("nan"), "x", "Lambda", [], {}, [1, [2]],
                           {"class_name": "Lambda", "config": {}}, {"__tensor__": 99}])

    for _ in range(per_generator):
        consider(byte_edited(base, changes(), rng.choice([None, rng.randrange(1, len(base))])))
        consider(entry_edited(base, rng.randrange(6), changes(), rng.choice([None, rng.randrange(400)])))
        consider(json_planted(base, rng.randrange(6), rng.randrange(10**6), value()))
    os.makedirs(directory, exist_ok=True)
    for old in _corpus_files():
        os.remove(os.path.join(directory, old))
    index = []
    for i, (kind, data) in enumerate(sorted(kept.items())):
        with open(os.path.join(directory, f"{i:03d}.bin"), "wb") as f:
            f.write(data)
        index.append(f"{i:03d}.bin  {kind}")
    with open(os.path.join(directory, "INDEX.txt"), "w") as f:
        f.write("Kept fuzz inputs for load_model (rebuilt by python tests/test_saving_fuzz.py); file, outcome:\n")
        f.write("\n".join(index) + "\n")
    print(f"kept {len(kept)} inputs in {directory}")


if __name__ == "__main__":
    build_corpus(*sys.argv[1:2])
