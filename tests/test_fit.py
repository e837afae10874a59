"""fit/evaluate/predict with Keras semantics: batches per epoch, shuffling, validation_split, History keys,
sample/class weights, inputs (arrays, dicts, generators, DataLoader), steps_per_epoch, reproducibility."""

import numpy as np
import pytest

import shendu
from shendu import callbacks as cbs
from shendu.layers import Dense, Dropout, Layer
from shendu.models import Sequential
from shendu.optimizers import SGD


class Spy(Layer):
    """Identity layer that records every batch it sees and the training flag."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        object.__setattr__(self, "seen", [])
        object.__setattr__(self, "flags", [])

    def call(self, x, training=None):
        self.seen.append(x.data[:, 0].astype(int).tolist())
        self.flags.append(training)
        return x


def _indexed(n):
    """x[:, 0] is the sample index, so a Spy shows which samples each batch held."""
    x = np.stack([np.arange(n), np.linspace(0, 1, n)], axis=1).astype(np.float32)
    return x, (x[:, 1:] * 2.0).astype(np.float32)


def _spy_model(lr=0.01):
    spy = Spy()
    model = Sequential([spy, Dense(1)])
    model.build((None, 2))  # building probes the layers with zeros: start recording afterwards
    spy.seen.clear()
    spy.flags.clear()
    model.compile(optimizer=SGD(learning_rate=lr), loss="mse")
    return model, spy


def test_batches_per_epoch_and_last_partial_batch():
    x, y = _indexed(10)
    model, spy = _spy_model()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    assert spy.seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] * 2
    assert spy.flags == [True] * 6  # training=True during fit


def test_shuffle_each_epoch_is_a_new_permutation_from_the_seed():
    x, y = _indexed(12)
    model, spy = _spy_model()
    shendu.seed(7)
    model.fit(x, y, batch_size=12, epochs=3, verbose=0)
    orders = [tuple(b) for b in spy.seen]
    assert all(sorted(o) == list(range(12)) for o in orders)
    assert len(set(orders)) == 3
    model2, spy2 = _spy_model()
    shendu.seed(7)
    model2.fit(x, y, batch_size=12, epochs=3, verbose=0)
    assert spy2.seen == spy.seen


def test_shuffle_batch_keeps_batches_contiguous():
    x, y = _indexed(9)
    model, spy = _spy_model()
    model.fit(x, y, batch_size=3, epochs=2, verbose=0, shuffle="batch")
    assert sorted(map(tuple, spy.seen[:3])) == [(0, 1, 2), (3, 4, 5), (6, 7, 8)]


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = _indexed(10)
    model, spy = _spy_model()
    history = model.fit(x, y, batch_size=10, epochs=1, verbose=0, validation_split=0.3)
    train_batch, val_batch = spy.seen
    assert sorted(train_batch) == list(range(7)) and val_batch == [7, 8, 9]
    assert spy.flags == [True, False]  # validation runs in inference mode
    assert set(history.history) == {"loss", "val_loss"}


def test_validation_split_warns_on_a_single_class():
    x = np.random.default_rng(0).random((20, 2)).astype(np.float32)
    labels = np.repeat([0, 1], 10)  # sorted: the last 20 % are all class 1
    model = Sequential([Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="single class"):
        model.fit(x, labels, epochs=1, verbose=0, validation_split=0.2)


def test_validation_freq():
    x, y = _indexed(8)
    model, _ = _spy_model()
    history = model.fit(x, y, epochs=4, verbose=0, validation_data=(x, y), validation_freq=2)
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2
    history = model.fit(x, y, epochs=3, verbose=0, validation_data=(x, y), validation_freq=[1, 3])
    assert len(history.history["val_loss"]) == 2


def test_history_keys_with_accuracy():
    rng = np.random.default_rng(0)
    x = rng.random((30, 4)).astype(np.float32)
    labels = (x.sum(1) > 2).astype(np.int64)
    model = Sequential([Dense(8, activation="relu"), Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, labels, epochs=2, verbose=0, validation_split=0.2)
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]  # sorted, as Keras 3
    assert model.metrics_names == ["loss", "accuracy"]
    acc_model = Sequential([Dense(1, activation="sigmoid")])
    acc_model.compile("adam", "binary_crossentropy", metrics=["acc"])
    assert "acc" in acc_model.fit(x, labels, epochs=1, verbose=0).history


def test_loss_is_the_sample_weighted_mean_of_batch_losses():
    x, y = _indexed(10)
    model, _ = _spy_model(lr=0.0)  # no learning: every batch sees the same weights
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    per_sample = (model.predict(x, verbose=0) - y) ** 2
    assert history.history["loss"][0] == pytest.approx(per_sample.mean(), rel=1e-5)
    assert model.evaluate(x, y, batch_size=3, verbose=0) == pytest.approx(per_sample.mean(), rel=1e-5)


def test_sample_weight_and_class_weight():
    x, y = _indexed(6)
    model, _ = _spy_model(lr=0.0)
    weights = np.array([1, 0, 0, 0, 0, 0], np.float32)
    per_sample = ((model.predict(x, verbose=0) - y) ** 2)[:, 0]
    loss = model.evaluate(x, y, sample_weight=weights, batch_size=6, verbose=0)
    assert loss == pytest.approx(per_sample[0] / 6, rel=1e-5)  # Keras: weighted sum / batch size

    labels = np.array([0, 0, 1, 1, 1, 1])
    clf = Sequential([Dense(2, activation="softmax", input_dim=2)])
    clf.compile(SGD(learning_rate=0.0), "sparse_categorical_crossentropy")
    base = clf.fit(x, labels, batch_size=6, epochs=1, verbose=0).history["loss"][0]
    weighted = clf.fit(x, labels, batch_size=6, epochs=1, verbose=0, class_weight={0: 2.0, 1: 0.0})
    probs = clf.predict(x, verbose=0)
    nll = -np.log(probs[np.arange(6), labels])
    assert weighted.history["loss"][0] == pytest.approx(2 * nll[:2].sum() / 6, rel=1e-5)
    assert base == pytest.approx(nll.mean(), rel=1e-5)
    with pytest.raises(ValueError, match="no entry for class"):
        clf.fit(x, labels, epochs=1, verbose=0, class_weight={0: 1.0})


def test_initial_epoch_and_epochs_are_absolute():
    x, y = _indexed(4)
    model, _ = _spy_model()
    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4]
    assert model.fit(x, y, epochs=2, initial_epoch=2, verbose=0).history == {}


def test_steps_per_epoch_with_arrays_carries_over():
    x, y = _indexed(10)
    model, spy = _spy_model()
    with pytest.warns(UserWarning, match="ran out of data"):  # as Keras 3: epoch 2 ends early, then restarts
        model.fit(x, y, batch_size=4, epochs=3, steps_per_epoch=2, verbose=0, shuffle=False)
    assert spy.seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [0, 1, 2, 3], [4, 5, 6, 7]]


def test_generator_input():
    x, y = _indexed(12)

    def batches():
        while True:
            for s in range(0, 12, 4):
                yield x[s:s + 4], y[s:s + 4]

    model, spy = _spy_model()
    history = model.fit(batches(), epochs=2, steps_per_epoch=3, verbose=0)
    assert len(spy.seen) == 6 and len(history.history["loss"]) == 2
    assert model.evaluate(batches(), steps=3, verbose=0) > 0
    assert model.predict((b[0] for b in [(x[:5], None), (x[5:], None)]), verbose=0).shape == (12, 1)


def test_finite_generator_runs_out_with_a_warning():
    x, y = _indexed(8)
    model, spy = _spy_model()
    with pytest.warns(UserWarning, match="ran out of data"):
        model.fit(((x[s:s + 4], y[s:s + 4]) for s in (0, 4)), epochs=2, steps_per_epoch=2, verbose=0)
    assert len(spy.seen) == 2


def test_data_loader_input():
    data = pytest.importorskip("shendu.data")
    x, y = _indexed(10)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=4, shuffle=False)
    model, spy = _spy_model()
    model.fit(loader, epochs=2, verbose=0)
    assert spy.seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] * 2
    assert model.predict(loader, verbose=0).shape == (10, 1)
    with pytest.raises(ValueError, match="must come from it"):
        model.fit(loader, y, verbose=0)


def test_keras_style_sequence_input():
    x, y = _indexed(6)

    class Batches:
        def __init__(self):
            self.epochs_ended = 0

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[3 * i:3 * i + 3], y[3 * i:3 * i + 3]

        def on_epoch_end(self):
            self.epochs_ended += 1

    model, spy = _spy_model()
    data = Batches()
    model.fit(data, epochs=3, verbose=0)
    assert spy.seen == [[0, 1, 2], [3, 4, 5]] * 3 and data.epochs_ended == 2


def test_dict_inputs_for_a_multi_input_model():
    from shendu.layers import Input, concatenate
    from shendu.models import Model

    a, b = Input(shape=(1,), name="a"), Input(shape=(2,), name="b")
    model = Model([a, b], Dense(1)(concatenate([a, b])))
    model.compile("sgd", "mse")
    xa, xb = np.ones((6, 1)), np.zeros((6, 2))
    history = model.fit({"a": xa, "b": xb}, np.ones((6, 1)), epochs=2, batch_size=3, verbose=0)
    assert len(history.history["loss"]) == 2


def test_predict_returns_numpy_in_batches():
    x, _ = _indexed(70)
    model, spy = _spy_model()
    out = model.predict(x, batch_size=32, verbose=0)
    assert isinstance(out, np.ndarray) and out.shape == (70, 1)
    assert [len(b) for b in spy.seen] == [32, 32, 6] and spy.flags == [False] * 3


def test_on_batch_methods():
    x, y = _indexed(6)
    model, _ = _spy_model(lr=0.01)
    before = model.test_on_batch(x, y)
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(before, rel=1e-5)
    assert model.test_on_batch(x, y) < before
    logs = model.train_on_batch(x, y, return_dict=True)
    assert list(logs) == ["loss"]
    assert model.predict_on_batch(x).shape == (6, 1)


def test_dropout_is_active_only_in_fit():
    shendu.seed(0)
    model = Sequential([Dropout(0.5, input_shape=(100,))])
    model.compile("sgd", "mse")
    x = np.ones((4, 100), np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    assert model.evaluate(x, x, verbose=0) == 0.0


def test_regularization_losses_are_added():
    x, y = _indexed(5)
    model = Sequential([Dense(1, input_dim=2, kernel_regularizer="l2")])
    model.compile(SGD(learning_rate=0.0), "mse")
    plain = ((model.predict(x, verbose=0) - y) ** 2).mean()
    penalty = 0.01 * float((model.layers[0].kernel.data ** 2).sum())
    assert model.evaluate(x, y, verbose=0) == pytest.approx(plain + penalty, rel=1e-5)


def test_same_seed_gives_bit_identical_weights():
    def run():
        shendu.seed(42)
        model = Sequential([Dense(16, activation="relu", input_dim=4), Dropout(0.3), Dense(1)])
        model.compile("adam", "mse")
        x = np.random.default_rng(0).random((50, 4))
        model.fit(x, x.sum(1, keepdims=True), epochs=3, batch_size=8, verbose=0)
        return model.get_weights()

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)


def test_unknown_keyword_arguments_are_rejected():
    x, y = _indexed(4)
    model, _ = _spy_model()
    with pytest.raises(TypeError, match="valid arguments are: x, y, batch_size"):
        model.fit(x, y, epoch=3)
    with pytest.raises(TypeError, match="return_dict"):
        model.evaluate(x, y, return_dic=True)
    with pytest.raises(TypeError, match="batch_size"):
        model.predict(x, batchsize=3)
    with pytest.raises(TypeError, match="loss_weights"):
        model.compile("sgd", "mse", loss_weight=[1.0])


def test_fit_before_compile_and_without_targets():
    x, y = _indexed(4)
    model = Sequential([Dense(1)])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="targets y"):
        model.fit(x, verbose=0)


def test_stop_training_from_a_callback():
    x, y = _indexed(8)
    model, spy = _spy_model()

    class StopAfterTwoBatches(cbs.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    history = model.fit(x, y, batch_size=2, epochs=5, verbose=0, callbacks=[StopAfterTwoBatches()])
    assert len(spy.seen) == 2 and len(history.history["loss"]) == 1
