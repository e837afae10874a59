"""shendu.callbacks: hook order, History, progress output, EarlyStopping, ModelCheckpoint, learning-rate
callbacks, CSVLogger, TerminateOnNaN, LambdaCallback and BackupAndRestore (Keras 3 semantics)."""

import csv
import io
import os

import numpy as np
import pytest

import shendu
from shendu import callbacks as cbs
from shendu.layers import Dense
from shendu.models import Sequential
from shendu.optimizers import SGD


def _data(n=20):
    rng = np.random.default_rng(1)
    x = rng.random((n, 2)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0]], np.float32) + 0.5)


def _model(lr=0.05):
    model = Sequential([Dense(1, input_dim=2)])
    model.compile(optimizer=SGD(learning_rate=lr), loss="mse")
    return model


class RecorderCallback(cbs.Callback):
    """Overrides every hook (so CallbackList dispatches all of them) and records the calls."""

    def __init__(self):
        super().__init__()
        self.calls = []


for _hook in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
              "on_predict_begin", "on_predict_end", "on_train_batch_begin", "on_train_batch_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end"):
    setattr(RecorderCallback, _hook, (lambda name: lambda self, *args: self.calls.append(name))(_hook))


# ------------------------------------------------------------------ order and History
def test_fit_calls_hooks_in_keras_order():
    x, y = _data(10)
    rec = RecorderCallback()
    _model().fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x[:4], y[:4]), callbacks=[rec])
    epoch = (["on_epoch_begin"] + ["on_train_batch_begin", "on_train_batch_end"] * 3
             + ["on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end", "on_epoch_end"])
    assert rec.calls == ["on_train_begin"] + epoch * 2 + ["on_train_end"]


def test_evaluate_and_predict_hooks():
    x, y = _data(10)
    model = _model()
    rec = RecorderCallback()
    model.evaluate(x, y, batch_size=5, verbose=0, callbacks=[rec])
    model.predict(x, batch_size=5, verbose=0, callbacks=[rec])
    assert rec.calls == ["on_test_begin"] + ["on_test_batch_begin", "on_test_batch_end"] * 2 + ["on_test_end",
                        "on_predict_begin"] + ["on_predict_batch_begin", "on_predict_batch_end"] * 2 + [
                        "on_predict_end"]


def test_batch_hooks_are_skipped_when_nobody_listens():
    history = cbs.History()
    lst = cbs.CallbackList([history, cbs.EarlyStopping()])
    assert not lst.needs_batch_logs("train")
    assert cbs.CallbackList([cbs.TerminateOnNaN()]).needs_batch_logs("train")
    assert cbs.CallbackList([cbs.LambdaCallback(on_batch_end=lambda b, logs: None)]).needs_batch_logs("train")


def test_legacy_on_batch_end_receives_train_batches():
    x, y = _data(8)
    seen = []

    class Legacy(cbs.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, round(logs["loss"], 6)))

    _model().fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[Legacy()])
    assert [b for b, _ in seen] == [0, 1]


def test_history_records_every_epoch():
    x, y = _data()
    history = _model().fit(x, y, epochs=3, verbose=0, validation_split=0.25)
    assert isinstance(history, cbs.History)
    assert set(history.history) == {"loss", "val_loss"}
    assert len(history.history["loss"]) == 3 and history.epoch == [0, 1, 2]
    assert all(isinstance(v, float) for v in history.history["val_loss"])


def test_callbacks_must_be_callback_instances():
    with pytest.raises(TypeError, match="LambdaCallback"):
        cbs.CallbackList([lambda: None])


# ------------------------------------------------------------------ progress output
def test_verbose_1_into_a_log_file_prints_plain_lines(capsys):
    x, y = _data(12)
    _model().fit(x, y, batch_size=4, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert lines[1].startswith("3/3 - ") and "/step - loss: " in lines[1]


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = _data(12)
    _model().fit(x, y, batch_size=4, epochs=3, verbose=2, validation_data=(x, y))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert all(line.startswith("3/3 - ") and "val_loss: " in line for line in lines[1::2])


def test_verbose_0_prints_nothing(capsys):
    x, y = _data(12)
    model = _model()
    model.fit(x, y, epochs=2, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_progbar_in_a_terminal_uses_tqdm():
    class TTY(io.StringIO):
        def isatty(self):
            return True

    out = TTY()
    x, y = _data(12)
    _model().fit(x, y, batch_size=4, epochs=1, verbose=1, callbacks=[cbs.ProgbarLogger(file=out)])
    text = out.getvalue()
    assert "3/3" in text and "loss: " in text and "\r" in text


# ------------------------------------------------------------------ EarlyStopping
class FakeModel:
    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(1)]
        self.optimizer = type("Opt", (), {"learning_rate": 1.0})()
        self.metrics = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [w.copy() for w in weights]


def _run_monitor(callback, values, key="val_loss"):
    model = FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    stopped_at = None
    for epoch, value in enumerate(values):
        model.weights = [np.array([float(epoch)])]
        callback.on_epoch_end(epoch, {key: value})
        if model.stop_training:
            stopped_at = epoch
            break
    callback.on_train_end()
    return model, stopped_at


def test_early_stopping_patience():
    _, stopped = _run_monitor(cbs.EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.91, 0.5])
    assert stopped == 3


def test_early_stopping_min_delta_and_max_mode():
    _, stopped = _run_monitor(cbs.EarlyStopping(monitor="val_accuracy", min_delta=0.05, patience=1),
                              [0.5, 0.52, 0.9], key="val_accuracy")
    assert stopped == 1  # +0.02 is not an improvement by more than min_delta; accuracy is maximised


def test_early_stopping_restores_best_weights():
    model, stopped = _run_monitor(cbs.EarlyStopping(patience=2, restore_best_weights=True),
                                  [1.0, 0.3, 0.5, 0.6, 0.7])
    assert stopped == 3
    np.testing.assert_array_equal(model.weights[0], [1.0])  # the weights of epoch 1 (the best)


def test_early_stopping_baseline_and_start_from_epoch():
    _, stopped = _run_monitor(cbs.EarlyStopping(patience=2, baseline=0.1), [0.5, 0.6, 0.7, 0.8])
    assert stopped == 1  # never better than the baseline: the wait is not reset (Keras 3)
    _, stopped = _run_monitor(cbs.EarlyStopping(patience=0, start_from_epoch=3), [1.0, 2.0, 3.0, 4.0, 5.0])
    assert stopped == 4


def test_early_stopping_warns_on_missing_monitor():
    with pytest.warns(UserWarning, match="not in the logs"):
        _run_monitor(cbs.EarlyStopping(monitor="val_auc"), [0.1], key="loss")


def test_monitor_mode_auto_needs_a_known_name():
    with pytest.raises(ValueError, match="mode='max'"):
        _run_monitor(cbs.EarlyStopping(monitor="weird"), [0.1, 0.2], key="weird")


def test_early_stopping_stops_fit():
    x, y = _data()
    history = _model(lr=0.0).fit(x, y, epochs=20, verbose=0, callbacks=[cbs.EarlyStopping(monitor="loss",
                                                                                             patience=2)])
    assert len(history.history["loss"]) == 3  # lr 0: the loss never improves after epoch 0


# ------------------------------------------------------------------ ModelCheckpoint
@pytest.mark.parametrize("ext", [".npz", ".safetensors"])
def test_model_checkpoint_formats_the_path(tmp_path, ext):
    if ext == ".safetensors":
        pytest.importorskip("safetensors")
    x, y = _data()
    model = _model()
    pattern = str(tmp_path / ("w-{epoch:02d}-{loss:.3f}" + ext))
    history = model.fit(x, y, epochs=2, verbose=0, shuffle=False,
                        callbacks=[cbs.ModelCheckpoint(pattern, monitor="loss", save_weights_only=True)])
    names = sorted(os.listdir(tmp_path))
    assert names == [f"w-{e + 1:02d}-{history.history['loss'][e]:.3f}{ext}" for e in range(2)]
    fresh = _model()
    fresh.load_weights(str(tmp_path / names[-1]))
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_save_best_only(tmp_path):
    path = str(tmp_path / "best.weights.npz")
    ckpt = cbs.ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    saved = []
    model = FakeModel()
    model.save_weights = lambda p: saved.append((p, model.weights[0][0]))
    ckpt.set_model(model)
    for epoch, value in enumerate([1.0, 0.5, 0.7, 0.2]):
        model.weights = [np.array([float(epoch)])]
        ckpt.on_epoch_end(epoch, {"val_loss": value})
    assert [w for _, w in saved] == [0.0, 1.0, 3.0]


def test_model_checkpoint_unknown_field(tmp_path):
    ckpt = cbs.ModelCheckpoint(str(tmp_path / "{val_acc}.npz"))
    with pytest.raises(KeyError, match="val_acc"):
        ckpt.format_path(0, {"loss": 1.0})


# ------------------------------------------------------------------ learning rate
def test_learning_rate_scheduler_sets_rate_and_logs_it():
    x, y = _data()
    model = _model(lr=0.1)
    history = model.fit(x, y, epochs=3, verbose=0,
                        callbacks=[cbs.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)])
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.025], rtol=1e-6)
    assert history.history["lr"] == history.history["learning_rate"]
    assert model.optimizer.learning_rate == pytest.approx(0.025)


def test_learning_rate_scheduler_with_epoch_only():
    sched = cbs.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    model = FakeModel()
    sched.set_model(model)
    sched.on_epoch_begin(4)
    assert model.optimizer.learning_rate == pytest.approx(0.05)


def test_reduce_lr_on_plateau():
    cb = cbs.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, cooldown=1, min_lr=0.2)
    model, _ = _run_monitor(cb, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # epoch 1: wait 1 -> reduce to 0.5 (cooldown 1); epoch 2: cooldown; epoch 3: reduce to 0.25; then min_lr 0.2
    assert model.optimizer.learning_rate == pytest.approx(0.2)
    with pytest.raises(ValueError, match="factor"):
        cbs.ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_on_plateau_logs_rate():
    logs = {"val_loss": 1.0}
    cb = cbs.ReduceLROnPlateau()
    cb.set_model(FakeModel())
    cb.on_train_begin()
    cb.on_epoch_end(0, logs)
    assert logs["learning_rate"] == 1.0 and logs["lr"] == 1.0


# ------------------------------------------------------------------ CSVLogger, TerminateOnNaN, LambdaCallback
def test_csv_logger(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    history = _model().fit(x, y, epochs=2, verbose=0, validation_split=0.2, callbacks=[cbs.CSVLogger(path)])
    rows = list(csv.DictReader(open(path)))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert list(rows[0]) == ["epoch", "loss", "val_loss"]
    assert float(rows[1]["val_loss"]) == pytest.approx(history.history["val_loss"][1])
    _model().fit(x, y, epochs=1, verbose=0, validation_split=0.2, callbacks=[cbs.CSVLogger(path, append=True)])
    assert len(list(csv.DictReader(open(path)))) == 3


def test_terminate_on_nan():
    x, y = _data()
    y[0] = np.nan
    history = _model().fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False,
                           callbacks=[cbs.TerminateOnNaN()])
    assert len(history.history["loss"]) == 1 and np.isnan(history.history["loss"][0])


def test_lambda_callback():
    x, y = _data()
    epochs, batches = [], []
    cb = cbs.LambdaCallback(on_epoch_end=lambda epoch, logs: epochs.append(epoch),
                            on_train_batch_end=lambda batch, logs: batches.append(batch))
    _model().fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[cb])
    assert epochs == [0, 1] and batches == [0, 1, 0, 1]
    with pytest.raises(TypeError, match="on_epoch_end"):
        cbs.LambdaCallback(on_epoch_finish=print)


# ------------------------------------------------------------------ BackupAndRestore
class _Interrupt(cbs.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def _fresh(seed):
    shendu.seed(seed)
    model = Sequential([Dense(4, activation="tanh", input_dim=2), Dense(1)])
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9), loss="mse")
    return model


def test_backup_and_restore_resumes_where_it_stopped(tmp_path):
    x, y = _data(24)
    reference = _fresh(3)
    ref_history = reference.fit(x, y, batch_size=8, epochs=5, verbose=0)

    backup = cbs.BackupAndRestore(tmp_path / "backup")
    model = _fresh(3)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[backup, _Interrupt(2)])
    assert os.path.exists(tmp_path / "backup" / "backup.npz")

    resumed = _fresh(99)  # different initial weights and random state: everything must come from the backup
    history = resumed.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[backup])
    assert history.epoch == [3, 4]
    assert history.history["loss"] == ref_history.history["loss"][3:]
    for a, b in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not os.path.exists(tmp_path / "backup" / "backup.npz")  # deleted after a finished fit


def test_callback_list_says_which_batch_hooks_are_listened_to():
    class EndOnly(cbs.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    class Keras2Style(cbs.Callback):
        def on_batch_begin(self, batch, logs=None):  # the Keras 2 name of on_train_batch_begin
            pass

    plain = cbs.CallbackList([cbs.History()])
    assert not any(plain.listens(h) for h in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_end"))
    listening = cbs.CallbackList([EndOnly(), Keras2Style()])
    assert listening.listens("on_train_batch_end") and listening.listens("on_train_batch_begin")
    assert not listening.listens("on_test_batch_end") and listening.needs_batch_logs("train")
    assert cbs.CallbackList([listening]).listens("on_train_batch_end")  # nested lists
    with pytest.raises(ValueError, match="'on_epoch_end' is not a per-batch hook"):
        listening.listens("on_epoch_end")
