"""The progress bar behind ``fit(verbose=1)``: drawn in place in terminals, a widget in notebooks, plain lines in logs.

Where the output goes decides the display:

* a terminal (``file.isatty()``): a bar redrawn in place, with the ETA while the epoch runs. Every value
  stays visible: when the line would pass the terminal's width, the values wrap onto further lines
  (which the next redraw overwrites), as Keras's wrapped line does::

      100/100 ━━━━━━━━━━━━━━━━━━━━ 1s 9ms/step - accuracy: 0.9141 - auc: 0.9630 - loss: 0.2611
              - precision: 0.9010 - recall: 0.9322 - val_accuracy: 0.8900 - val_loss: 0.3012

  (tqdm draws one line and cuts it at the terminal's width, which hid the ``val_`` values at 80 columns,
  so the terminal display is drawn here: ``\\r``, and ``ESC[nA`` to go back up when it spans several lines);
* a Jupyter notebook: a ``tqdm.auto`` widget (no width limit there);
* anything else (a log file, a pipe, CI): no bar, no carriage returns and no escape codes, only plain lines:
  one every ``log_interval`` seconds for long epochs (with the ETA) and one summary line when the epoch ends.

Values (loss, metrics) are formatted as Keras does: ``loss: 0.1234`` or ``loss: 1.2340e-05``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import IO, Any, Mapping

BAR_WIDTH = 20
_UNICODE_BAR = ("━", "─")
_ASCII_BAR = ("=", ".")


def format_value(value: Any) -> str:
    """Keras's format: 4 decimals, or scientific notation for tiny values."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.4f}" if abs(v) > 1e-3 or v == 0 else f"{v:.4e}"


def format_logs(values: Mapping[str, Any] | None) -> str:
    """``loss: 0.1234 - accuracy: 0.9000``."""
    return " - ".join(_items(values))


def _items(values: Mapping[str, Any] | None) -> list[str]:
    return [f"{k}: {format_value(v)}" for k, v in (values or {}).items()]


def format_time_per_step(seconds: float, unit: str = "step") -> str:
    """``3ms/step``, ``250us/step`` or ``2s/step``."""
    if seconds >= 1:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def format_duration(seconds: float) -> str:
    """``7s``, ``2:05`` (minutes) or ``1:02:05`` (hours), as an ETA or an elapsed time.

    >>> format_duration(7.2), format_duration(125), format_duration(3725)
    ('7s', '2:05', '1:02:05')
    """
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    minutes, s = divmod(s, 60)
    if minutes < 60:
        return f"{minutes}:{s:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{s:02d}"


def wrap_items(head: str, items: list[str], width: int, indent: int = 4) -> list[str]:
    """``head - item - item ...`` broken at the `` - `` separators into lines shorter than ``width``.

    Continuation lines start with ``indent`` spaces and ``- ``; an item is never split (one longer than a whole
    line is cut, the only case where anything is lost).

    >>> wrap_items("3/3 ━━ 1s", ["loss: 0.5000", "val_loss: 0.6000"], width=32, indent=4)
    ['3/3 ━━ 1s - loss: 0.5000', '    - val_loss: 0.6000']
    """
    lines = [head]
    for item in items:
        piece = f" - {item}" if lines[-1] else item
        if not lines[-1] or len(lines[-1]) + len(piece) < width:
            lines[-1] += piece
        else:
            lines.append(" " * indent + "- " + item)
    return [line[:max(width - 1, 1)] for line in lines]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where tqdm.auto draws a widget)."""
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ipython = shell.get_ipython() if hasattr(shell, "get_ipython") else None
    return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"


def display_mode(file: IO[str]) -> str:
    """'notebook', 'terminal' or 'plain' for output going to ``file``."""
    if in_notebook():
        return "notebook"
    isatty = getattr(file, "isatty", None)
    try:
        return "terminal" if isatty is not None and isatty() else "plain"
    except ValueError:  # a closed stream
        return "plain"


def terminal_width(file: IO[str]) -> int:
    """Columns of the terminal behind ``file`` (else ``$COLUMNS``, else 80)."""
    try:
        return os.get_terminal_size(file.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):  # no file descriptor (StringIO), closed, or not a terminal
        return shutil.get_terminal_size((80, 24)).columns or 80


def _bar_glyphs(file: IO[str]) -> tuple[str, str]:
    """The bar's characters: box drawing where the stream's encoding has them, else ASCII."""
    encoding = getattr(file, "encoding", None) or "utf-8"
    try:
        "".join(_UNICODE_BAR).encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return _ASCII_BAR
    return _UNICODE_BAR


class ProgressBar:
    """Progress of one epoch (or one evaluate/predict pass) in steps.

    ``update(n, values)`` reports that ``n`` steps are done (absolute, not an increment) with the running
    ``values``; ``close(values)`` prints the summary (``4/4 - 0s - 3ms/step - loss: 0.0123``) and ends the bar.
    ``width`` is the terminal's width in columns (None: asked from the terminal at each redraw).

    >>> import io
    >>> out = io.StringIO()                      # not a terminal: plain lines only
    >>> bar = ProgressBar(4, file=out)
    >>> for step in range(1, 5):
    ...     bar.update(step, {"loss": 0.5 / step})
    >>> bar.close({"loss": 0.125})
    >>> line = out.getvalue()
    >>> line.startswith("4/4 - ") and line.endswith("step - loss: 0.1250\\n") and "\\r" not in line
    True
    """

    def __init__(self, total: int | None, unit: str = "step", file: IO[str] | None = None, mode: str | None = None,
                 min_interval: float = 0.1, log_interval: float = 30.0, width: int | None = None) -> None:
        self.total = total
        self.unit = unit
        self.file = sys.stdout if file is None else file
        self.mode = mode or display_mode(self.file)
        if self.mode not in ("terminal", "notebook", "plain"):
            raise ValueError(f"ProgressBar: mode must be 'terminal', 'notebook' or 'plain', got {self.mode!r}")
        if width is not None and width < 20:
            raise ValueError(f"ProgressBar: width must be at least 20 columns, got {width}")
        self.min_interval = min_interval
        self.log_interval = log_interval
        self.width = width
        self.n = 0
        self.start = time.perf_counter()
        self._last_draw = self.start
        self._lines_drawn = 0  # terminal: how many lines the last redraw used (the cursor sits on the last)
        self._glyphs = _bar_glyphs(self.file)
        self._bar = None  # the notebook widget
        self._bar_pending = 0  # steps not yet shown by the throttled widget
        if self.mode == "notebook":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, file=self.file, unit=unit, leave=True,
                             bar_format="{n_fmt}/{total_fmt} {bar:20} {elapsed}<{remaining}{postfix}",
                             mininterval=min_interval)

    # ------------------------------------------------------------------ text
    def _rate(self) -> str:
        return format_time_per_step((time.perf_counter() - self.start) / max(self.n, 1), self.unit)

    def _eta(self) -> str | None:
        """The time left, from the mean step time so far (None when unknown)."""
        if self.total is None or self.n <= 0 or self.n >= self.total:
            return None
        elapsed = time.perf_counter() - self.start
        return format_duration(elapsed / self.n * (self.total - self.n))

    def _status(self, values: Mapping[str, Any] | None) -> str:
        return " - ".join([self._rate(), *_items(values)])

    def _terminal_lines(self, values: Mapping[str, Any] | None, final: bool) -> list[str]:
        width = self.width or terminal_width(self.file)
        elapsed = time.perf_counter() - self.start
        if self.total is None:
            head = f"{self.n}/Unknown {format_duration(elapsed)} {self._rate()}"
        else:
            done, todo = self._glyphs
            total = str(self.total)
            size = BAR_WIDTH if width >= 60 else 10
            filled = min(size, size * self.n // max(self.total, 1))
            eta = None if final else self._eta()
            timing = f"ETA {eta}" if eta is not None else format_duration(elapsed)
            head = f"{self.n:>{len(total)}}/{total} {done * filled}{todo * (size - filled)} {timing} {self._rate()}"
        indent = len(f"{self.total}/{self.total} ") if self.total is not None else 4
        return wrap_items(head, _items(values), width, indent)

    # ------------------------------------------------------------------ drawing
    def _draw(self, values: Mapping[str, Any] | None, final: bool = False) -> None:
        """Redraw in place: back to the first line of the last drawing, then each line cleared to its end."""
        lines = self._terminal_lines(values, final)
        up = f"\x1b[{self._lines_drawn - 1}A" if self._lines_drawn > 1 else ""
        text = up + "\r" + "\n".join(line + "\x1b[K" for line in lines) + "\x1b[J"
        self._lines_drawn = len(lines)
        self.file.write(text + ("\n" if final else ""))
        self.file.flush()

    def update(self, n: int, values: Mapping[str, Any] | None = None) -> None:
        """``n`` steps done; redraw at most every ``min_interval`` seconds (plain mode: every ``log_interval``)."""
        now = time.perf_counter()
        delta, self.n = n - self.n, n
        if self.mode == "terminal":
            if now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self._draw(values)
        elif self._bar is not None:
            if now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self._bar.set_postfix_str(self._status(values), refresh=False)
                self._bar.update(delta + self._bar_pending)
                self._bar_pending = 0
            else:
                self._bar_pending += delta
        elif now - self._last_draw >= self.log_interval:
            self._last_draw = now
            self._print_line(values, final=False)

    def _print_line(self, values: Mapping[str, Any] | None, final: bool) -> None:
        total = "" if self.total is None else f"/{self.total}"
        elapsed = time.perf_counter() - self.start
        eta = None if final else self._eta()
        parts = [f"{self.n}{total}", f"{elapsed:.0f}s"] + ([f"ETA {eta}"] if eta else []) + [self._status(values)]
        print(" - ".join(parts), file=self.file, flush=True)

    def close(self, values: Mapping[str, Any] | None = None) -> None:
        """Finish: the bar shows the final values (or a plain summary line is printed)."""
        if self.mode == "terminal":
            self._draw(values, final=True)
            self.mode = "closed"
        elif self._bar is not None:
            self._bar.n = self.n
            if self.total is None:
                self._bar.total = self.n
            self._bar.set_postfix_str(self._status(values), refresh=False)
            self._bar.refresh()
            self._bar.close()
            self._bar = None
        elif self.mode == "plain":
            self._print_line(values, final=True)
