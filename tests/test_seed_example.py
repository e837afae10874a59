"""The seed article's program runs on shendu with only its imports changed (issue 3, item 9)."""

import contextlib
import io
import pathlib
import re
import runpy

import numpy as np
import pytest

import shendu

ROOT = pathlib.Path(__file__).resolve().parents[1]
SUMMARY = ROOT.parent / "shared" / "seed" / "SUMMARY.md"

SEED_PROGRAM = """
import numpy as np
X = np.random.rand(100, 1)
y = X ** 2

from shendu.models import Sequential
from shendu.layers import Dense
model = Sequential()
model.add(Dense(1, input_dim=1))

from shendu.optimizers import SGD
optimizer = SGD(lr=0.01, momentum=0.9)
model.compile(optimizer=optimizer, loss='mean_squared_error')
model.fit(X, y, epochs=1000, verbose=0)

preds = model.predict(X)
print(preds)
"""


def _code_lines(text):
    return [line.split("#")[0].rstrip() for line in text.strip().splitlines() if line.split("#")[0].strip()]


def test_seed_program_reaches_the_best_line():
    shendu.seed(0)
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(SEED_PROGRAM, namespace)
    preds, y = namespace["preds"], namespace["y"]
    assert isinstance(preds, np.ndarray) and preds.shape == (100, 1)
    mse = float(np.mean((preds - y) ** 2))
    assert mse <= 0.0065  # the best straight line leaves about 1/180 = 0.0056
    assert out.getvalue().count("[") >= 100  # the predictions were printed


def test_program_above_is_the_article_with_only_imports_changed():
    if not SUMMARY.exists():
        pytest.skip("the seed summary (../shared/seed/SUMMARY.md) is not present")
    block = re.search(r"## 4\..*?```python\n(.*?)```", SUMMARY.read_text(), re.S).group(1)
    article = _code_lines(block.replace("from keras.", "from shendu."))
    assert _code_lines(SEED_PROGRAM) == article


def test_example_script_contains_the_program_and_fits_the_curve():
    script = ROOT / "examples" / "seed_regression.py"
    program = _code_lines(SEED_PROGRAM)
    lines = [line for line in _code_lines(script.read_text()) if not line.startswith("import shendu")]
    start = lines.index(program[0])
    assert lines[start:start + len(program)] == program
    with contextlib.redirect_stdout(io.StringIO()) as out:
        runpy.run_path(str(script), run_name="__main__")
    text = out.getvalue()
    line_mse = float(re.search(r"straight line\): training MSE = ([0-9.]+)", text).group(1))
    curve_mse = float(re.search(r"Dense\(1\): training MSE = ([0-9.]+)", text).group(1))
    assert line_mse <= 0.0065 and curve_mse < 0.001


def test_pytorch_style_loop_example_learns_digits():
    pytest.importorskip("shendu.datasets.digits")
    namespace = runpy.run_path(str(ROOT / "examples" / "pytorch_style_loop.py"))
    with contextlib.redirect_stdout(io.StringIO()):
        accuracy = namespace["main"](epochs=3)
    assert accuracy > 0.85


def test_mnist_example_runs_on_the_bundled_sample(monkeypatch):
    pytest.importorskip("shendu.datasets.mnist")
    monkeypatch.setattr("sys.argv", ["mnist_mlp.py", "--sample", "--epochs", "2", "--limit", "600"])
    with contextlib.redirect_stdout(io.StringIO()) as out:
        runpy.run_path(str(ROOT / "examples" / "mnist_mlp.py"), run_name="__main__")
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", out.getvalue()).group(1))
    assert accuracy > 0.5  # 600 images, 2 epochs: far above chance (0.1)
