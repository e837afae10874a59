"""The progress bar behind ``fit(verbose=1)``: tqdm in terminals and notebooks, plain lines in log files.

Where the output goes decides the display:

* a terminal (``file.isatty()``): a ``tqdm`` bar redrawn in place;
* a Jupyter notebook: ``tqdm.auto`` (a widget);
* anything else (a log file, a pipe, CI): no bar and no carriage returns, only plain lines: one every
  ``log_interval`` seconds for long epochs and one summary line when the epoch ends.

Values (loss, metrics) are formatted as Keras does: ``loss: 0.1234`` or ``loss: 1.2340e-05``.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Mapping


def format_value(value: Any) -> str:
    """Keras's format: 4 decimals, or scientific notation for tiny values."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.4f}" if abs(v) > 1e-3 or v == 0 else f"{v:.4e}"


def format_logs(values: Mapping[str, Any] | None) -> str:
    """``loss: 0.1234 - accuracy: 0.9000``."""
    return " - ".join(f"{k}: {format_value(v)}" for k, v in (values or {}).items())


def format_time_per_step(seconds: float, unit: str = "step") -> str:
    """``3ms/step``, ``250us/step`` or ``2s/step``."""
    if seconds >= 1:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


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


class ProgressBar:
    """Progress of one epoch (or one evaluate/predict pass) in steps.

    ``update(n, values)`` reports that ``n`` steps are done (absolute, not an increment) with the running
    ``values``; ``close(values)`` prints the summary (``4/4 - 0s - 3ms/step - loss: 0.0123``) and ends the bar.

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
                 min_interval: float = 0.1, log_interval: float = 30.0) -> None:
        self.total = total
        self.unit = unit
        self.file = sys.stdout if file is None else file
        self.mode = mode or display_mode(self.file)
        if self.mode not in ("terminal", "notebook", "plain"):
            raise ValueError(f"ProgressBar: mode must be 'terminal', 'notebook' or 'plain', got {self.mode!r}")
        self.min_interval = min_interval
        self.log_interval = log_interval
        self.n = 0
        self.start = time.perf_counter()
        self._last_draw = self.start
        self._bar = None
        self._bar_pending = 0  # steps not yet shown by the throttled tqdm bar
        if self.mode != "plain":
            if self.mode == "notebook":
                from tqdm.auto import tqdm
            else:
                from tqdm import tqdm
            self._bar = tqdm(total=total, file=self.file, unit=unit, leave=True, dynamic_ncols=True,
                             bar_format="{n_fmt}/{total_fmt} {bar:20} {elapsed}{postfix}", mininterval=min_interval)

    def _status(self, values: Mapping[str, Any] | None) -> str:
        steps = max(self.n, 1)
        parts = [format_time_per_step((time.perf_counter() - self.start) / steps, self.unit)]
        logs = format_logs(values)
        return " - ".join(parts + ([logs] if logs else []))

    def update(self, n: int, values: Mapping[str, Any] | None = None) -> None:
        """``n`` steps done; redraw at most every ``min_interval`` seconds (plain mode: every ``log_interval``)."""
        now = time.perf_counter()
        delta, self.n = n - self.n, n
        if self._bar is not None:
            if now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self._bar.set_postfix_str(self._status(values), refresh=False)
                self._bar.update(delta + self._bar_pending)
                self._bar_pending = 0
            else:
                self._bar_pending += delta
        elif now - self._last_draw >= self.log_interval:
            self._last_draw = now
            self._print_line(values)

    def _print_line(self, values: Mapping[str, Any] | None) -> None:
        total = "" if self.total is None else f"/{self.total}"
        elapsed = time.perf_counter() - self.start
        print(f"{self.n}{total} - {elapsed:.0f}s - {self._status(values)}", file=self.file, flush=True)

    def close(self, values: Mapping[str, Any] | None = None) -> None:
        """Finish: the bar shows the final values (or a plain summary line is printed)."""
        if self._bar is not None:
            self._bar.n = self.n
            if self.total is None:
                self._bar.total = self.n
            self._bar.set_postfix_str(self._status(values), refresh=False)
            self._bar.refresh()
            self._bar.close()
            self._bar = None
        else:
            self._print_line(values)
