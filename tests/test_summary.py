"""``model.summary()``: parameter counts as Keras prints them (``669,706``), right-aligned and never cut."""

from __future__ import annotations

import os
import re

import pytest

from shendu.layers import Dense
from shendu.models import Sequential


def _summary(model, **kwargs) -> list[str]:
    lines: list[str] = []
    model.summary(print_fn=lines.append, **kwargs)
    return lines


def _mnist_mlp() -> Sequential:
    return Sequential([Dense(512, input_dim=784), Dense(512), Dense(10)])


def test_counts_have_thousands_separators_and_are_right_aligned():
    lines = _summary(_mnist_mlp())
    assert "Total params: 669,706 (2.55 MB)" in lines
    assert "Trainable params: 669,706 (2.55 MB)" in lines and "Non-trainable params: 0 (0.00 B)" in lines
    rows = [line for line in lines if "(Dense)" in line]
    assert [row.split()[-1] for row in rows] == ["401,920", "262,656", "5,130"]
    assert len({len(row) for row in rows}) == 1  # right-aligned: the counts end in one column
    header = next(line for line in lines if "Param #" in line)
    assert header.endswith("Param #") and len(header) == len(rows[0])


def test_a_narrow_table_never_cuts_a_count():
    lines = _summary(_mnist_mlp(), line_length=40)
    assert [line.split()[-1] for line in lines if "(Dense)" in line] == ["401,920", "262,656", "5,130"]


def test_counts_match_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    theirs: list[str] = []
    keras.Sequential([keras.Input((784,)), keras.layers.Dense(512), keras.layers.Dense(512),
                      keras.layers.Dense(10)]).summary(print_fn=lambda line, **_: theirs.append(line))
    text = "\n".join(theirs)
    ours = _summary(_mnist_mlp())
    for label in ("Total params", "Trainable params", "Non-trainable params"):
        expected = re.search(rf"{label}: ([\d,]+ \([\d.]+ \w+\))", text).group(1)
        assert f"{label}: {expected}" in ours
    assert re.findall(r"│\s+([\d,]+) │", text) == [line.split()[-1] for line in ours if "(Dense)" in line]
