"""The progress bar as a user sees it: every value visible at 80 columns in a terminal, an ETA while the
epoch runs, and clean lines (no carriage returns, no escape codes) in log files.

Terminal output is checked on a screen rebuilt by a small terminal emulator (``Screen``), so the tests see
what a terminal shows after the in-place redraws, not the raw stream.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

import shendu
from shendu import callbacks as cbs
from shendu.layers import Dense
from shendu.models import Sequential
from shendu.utils.progress import ProgressBar, format_duration, wrap_items

METRICS = {"accuracy": 0.6680, "auc": 0.7609, "loss": 0.6141, "precision": 0.6433, "recall": 0.7769}
VAL = {f"val_{k}": v + 0.1 for k, v in METRICS.items()}


class TTY(io.StringIO):
    """A stream that says it is a terminal."""

    def __init__(self, encoding: str = "utf-8") -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:
        return self._encoding

    def isatty(self) -> bool:
        return True


class Screen:
    """What a terminal of ``width`` columns shows for ``text``: handles \\r, \\n, ESC[nA, ESC[K and ESC[J, and
    records any line that reached the last column (the terminal would wrap it and the redraw would break)."""

    def __init__(self, text: str, width: int = 80) -> None:
        self.rows: list[list[str]] = [[]]
        self.overflow = False
        row = col = 0
        for token in re.findall(r"\x1b\[(\d*)([AKJ])|(\r)|(\n)|(.)", text, flags=re.S):
            count, code, cr, nl, char = token
            if code == "A":
                row = max(row - int(count or 1), 0)
            elif code == "K":
                del self.rows[row][col:]
            elif code == "J":
                del self.rows[row][col:]
                del self.rows[row + 1:]
            elif cr:
                col = 0
            elif nl:  # the terminal's line discipline turns \n into \r\n
                row, col = row + 1, 0
                while len(self.rows) <= row:
                    self.rows.append([])
            else:
                assert char != "\x1b", f"unknown escape sequence in {text!r}"
                if col >= width - 1:
                    self.overflow = True
                line = self.rows[row]
                line.extend(" " * (col + 1 - len(line)))
                line[col] = char
                col += 1

    @property
    def lines(self) -> list[str]:
        return ["".join(r).rstrip() for r in self.rows if "".join(r).strip()]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _values_on_screen(screen: Screen, values: dict[str, float]) -> None:
    joined = " ".join(screen.lines)
    for key, value in values.items():
        assert f"{key}: {value:.4f}" in joined, f"{key} is not visible on:\n{screen.text}"


@pytest.mark.parametrize("width", [80, 110])
def test_terminal_shows_every_value_including_val_at_the_end(width):
    out = TTY()
    bar = ProgressBar(16, file=out, min_interval=0.0, width=width)
    for step in range(1, 17):
        bar.update(step, METRICS)
    bar.close({**METRICS, **VAL})
    screen = Screen(out.getvalue(), width)
    assert not screen.overflow, screen.text
    assert all(len(line) < width for line in screen.lines)
    _values_on_screen(screen, {**METRICS, **VAL})
    assert screen.lines[0].startswith("16/16 ━━━━━━━━━━━━━━━━━━━━ ") and "/step - " in screen.lines[0]
    assert all(line.startswith("      - ") for line in screen.lines[1:])  # continuation lines, aligned
    assert "ETA" not in screen.text  # the finished epoch shows its elapsed time


def test_terminal_shows_the_eta_and_every_value_while_the_epoch_runs():
    out = TTY()
    bar = ProgressBar(40, file=out, min_interval=0.0, width=80)
    for step in range(1, 11):
        bar.update(step, METRICS)
    screen = Screen(out.getvalue())
    assert re.match(r"10/40 ━{5}─{15} ETA \d+s ", screen.lines[0]), screen.text
    _values_on_screen(screen, METRICS)
    assert len(screen.lines) == 2  # redrawn in place: not one copy per step


def test_terminal_redraw_leaves_no_stale_lines_when_the_values_shrink():
    out = TTY()
    bar = ProgressBar(4, file=out, min_interval=0.0, width=80)
    bar.update(1, {**METRICS, **VAL})  # three lines
    bar.update(2, {"loss": 0.5})  # one line
    screen = Screen(out.getvalue())
    assert len(screen.lines) == 1 and screen.lines[0].endswith("loss: 0.5000"), screen.text


def test_terminal_bar_falls_back_to_ascii_where_the_encoding_lacks_box_drawing():
    out = TTY(encoding="ascii")
    bar = ProgressBar(4, file=out, min_interval=0.0, width=80)
    bar.update(2, {"loss": 0.5})
    bar.close({"loss": 0.25})
    out.getvalue().encode("ascii")  # nothing the stream cannot write
    assert Screen(out.getvalue()).lines[0].startswith("2/4 ==========.......... ")


def test_terminal_unknown_total_counts_steps():
    out = TTY()
    bar = ProgressBar(None, file=out, min_interval=0.0, width=80)
    bar.update(7, {"loss": 0.5})
    bar.close({"loss": 0.5})
    assert re.match(r"7/Unknown \d+s \S+/step - loss: 0.5000$", Screen(out.getvalue()).lines[0])


def test_plain_output_has_the_eta_in_interim_lines_and_no_control_characters():
    out = io.StringIO()
    bar = ProgressBar(4, file=out, log_interval=0.0)
    for step in range(1, 5):
        bar.update(step, {"loss": 0.5})
    bar.close({"loss": 0.25, "val_loss": 0.5})
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["1/4", "2/4", "3/4", "4/4", "4/4"]
    assert all(" - ETA " in line for line in lines[:3]) and not any("ETA" in line for line in lines[3:])
    assert lines[-1].endswith("loss: 0.2500 - val_loss: 0.5000")


def test_wrap_items_keeps_items_whole():
    items = [f"metric_{i}: 0.{i}000" for i in range(12)]
    lines = wrap_items("5/5 bar 1s", items, width=40, indent=4)
    assert all(len(line) < 40 for line in lines)
    assert " ".join(lines).count("metric_") == 12
    assert all(line.startswith("    - metric_") for line in lines[1:])
    assert wrap_items("", ["a: 1", "b: 2"], width=40) == ["a: 1 - b: 2"]


def test_format_duration():
    assert [format_duration(s) for s in (0, 59.4, 60, 3599, 3600, -1)] == ["0s", "59s", "1:00", "59:59",
                                                                            "1:00:00", "0s"]


def test_too_narrow_width_is_refused():
    with pytest.raises(ValueError, match="width must be at least 20 columns, got 5"):
        ProgressBar(3, width=5)


# ---------------------------------------------------------------------------- through fit
def _fit(out, epochs=2, monkeypatch=None):
    shendu.seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = Sequential([Dense(8, activation="relu", input_dim=4), Dense(1, activation="sigmoid")])
    model.compile("adam", loss="binary_crossentropy", metrics=["accuracy", "precision", "recall", "auc"])
    model.fit(x, y, batch_size=16, epochs=epochs, validation_split=0.25, verbose=1,
              callbacks=[cbs.ProgbarLogger(file=out)])
    return model


@pytest.mark.parametrize("columns", [80, 110])
def test_fit_in_a_terminal_shows_val_loss_at_80_and_110_columns(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))  # the width a terminal without a file descriptor reports
    out = TTY()
    model = _fit(out)
    screen = Screen(out.getvalue(), columns)
    assert not screen.overflow, screen.text
    history = model.history.history
    text = " ".join(screen.lines)
    for key in ("loss", "val_loss", "val_accuracy", "val_auc", "val_precision", "val_recall"):
        assert f"{key}: {history[key][-1]:.4f}" in text, f"{key} missing at {columns} columns:\n{screen.text}"
    assert [line for line in screen.lines if line.startswith("Epoch")] == ["Epoch 1/2", "Epoch 2/2"]


def test_fit_into_a_log_file_writes_one_clean_line_per_epoch():
    out = io.StringIO()
    model = _fit(out, epochs=3)
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 6 and lines[0::2] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert all(line.startswith("3/3 - ") for line in lines[1::2])
    assert f"val_loss: {model.history.history['val_loss'][-1]:.4f}" in lines[-1]


def test_notebook_mode_uses_the_tqdm_widget_with_elapsed_and_remaining_time():
    out = io.StringIO()  # outside Jupyter tqdm.auto falls back to the text bar, written to ``out``
    bar = ProgressBar(4, file=out, mode="notebook", min_interval=0.0)
    for step in range(1, 5):
        bar.update(step, {"loss": 0.5})
    bar.close({"loss": 0.25, "val_loss": 0.5})
    last = out.getvalue().split("\r")[-1]
    assert re.search(r"4/4 .* \d\d:\d\d<\d\d:\d\d, \d+\S*/step - loss: 0.2500 - val_loss: 0.5000", last), last
