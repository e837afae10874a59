"""Keras 3 idioms that each stopped a program: feature extraction from a Sequential's ``inputs``, ``x -= y``
inside ``call``, ``utils.PyDataset`` given to fit/evaluate/predict, and ``callbacks.TensorBoard``."""

from __future__ import annotations

import glob
import os
import sys
import threading
import time

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import shendu  # noqa: E402
from shendu import callbacks, layers, models, utils  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # keras


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------- Sequential.inputs / outputs
def test_feature_extraction_from_a_sequential_as_keras_3_does():
    keras = pytest.importorskip("keras")
    seq = models.Sequential([layers.Input((5,)), layers.Dense(4, activation="relu"), layers.Dense(3),
                             layers.Dense(2)])
    kseq = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3),
                             keras.layers.Dense(2)])
    kseq.set_weights(seq.get_weights())
    assert len(seq.inputs) == len(kseq.inputs) == 1 and len(seq.outputs) == len(kseq.outputs) == 1
    assert seq.inputs[0].shape == tuple(kseq.inputs[0].shape) and seq.outputs[0].shape == (None, 2)
    extractor = models.Model(inputs=seq.inputs, outputs=[layer.output for layer in seq.layers])
    kextractor = keras.Model(inputs=kseq.inputs, outputs=[layer.output for layer in kseq.layers])
    x = _x(6, 5)
    for ours, theirs in zip(extractor.predict(x, verbose=0), kextractor.predict(x, verbose=0)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    head = models.Model(seq.inputs, seq.layers[-1].output)
    np.testing.assert_allclose(head.predict(x, verbose=0), seq.predict(x, verbose=0), rtol=1e-6)


def test_sequential_inputs_survive_add_one_by_one_and_are_none_before_build():
    seq = models.Sequential()
    assert seq.inputs is None and seq.outputs is None
    seq.add(layers.Input((3,)))
    seq.add(layers.Dense(4))
    seq.add(layers.Dense(2))  # every add rebuilds: the layers' outputs must still hang off one Input
    extractor = models.Model(seq.inputs, [seq.layers[0].output, seq.layers[1].output])
    first, last = extractor.predict(_x(2, 3), verbose=0)
    assert first.shape == (2, 4) and last.shape == (2, 2)
    lazy = models.Sequential([layers.Dense(2)])
    assert lazy.inputs is None
    lazy(_x(2, 7))
    assert lazy.inputs[0].shape == (None, 7)


# ---------------------------------------------------------------------------- x -= y inside call
class SinglesCentre(layers.Layer):
    """Keras 3 code written for immutable tensors: ``x -= mean`` on an intermediate."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        x = x * self.scale
        x -= shendu.mean(x, axis=-1, keepdims=True)
        x /= 2.0
        x += 1.0
        x *= self.scale
        return x


def test_inplace_operators_on_intermediates_inside_call_train():
    keras = pytest.importorskip("keras")
    from keras import ops as kops

    class KerasSinglesCentre(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

        def call(self, x):
            x = x * self.scale
            x -= kops.mean(x, axis=-1, keepdims=True)
            x /= 2.0
            x += 1.0
            x *= self.scale
            return x

    x = _x(4, 3)
    ours = models.Sequential([layers.Input((3,)), SinglesCentre()])
    theirs = keras.Sequential([keras.Input((3,)), KerasSinglesCentre()])
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-6)
    ours.compile("sgd", "mse")
    before = ours.get_weights()[0].copy()
    history = ours.fit(x, np.zeros((4, 3), np.float32), epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and not np.array_equal(before, ours.get_weights()[0])
    # the gradient through the in-place lines equals the one through their out-of-place spelling
    w = shendu.Parameter(np.array([1.0, 2.0, 3.0], np.float32))
    h = shendu.tensor(x) * w
    h -= shendu.mean(h, axis=-1, keepdims=True)
    (h * h).sum().backward()
    inplace_grad = w.grad.data.copy()
    w.grad = None
    h = shendu.tensor(x) * w
    h = h - shendu.mean(h, axis=-1, keepdims=True)
    (h * h).sum().backward()
    np.testing.assert_allclose(inplace_grad, w.grad.data, rtol=1e-6)


# ---------------------------------------------------------------------------- PyDataset
class SinglesBatches(utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_begun = self.epochs_ended = 0
        self.threads = set()

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        self.threads.add(threading.current_thread().name)
        time.sleep(0.001 * (index % 3))  # batches finish out of order in the worker threads
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]

    def on_epoch_begin(self):
        self.epochs_begun += 1

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_pydataset_feeds_fit_evaluate_and_predict_like_the_arrays():
    x, y = _x(50, 3), _x(50, 1, seed=1)
    data = SinglesBatches(x, y, 16, workers=4, use_multiprocessing=True, max_queue_size=5)
    assert (data.workers, data.use_multiprocessing, data.max_queue_size, data.num_batches) == (4, True, 5, 4)

    def model():
        shendu.seed(3)
        m = models.Sequential([layers.Input((3,)), layers.Dense(4, activation="tanh"), layers.Dense(1)])
        m.compile("sgd", "mse")
        return m

    from_dataset, from_arrays = model(), model()
    h1 = from_dataset.fit(data, epochs=3, verbose=0)
    h2 = from_arrays.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)
    assert data.epochs_begun == data.epochs_ended == 3  # Keras's hooks, once per epoch
    assert len(data.threads) > 1 and all(name.startswith("PyDataset") for name in data.threads)
    assert np.isclose(from_dataset.evaluate(data, verbose=0), from_arrays.evaluate(x, y, verbose=0), rtol=1e-5)
    assert from_dataset.predict(data, verbose=0).shape == (50, 1)
    serial = SinglesBatches(x, y, 16)
    assert serial.workers == 1 and [b[0].shape[0] for b in serial] == [16, 16, 16, 2]
    assert serial.threads == {threading.current_thread().name} and serial.epochs_ended == 1
    assert utils.Sequence is utils.PyDataset
    with pytest.raises(ValueError, match="workers"):
        SinglesBatches(x, y, 16, workers=0)


def test_a_pydataset_without_getitem_says_what_to_define():
    class SinglesEmpty(utils.PyDataset):
        def __len__(self):
            return 1

    with pytest.raises(NotImplementedError, match="__getitem__"):
        SinglesEmpty()[0]


# ---------------------------------------------------------------------------- TensorBoard
def _scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(run_dir)
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_tensorboard_writes_keras_tags_for_train_and_validation(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = _x(40, 3), _x(40, 1, seed=1)
    model = models.Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    board = callbacks.TensorBoard(log_dir=tmp_path, histogram_freq=1, update_freq="batch")
    history = model.fit(x, y, epochs=3, batch_size=10, validation_split=0.25, verbose=0, callbacks=[board])
    train = _scalars(str(tmp_path / "train"))
    validation = _scalars(str(tmp_path / "validation"))
    assert {"epoch_loss", "epoch_mae", "epoch_learning_rate", "batch_loss"} <= set(train)
    assert set(validation) == {"epoch_loss", "epoch_mae"}
    assert [s for s, _ in train["epoch_loss"]] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in train["epoch_loss"]], history.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in validation["epoch_loss"]], history.history["val_loss"], rtol=1e-6)
    assert len(train["batch_loss"]) == 9  # 30 training samples in batches of 10, three epochs
    assert len(glob.glob(str(tmp_path / "train" / "events.out.tfevents.*"))) == 1


def test_tensorboard_refuses_what_it_does_not_write_and_explains_a_missing_package(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    with pytest.raises(ValueError, match="embeddings_freq"):
        callbacks.TensorBoard(tmp_path, embeddings_freq=1)
    with pytest.raises(ValueError, match="update_freq"):
        callbacks.TensorBoard(tmp_path, update_freq="sometimes")
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        callbacks.TensorBoard(tmp_path)


class _TwoNamedInputs(models.Model):
    """A subclassed model fed a dict of inputs, as Keras 3's multi-input guides write it."""

    def __init__(self):
        super().__init__()
        self.title = layers.Dense(4, activation="relu")
        self.body = layers.Dense(4, activation="relu")
        self.head = layers.Dense(1)

    def call(self, inputs):
        return self.head(layers.concatenate([self.title(inputs["title"]), self.body(inputs["body"])]))


def test_a_subclassed_model_fed_a_dict_of_inputs_builds_and_trains():
    shendu.seed(0)
    rng = np.random.default_rng(0)
    x = {"title": rng.normal(size=(32, 3)).astype("float32"), "body": rng.normal(size=(32, 5)).astype("float32")}
    y = x["title"][:, :1] - x["body"][:, :1]
    model = _TwoNamedInputs()
    model.build({"title": (None, 3), "body": (None, 5)})
    assert model.built and [w.shape for w in model.title.weights] == [(3, 4), (4,)]
    model.compile("adam", "mse")
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(x, verbose=0).shape == (32, 1)


def test_to_json_round_trips_through_model_from_json():
    model = models.Sequential([layers.Input((3,)), layers.Dense(2, activation="relu"), layers.Dense(1)])
    text = model.to_json()
    assert '"class_name": "Sequential"' in text
    clone = models.model_from_json(text)
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    clone.set_weights(model.get_weights())
    x = np.ones((2, 3), dtype="float32")
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("data", [np.ones(2), (np.ones(2),), (np.ones(2), np.zeros(2)),
                                  (np.ones(2), np.zeros(2), np.full(2, 0.5)), [np.ones(2), np.zeros(2)]])
def test_utils_pack_and_unpack_x_y_sample_weight_match_keras(data):
    keras = pytest.importorskip("keras")
    ours = utils.unpack_x_y_sample_weight(data)
    theirs = keras.utils.unpack_x_y_sample_weight(tuple(data) if isinstance(data, list) else data)
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        assert (a is None and b is None) or np.array_equal(a, b)
    packed, expected = utils.pack_x_y_sample_weight(*ours), keras.utils.pack_x_y_sample_weight(*theirs)
    assert type(packed) is type(expected) and len(np.atleast_1d(packed)) == len(np.atleast_1d(expected))
