"""Customising training as Keras 3 on the PyTorch backend does it (the "Customizing what happens in fit() with
PyTorch" guide): what ``train_step`` receives, ``compute_loss`` overrides, ``self.metrics`` trackers, training on
``add_loss`` alone, a GAN with two optimisers, Keras-style metrics with variables, PyTorch DataLoaders, callback
logs and metrics held by layers. Keras 3 itself is the oracle where numbers can be compared."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

if keras.backend.backend() != "torch":  # pragma: no cover - another backend was chosen before us
    pytest.skip("these comparisons need Keras on its PyTorch backend", allow_module_level=True)

import shendu  # noqa: E402
from shendu import layers, metrics  # noqa: E402
from shendu.callbacks import Callback  # noqa: E402
from shendu.models import Model, Sequential  # noqa: E402


def _data(n=32, d=3, k=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=(d, k)) + 0.1).astype(np.float32)
    return x, y


def _functional(cls_ours, cls_theirs, units=1, d=3):
    """The same functional model (a Model subclass) in shendu and in Keras, with the same initial weights."""
    shendu.seed(0)
    inp = layers.Input((d,))
    ours = cls_ours(inp, layers.Dense(units)(layers.Dense(4, activation="tanh")(inp)))
    kin = keras.Input((d,))
    theirs = cls_theirs(kin, keras.layers.Dense(units)(keras.layers.Dense(4, activation="tanh")(kin)))
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _close(ours, theirs, rtol=1e-5):
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=rtol, atol=1e-6, err_msg=key)


# ---------------------------------------------------------------- what train_step receives
def _recording(base):
    class Recording(base):
        seen: list = []

        def train_step(self, data):
            type(self).seen.append((type(data).__name__, len(data) if isinstance(data, tuple) else None))
            return super().train_step(data)

        def test_step(self, data):
            type(self).seen.append(("test", type(data).__name__, len(data) if isinstance(data, tuple) else None))
            return super().test_step(data)

    return Recording


def test_train_step_receives_the_data_as_given():
    Ours, Theirs = _recording(Model), _recording(keras.Model)
    x, y = _data(8)
    ours, theirs = _functional(Ours, Theirs)
    for model in (ours, theirs):
        model.compile("sgd", "mse")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        model.fit(x, y, sample_weight=np.ones(8, np.float32), batch_size=8, epochs=1, verbose=0)
        model.evaluate(x, y, batch_size=8, verbose=0)
    assert Ours.seen == Theirs.seen == [("tuple", 2), ("tuple", 3), ("test", "tuple", 2)]


def test_train_step_unpacks_x_y_and_a_generator_of_x_y_sample_weight():
    class TwoOrThree(Model):
        def train_step(self, data):
            if len(data) == 3:
                x, y, sample_weight = data
            else:
                (x, y), sample_weight = data, None
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            loss.backward()
            with shendu.no_grad():
                self.optimizer.apply([v.grad for v in self.trainable_weights], self.trainable_weights)
            return {"step_loss": loss}  # not the metrics' keys: the epoch logs are the last step's (Keras 3)

    x, y = _data(16)
    model, _ = _functional(TwoOrThree, keras.Model)
    model.compile("sgd", "mse")
    history = model.fit(((x[i:i + 4], y[i:i + 4], np.ones(4, np.float32)) for i in range(0, 16, 4)),
                        steps_per_epoch=4, epochs=1, verbose=0)
    assert list(history.history) == ["step_loss"] and np.isfinite(history.history["step_loss"][0])
    later = model.fit(x, y, batch_size=4, epochs=3, verbose=0).history["step_loss"]
    assert later[-1] < history.history["step_loss"][0]


# ---------------------------------------------------------------- the guide's custom train_step on self.metrics
class OursGuide(Model):
    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]  # the guide's line, unchanged
        with shendu.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


class TheirsGuide(keras.Model):
    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def test_custom_train_step_updating_self_metrics_fills_history_and_evaluate():
    x, y = _data(32)
    ours, theirs = _functional(OursGuide, TheirsGuide)
    for model in (ours, theirs):
        model.compile(optimizer=model is ours and shendu.optimizers.SGD(0.05) or keras.optimizers.SGD(0.05),
                      loss="mse", metrics=["mae"])
    h1 = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    h2 = theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    assert sorted(h1) == sorted(h2) == ["loss", "mae"]
    _close(h1, h2)
    assert [m.name for m in ours.metrics] == [m.name for m in theirs.metrics] == ["loss", "compile_metrics"]
    np.testing.assert_allclose(ours.evaluate(x, y, batch_size=8, verbose=0),
                               theirs.evaluate(x, y, batch_size=8, verbose=0), rtol=1e-5)
    _close(ours.evaluate(x, y, verbose=0, return_dict=True), theirs.evaluate(x, y, verbose=0, return_dict=True))
    _close(ours.get_metrics_result(), {k: float(v) for k, v in theirs.get_metrics_result().items()})
    ours.reset_metrics()
    assert ours.get_metrics_result() == {"loss": 0.0, "mae": 0.0}


def _own_trackers(base, mean, mae, mse, no_grad, grad_of):
    class OwnTrackers(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = mean(name="loss")
            self.mae_metric = mae(name="mae")
            self.loss_fn = mse()

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            with no_grad():
                self.optimizer.apply([grad_of(v) for v in trainable_weights], trainable_weights)
            self.loss_tracker.update_state(loss)
            self.mae_metric.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae_metric]

    return OwnTrackers


def test_own_trackers_listed_by_a_metrics_override_are_reset_each_epoch():
    x, y = _data(32)
    Ours = _own_trackers(Model, metrics.Mean, metrics.MeanAbsoluteError, shendu.losses.MeanSquaredError,
                         shendu.no_grad, lambda v: v.grad)
    Theirs = _own_trackers(keras.Model, keras.metrics.Mean, keras.metrics.MeanAbsoluteError,
                           keras.losses.MeanSquaredError, torch.no_grad, lambda v: v.value.grad)
    ours, theirs = _functional(Ours, Theirs)
    ours.compile(optimizer=shendu.optimizers.Adam(0.01))  # no loss: the step computes its own
    theirs.compile(optimizer=keras.optimizers.Adam(0.01))
    h1 = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    h2 = theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    _close(h1, h2, rtol=1e-4)
    assert h1["loss"][0] > h1["loss"][-1]


# ---------------------------------------------------------------- compute_loss and add_loss
def _compute_loss_model(base, mean_fn):
    class CustomLoss(base):
        def compute_loss(self, x, y, y_pred, sample_weight, training=True):
            return mean_fn(abs(y_pred - y)) * 2.0

    return CustomLoss


def test_compute_loss_overridden_without_super():
    x, y = _data(32)
    ours, theirs = _functional(_compute_loss_model(Model, shendu.ops.mean),
                               _compute_loss_model(keras.Model, keras.ops.mean))
    ours.compile(shendu.optimizers.SGD(0.05), loss="mse", metrics=["mse"])
    theirs.compile(keras.optimizers.SGD(0.05), loss="mse", metrics=["mse"])
    h1 = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    h2 = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    _close(h1, h2)
    _close(ours.evaluate(x, y, verbose=0, return_dict=True), theirs.evaluate(x, y, verbose=0, return_dict=True))


def test_a_compute_loss_without_the_training_argument_still_works():
    class Old(Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
            return shendu.ops.mean((y_pred - y) ** 2)

    x, y = _data(16)
    model, _ = _functional(Old, keras.Model)
    model.compile("sgd")
    reference, _ = _functional(Model, keras.Model)
    reference.compile("sgd", "mse")
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), reference.evaluate(x, y, verbose=0), rtol=1e-6)


def _add_loss_model(base, layers_module, ops):
    class WithAddLoss(base):
        def __init__(self):
            super().__init__()
            self.dense = layers_module.Dense(2)

        def call(self, x):
            out = self.dense(x)
            self.add_loss(ops.mean(ops.square(out - 1.0)))
            return out

    return WithAddLoss


def test_compile_without_loss_trains_on_add_loss_alone():
    x, _ = _data(16)
    shendu.seed(0)
    ours = _add_loss_model(Model, layers, shendu.ops)()
    theirs = _add_loss_model(keras.Model, keras.layers, keras.ops)()
    ours(x[:1])
    theirs(x[:1])
    theirs.set_weights(ours.get_weights())
    ours.compile(shendu.optimizers.SGD(0.1))
    theirs.compile(keras.optimizers.SGD(0.1))
    h1 = ours.fit(x, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    h2 = theirs.fit(x, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    _close(h1, h2)
    assert h1["loss"][-1] < h1["loss"][0]
    np.testing.assert_allclose(ours.evaluate(x, verbose=0), theirs.evaluate(x, verbose=0), rtol=1e-5)


def test_no_loss_at_all_is_refused_with_a_hint():
    x, y = _data(8)
    model, _ = _functional(Model, keras.Model)
    model.compile("sgd")
    with pytest.raises(ValueError, match="no loss to compute"):
        model.fit(x, y, verbose=0)


# ---------------------------------------------------------------- a GAN: two optimisers in one train_step
class GAN(Model):
    """The guide's GAN with ``keras`` = shendu: ``keras.random`` noise from a SeedGenerator, ``keras.ops`` in place of
    the guide's torch tensor calls, ``v.value.grad`` and ``torch.no_grad()`` as written."""

    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.d_loss_tracker = metrics.Mean(name="d_loss")
        self.g_loss_tracker = metrics.Mean(name="g_loss")
        self.seed_generator = shendu.random.SeedGenerator(1337)
        self.built = True

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, real_images):
        ops = shendu.ops
        if isinstance(real_images, (tuple, list)):
            real_images = real_images[0]
        batch_size = real_images.shape[0]
        random_latent_vectors = shendu.random.normal(shape=(batch_size, self.latent_dim), seed=self.seed_generator)
        generated_images = self.generator(random_latent_vectors)
        combined_images = ops.concatenate([generated_images, ops.convert_to_tensor(real_images)], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * shendu.random.uniform(labels.shape, seed=self.seed_generator)

        self.zero_grad()
        predictions = self.discriminator(combined_images)
        d_loss = self.loss_fn(labels, predictions)
        d_loss.backward()
        grads = [v.value.grad for v in self.discriminator.trainable_weights]
        with torch.no_grad():
            self.d_optimizer.apply(grads, self.discriminator.trainable_weights)

        random_latent_vectors = shendu.random.normal(shape=(batch_size, self.latent_dim), seed=self.seed_generator)
        misleading_labels = ops.zeros((batch_size, 1))
        self.zero_grad()
        predictions = self.discriminator(self.generator(random_latent_vectors))
        g_loss = self.loss_fn(misleading_labels, predictions)
        g_loss.backward()
        grads = [v.grad for v in self.generator.trainable_weights]
        with shendu.no_grad():
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def test_a_gan_with_two_optimisers_trains_each_network_with_its_own():
    shendu.seed(0)
    latent_dim = 4
    discriminator = Sequential([layers.Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(1)],
                               name="discriminator")
    generator = Sequential([layers.Input((latent_dim,)), layers.Dense(8, activation="relu"), layers.Dense(6)],
                           name="generator")
    gan = GAN(discriminator, generator, latent_dim)
    gan.compile(d_optimizer=shendu.optimizers.Adam(0.003), g_optimizer=shendu.optimizers.Adam(0.003),
                loss_fn=shendu.losses.BinaryCrossentropy(from_logits=True))
    d_before = [w.copy() for w in discriminator.get_weights()]
    g_before = [w.copy() for w in generator.get_weights()]
    real = np.random.default_rng(1).normal(loc=2.0, size=(64, 6)).astype(np.float32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(real)), batch_size=16)
    history = gan.fit(loader, epochs=3, verbose=0).history
    assert sorted(history) == ["d_loss", "g_loss"] and len(history["d_loss"]) == 3
    assert all(np.isfinite(history["d_loss"])) and all(np.isfinite(history["g_loss"]))
    assert {id(p) for p in gan.d_optimizer.params} == {id(p) for p in discriminator.trainable_weights}
    assert {id(p) for p in gan.g_optimizer.params} == {id(p) for p in generator.trainable_weights}
    assert gan.d_optimizer.iterations == gan.g_optimizer.iterations == 12
    assert all(not np.allclose(a, b) for a, b in zip(d_before, discriminator.get_weights()))
    assert all(not np.allclose(a, b) for a, b in zip(g_before, generator.get_weights()))


def test_noisy_binary_labels_of_the_gan_trick_are_accepted_as_in_keras():
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.ones((8, 1)), np.zeros((8, 1))]).astype(np.float32)
    labels += 0.05 * rng.random(labels.shape).astype(np.float32)
    logits = rng.normal(size=(16, 1)).astype(np.float32)
    ours = shendu.losses.BinaryCrossentropy(from_logits=True)(labels, logits)
    theirs = keras.losses.BinaryCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-5)
    with pytest.raises(ValueError, match="probabilities"):  # a label of 2 is still refused
        shendu.losses.BinaryCrossentropy(from_logits=True)(labels * 2, logits)


def test_the_generator_step_leaves_the_discriminator_alone():
    shendu.seed(0)
    discriminator = Sequential([layers.Input((3,)), layers.Dense(1)])
    generator = Sequential([layers.Input((2,)), layers.Dense(3)])
    d_opt, g_opt = shendu.optimizers.SGD(0.1), shendu.optimizers.SGD(0.1)
    d_before = [w.copy() for w in discriminator.get_weights()]
    discriminator.zero_grad()
    generator.zero_grad()
    loss = shendu.ops.mean(discriminator(generator(np.ones((4, 2), np.float32))))
    loss.backward()
    with shendu.no_grad():
        g_opt.apply([v.grad for v in generator.trainable_weights], generator.trainable_weights)
    for a, b in zip(d_before, discriminator.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert d_opt.iterations == 0 and g_opt.iterations == 1


# ---------------------------------------------------------------- data loaders, callbacks, metrics in layers
def test_a_pytorch_dataloader_batch_list_is_x_and_y():
    x, y = _data(32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=8, shuffle=False)
    assert isinstance(next(iter(loader)), list)
    ours, theirs = _functional(Model, keras.Model)
    ours.compile(shendu.optimizers.SGD(0.05), "mse", metrics=["mae"])
    theirs.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"])
    _close(ours.fit(loader, epochs=2, verbose=0, shuffle=False).history,
           theirs.fit(loader, epochs=2, verbose=0, shuffle=False).history)
    _close(ours.evaluate(loader, verbose=0, return_dict=True), theirs.evaluate(loader, verbose=0, return_dict=True))
    np.testing.assert_allclose(ours.predict(loader, verbose=0), theirs.predict(loader, verbose=0), rtol=1e-5,
                               atol=1e-6)


def test_shendu_dataloader_of_list_samples_is_x_and_y():
    class Pairs(shendu.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return [self.x[i], self.y[i]]

    x, y = _data(32)
    loader = shendu.data.DataLoader(Pairs(x, y), batch_size=8)
    assert isinstance(next(iter(loader)), list)
    model, _ = _functional(Model, keras.Model)
    reference, _ = _functional(Model, keras.Model)
    for m in (model, reference):
        m.compile(shendu.optimizers.SGD(0.05), "mse")
    _close(model.fit(loader, epochs=2, verbose=0).history,
           reference.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history, rtol=1e-6)


class _Recorder:
    HOOKS = ("on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_test_begin", "on_test_batch_begin",
             "on_predict_begin", "on_predict_batch_begin", "on_predict_end")

    @classmethod
    def make(cls, base):
        class Recorder(base):
            def __init__(self):
                super().__init__()
                self.seen = {}

        for hook in cls.HOOKS:
            def record(self, *args, _hook=hook, **kwargs):
                self.seen.setdefault(_hook, kwargs["logs"] if "logs" in kwargs else args[-1])
            setattr(Recorder, hook, record)
        return Recorder


def test_callbacks_receive_empty_dicts_where_keras_passes_them():
    x, y = _data(16)
    ours, theirs = _functional(Model, keras.Model)
    ours.compile("sgd", "mse")
    theirs.compile("sgd", "mse")
    recorders = []
    for model, base in ((ours, Callback), (theirs, keras.callbacks.Callback)):
        recorder = _Recorder.make(base)()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y), callbacks=[recorder])
        model.predict(x, verbose=0, callbacks=[recorder])
        recorders.append(recorder.seen)
    assert recorders[0] == recorders[1]
    assert all(v == {} for v in recorders[0].values()) and len(recorders[0]) == len(_Recorder.HOOKS)


def _activity_layer(base, mean):
    class ActivityMean(base):
        def __init__(self):
            super().__init__()
            self.mean_activity = mean(name="mean_activity")

        def call(self, x):
            self.mean_activity.update_state(x)
            return x

    return ActivityMean


def test_a_metric_held_by_a_layer_is_reported():
    x, y = _data(16)
    shendu.seed(0)
    inp = layers.Input((3,))
    ours = Model(inp, layers.Dense(1)(_activity_layer(layers.Layer, metrics.Mean)()(inp)))
    kin = keras.Input((3,))
    theirs = keras.Model(kin, keras.layers.Dense(1)(_activity_layer(keras.layers.Layer, keras.metrics.Mean)()(kin)))
    theirs.set_weights(ours.get_weights())
    ours.compile(shendu.optimizers.SGD(0.05), "mse")
    theirs.compile(keras.optimizers.SGD(0.05), "mse")
    assert [m.name for m in ours.metrics] == [m.name for m in theirs.metrics] == ["loss", "mean_activity"]
    _close(ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history,
           theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)


def _tracked_model(base, layers_module, metric_sum):
    class Tracked(base):
        def __init__(self):
            super().__init__()
            self.dense = layers_module.Dense(1)
            self.calls = metric_sum(name="calls")

        def call(self, x):
            self.calls.update_state(1.0)
            return self.dense(x)

    return Tracked


def test_metrics_held_by_a_subclassed_model_are_reported_and_reset():
    x, y = _data(16)
    ours = _tracked_model(Model, layers, metrics.Sum)()
    theirs = _tracked_model(keras.Model, keras.layers, keras.metrics.Sum)()
    results = []
    for model in (ours, theirs):
        model.compile("sgd", "mse", metrics=["mae"])
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history
        results.append((sorted(history), history["calls"], model.evaluate(x, y, batch_size=4, verbose=0)[2]))
    assert results[0] == results[1] == (["calls", "loss", "mae"], [2.0, 2.0], 4.0)  # the build's call not counted
    assert ours.metrics_names == ["loss", "mae", "calls"]


def _compute_metrics_model(base, mean):
    class ExtraMetric(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.prediction_mean = mean(name="prediction_mean")

        def compute_metrics(self, x, y, y_pred, sample_weight=None):
            results = super().compute_metrics(x, y, y_pred, sample_weight)
            self.prediction_mean.update_state(y_pred)
            results["prediction_mean"] = self.prediction_mean.result()
            return results

    return ExtraMetric


def test_compute_metrics_overridden_with_super_adds_to_the_logs():
    x, y = _data(32)
    ours, theirs = _functional(_compute_metrics_model(Model, metrics.Mean),
                               _compute_metrics_model(keras.Model, keras.metrics.Mean))
    ours.compile(shendu.optimizers.SGD(0.05), "mse", metrics=["mae"])
    theirs.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"])
    h1 = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    h2 = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert sorted(h1) == ["loss", "mae", "prediction_mean"]
    _close(h1, h2)
    _close(ours.evaluate(x, y, verbose=0, return_dict=True), theirs.evaluate(x, y, verbose=0, return_dict=True))


# ---------------------------------------------------------------- Keras-style metrics with variables in fit
def _true_positives(base, ops):
    class BinaryTruePositives(base):
        def __init__(self, name="binary_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")

        def update_state(self, y_true, y_pred, sample_weight=None):
            values = ops.multiply(ops.cast(y_true > 0.5, self.dtype), ops.cast(y_pred > 0.5, self.dtype))
            if sample_weight is not None:
                values = ops.multiply(values, ops.cast(sample_weight, self.dtype)[:, None])
            self.true_positives.assign_add(ops.sum(values))

        def result(self):
            return self.true_positives

    return BinaryTruePositives


def test_a_keras_style_metric_with_variables_in_compile():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x.sum(axis=1, keepdims=True) > 0).astype(np.float32)
    ours, theirs = _functional(Model, keras.Model)
    ours.compile(shendu.optimizers.SGD(0.1), "mse", weighted_metrics=[_true_positives(metrics.Metric, shendu.ops)()])
    theirs.compile(keras.optimizers.SGD(0.1), "mse",
                   weighted_metrics=[_true_positives(keras.metrics.Metric, keras.ops)()])
    weights = rng.random(32).astype(np.float32)
    h1 = ours.fit(x, y, sample_weight=weights, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    h2 = theirs.fit(x, y, sample_weight=weights, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    _close(h1, h2)
    assert h1["binary_true_positives"][0] > 0  # reset between epochs, not accumulated over both
    _close(ours.evaluate(x, y, verbose=0, return_dict=True), theirs.evaluate(x, y, verbose=0, return_dict=True))


def test_pytorch_tensors_given_as_arrays():
    x, y = _data(16)
    model, _ = _functional(Model, keras.Model)
    reference, _ = _functional(Model, keras.Model)
    for m in (model, reference):
        m.compile(shendu.optimizers.SGD(0.05), "mse")
    _close(model.fit(torch.from_numpy(x), torch.from_numpy(y), batch_size=8, shuffle=False, verbose=0).history,
           reference.fit(x, y, batch_size=8, shuffle=False, verbose=0).history, rtol=1e-6)
    np.testing.assert_allclose(model.predict(torch.from_numpy(x), verbose=0), reference.predict(x, verbose=0),
                               rtol=1e-6)


def _documented_compute_loss(base, ops, mean):
    class MyModel(base):
        """Keras 3's ``compute_loss`` docstring example: its own tracker, reset_metrics and metrics."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = mean(name="loss")

        def compute_loss(self, x, y, y_pred, sample_weight, training=True):
            loss = ops.mean((y_pred - y) ** 2)
            self.loss_tracker.update_state(loss)
            return loss

        def reset_metrics(self):
            self.loss_tracker.reset_state()

        @property
        def metrics(self):
            return [self.loss_tracker]

    return MyModel


def test_keras_documented_compute_loss_example():
    x, y = _data(32)
    ours, theirs = _functional(_documented_compute_loss(Model, shendu.ops, metrics.Mean),
                               _documented_compute_loss(keras.Model, keras.ops, keras.metrics.Mean))
    ours.compile(shendu.optimizers.SGD(0.05), loss="mse")
    theirs.compile(keras.optimizers.SGD(0.05), loss="mse")
    history = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    _close(history, theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history)
    assert ours.loss_tracker.result() == pytest.approx(history["loss"][-1])  # the logs are its results


def _predict_step_model(base):
    class Doubled(base):
        def predict_step(self, data):
            x = data[0] if isinstance(data, tuple) else data
            return self(x, training=False) * 2.0

    return Doubled


def test_predict_step_overridden():
    x, _ = _data(10)
    ours, theirs = _functional(_predict_step_model(Model), _predict_step_model(keras.Model))
    np.testing.assert_allclose(ours.predict(x, batch_size=4, verbose=0), theirs.predict(x, batch_size=4, verbose=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.predict_on_batch(x), keras.ops.convert_to_numpy(theirs.predict_on_batch(x)),
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the guide's programs with `import shendu as keras`
GUIDE_PROGRAM = '''
import numpy as np
import torch

import shendu as keras  # was: import keras


class CustomModel(keras.Model):
    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


inputs = keras.Input(shape=(32,))
outputs = keras.layers.Dense(1)(inputs)
model = CustomModel(inputs, outputs)
model.compile(optimizer="adam", loss="mse", metrics=["mae"])
x = np.random.random((1000, 32))
y = np.random.random((1000, 1))
history = model.fit(x, y, epochs=3, verbose=0)
results = model.evaluate(x, y, verbose=0)


class LowLevelModel(keras.Model):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.mae_metric = keras.metrics.MeanAbsoluteError(name="mae")
        self.loss_fn = keras.losses.MeanSquaredError()

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.loss_fn(y, y_pred)
        loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        self.loss_tracker.update_state(loss)
        self.mae_metric.update_state(y, y_pred)
        return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.mae_metric]


inputs = keras.Input(shape=(32,))
outputs = keras.layers.Dense(1)(inputs)
low_level = LowLevelModel(inputs, outputs)
low_level.compile(optimizer="adam")
low_level_history = low_level.fit(x, y, epochs=5, verbose=0)
'''


def test_the_guides_programs_run_with_shendu_imported_as_keras():
    namespace: dict = {}
    exec(compile(GUIDE_PROGRAM, "guide", "exec"), namespace)
    history, results = namespace["history"].history, namespace["results"]
    assert sorted(history) == ["loss", "mae"] and len(history["loss"]) == 3
    assert history["loss"][-1] < history["loss"][0] and len(results) == 2 and np.all(np.isfinite(results))
    low_level = namespace["low_level_history"].history
    assert sorted(low_level) == ["loss", "mae"] and low_level["loss"][-1] < low_level["loss"][0]


def test_a_metric_assigned_after_the_metrics_were_listed_is_listed():
    model, _ = _functional(Model, keras.Model)
    model.compile("sgd", "mse")
    assert [m.name for m in model.metrics] == ["loss"]
    model.extra = metrics.Mean(name="extra")
    assert [m.name for m in model.metrics] == ["loss", "extra"]
