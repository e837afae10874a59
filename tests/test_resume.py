"""Exact resume: fit 2 epochs, save, load in a NEW process, fit 2 more == fit 4 epochs in one go (bit-identical).

Shuffling and Dropout draw from shendu's global generator, so the run only matches if the saved file restores
the generator, the optimiser's state and the weights exactly. The DataLoader variant also restores the loader's
own order state (``model.save(path, data_loader=loader)`` / ``load_model(path, data_loader=loader)``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import shendu
    from shendu.data import DataLoader
    from shendu.layers import BatchNormalization, Dense, Dropout
    from shendu.models import Sequential, load_model
    from shendu.saving import read_training_state

    mode, loader_kind, path, out = sys.argv[1:5]
    data = np.random.default_rng(7)
    x = data.normal(size=(96, 5)).astype("float32")
    y = (x[:, :1] * 2 - x[:, 1:2]).astype("float32")

    def make_data():
        if loader_kind == "loader":
            return dict(x=DataLoader((x, y), batch_size=16, shuffle=True))
        return dict(x=x, y=y, batch_size=16, shuffle=True)

    if mode in ("whole", "first"):
        shendu.seed(123)
        model = Sequential([Dense(16, activation="relu", input_dim=5), Dropout(0.25), BatchNormalization(),
                            Dense(1)])
        model.compile(optimizer=shendu.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
        kwargs = make_data()
        model.fit(**kwargs, epochs=4 if mode == "whole" else 2, verbose=0)
        if mode == "first":
            model.save(path, data_loader=kwargs["x"] if loader_kind == "loader" else None)
    else:
        kwargs = make_data()
        model = load_model(path, data_loader=kwargs["x"] if loader_kind == "loader" else None)
        start = read_training_state(path)["epoch"]
        assert start == 2 and model.history.epoch == [0, 1], (start, model.history.epoch)
        model.fit(**kwargs, epochs=4, initial_epoch=start, verbose=0)
    np.savez(out, *model.get_weights(), iterations=model.optimizer.iterations)
''')


def _run(tmp_path, *args: str) -> None:
    script = tmp_path / "resume_script.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("loader_kind", ["arrays", "loader"])
def test_resume_in_new_process_is_bit_identical(tmp_path, loader_kind):
    ckpt = str(tmp_path / "run.shendu")
    _run(tmp_path, "whole", loader_kind, ckpt, str(tmp_path / "whole.npz"))
    _run(tmp_path, "first", loader_kind, ckpt, str(tmp_path / "first.npz"))
    _run(tmp_path, "resume", loader_kind, ckpt, str(tmp_path / "resumed.npz"))
    whole, first, resumed = (np.load(tmp_path / f"{n}.npz") for n in ("whole", "first", "resumed"))
    assert int(resumed["iterations"]) == int(whole["iterations"]) == 2 * int(first["iterations"]) == 24
    keys = [k for k in whole.files if k != "iterations"]
    assert keys and all(np.array_equal(whole[k], resumed[k]) for k in keys)
    assert not all(np.array_equal(whole[k], first[k]) for k in keys)  # the last 2 epochs did change the weights
