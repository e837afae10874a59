"""shendu.metrics: Keras 3's documented values, NumPy references, state handling and name resolution."""

import os
import re

import numpy as np
import pytest

import shendu
from shendu import losses, metrics


def _two_runs(metric, y_true, y_pred, sample_weight):
    """(result without weights, result with weights after a reset), as the Keras docstrings show them."""
    metric.update_state(y_true, y_pred)
    first = metric.result()
    metric.reset_state()
    metric.update_state(y_true, y_pred, sample_weight=sample_weight)
    return first, metric.result()


@pytest.mark.parametrize("metric,y_true,y_pred,sample_weight,expected", [
    (metrics.Accuracy(), [[1], [2], [3], [4]], [[0], [2], [3], [4]], [1, 1, 0, 0], (0.75, 0.5)),
    (metrics.BinaryAccuracy(), [[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], [1, 0, 0, 1], (0.75, 0.5)),
    (metrics.CategoricalAccuracy(), [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], [0.7, 0.3],
     (0.5, 0.3)),
    (metrics.SparseCategoricalAccuracy(), [[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]], [0.7, 0.3], (0.5, 0.3)),
    (metrics.TopKCategoricalAccuracy(k=1), [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]],
     [0.7, 0.3], (0.5, 0.3)),
    (metrics.SparseTopKCategoricalAccuracy(k=1), [2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], [0.7, 0.3],
     (0.5, 0.3)),
    (metrics.MeanAbsoluteError(), [[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0], (0.25, 0.5)),
    (metrics.MeanSquaredError(), [[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0], (0.25, 0.5)),
    (metrics.RootMeanSquaredError(), [[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0], (0.5, 0.70710677)),
    (metrics.Precision(), [0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], (0.6666667, 1.0)),
    (metrics.Recall(), [0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], (0.6666667, 1.0)),
    (metrics.AUC(num_thresholds=3), [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], [1, 0, 0, 1], (0.75, 1.0)),
], ids=lambda v: type(v).__name__ if isinstance(v, metrics.Metric) else None)
def test_keras_documented_values(metric, y_true, y_pred, sample_weight, expected):
    first, weighted = _two_runs(metric, y_true, y_pred, sample_weight)
    assert isinstance(first, float) and isinstance(weighted, float)
    np.testing.assert_allclose((first, weighted), expected, rtol=1e-6)


def test_mean_and_sum_accumulate_over_batches():
    mean = metrics.Mean()
    mean.update_state([1, 3, 5, 7])
    assert mean.result() == 4.0
    mean.reset_state()
    mean.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert mean.result() == 2.0
    mean.update_state(np.array([[10.0, 20.0]]))  # one sample, averaged over its values
    np.testing.assert_allclose(mean.result(), (4 + 15) / 3)
    total = metrics.Sum()
    total.update_state([1, 2])
    total.update_state(shendu.tensor([3.0]))
    assert total.result() == 6.0 and metrics.Mean().result() == 0.0


def test_precision_top_k_and_class_id():
    assert metrics.Precision(top_k=2)([0, 0, 1, 1], [1, 1, 1, 1]) == 0.0
    assert metrics.Precision(top_k=4)([0, 0, 1, 1], [1, 1, 1, 1]) == 0.5
    y_true = np.array([[0, 1], [1, 0], [1, 1], [0, 0]])
    y_pred = np.array([[0.2, 0.9], [0.7, 0.1], [0.3, 0.6], [0.8, 0.4]])
    predicted = y_pred[:, 1] > 0.5
    assert metrics.Precision(class_id=1)(y_true, y_pred) == (predicted & (y_true[:, 1] == 1)).sum() / predicted.sum()
    np.testing.assert_allclose(metrics.Recall(thresholds=[0.25, 0.65])(y_true, y_pred), [1.0, 0.5])


def test_top_k_accuracy_matches_numpy():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 6))
    labels = rng.integers(0, 6, 50)
    top2 = np.argsort(-scores, axis=1)[:, :2]
    expected = (top2 == labels[:, None]).any(axis=1).mean()
    np.testing.assert_allclose(metrics.SparseTopKCategoricalAccuracy(k=2)(labels, scores), expected)
    np.testing.assert_allclose(metrics.TopKCategoricalAccuracy(k=2)(np.eye(6)[labels], scores), expected)


def test_auc_equals_the_exact_roc_area_on_the_threshold_grid():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    # scores strictly between Keras's thresholds: the trapezoids then give the Mann-Whitney statistic
    scores = (np.minimum(rng.integers(0, 199, 300) + 40 * labels, 198) + 0.5) / 199
    pos, neg = scores[labels == 1], scores[labels == 0]
    exact = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    auc = metrics.AUC()
    for part in np.array_split(np.arange(300), 3):  # accumulated over batches
        auc.update_state(labels[part], scores[part])
    np.testing.assert_allclose(auc.result(), exact, rtol=1e-9)
    logits = np.log(scores / (1 - scores))
    np.testing.assert_allclose(metrics.AUC(from_logits=True)(labels, logits), exact, rtol=1e-9)
    lower = metrics.AUC(summation_method="minoring")(labels, scores)
    upper = metrics.AUC(summation_method="majoring")(labels, scores)
    assert lower <= exact <= upper


def test_pr_auc_of_a_perfect_ranking_is_one():
    assert metrics.AUC(curve="PR")([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    random_guess = metrics.AUC(curve="PR")(np.tile([0, 1], 50), np.full(100, 0.5))
    assert random_guess == pytest.approx(0.5, abs=1e-6)


def test_f1_score_keras_example_and_averages():
    y_true = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    y_pred = np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]])
    np.testing.assert_allclose(metrics.F1Score(threshold=0.5)(y_true, y_pred), [0.5, 0.8, 0.6666667], rtol=1e-6)
    np.testing.assert_allclose(metrics.F1Score(average="macro", threshold=0.5)(y_true, y_pred),
                               np.mean([0.5, 0.8, 2 / 3]), rtol=1e-6)
    predicted = y_pred > 0.5
    positive = y_true == 1
    tp, fp, fn = (predicted & positive).sum(), (predicted & ~positive).sum(), (~predicted & positive).sum()
    np.testing.assert_allclose(metrics.F1Score(average="micro", threshold=0.5)(y_true, y_pred),
                               2 * tp / (2 * tp + fp + fn), rtol=1e-6)
    argmax_f1 = metrics.F1Score()(np.eye(3)[[0, 1, 2, 2]], np.eye(3)[[0, 1, 1, 2]] * 0.9)
    np.testing.assert_allclose(argmax_f1, [1.0, 2 / 3, 2 / 3], rtol=1e-6)


def test_loss_named_metrics_average_the_loss():
    y_true = np.array([[0.0, 1.0], [1.0, 0.0]])
    y_pred = np.array([[0.2, 0.7], [0.6, 0.1]])
    metric = metrics.get("binary_crossentropy")
    np.testing.assert_allclose(metric(y_true, y_pred), losses.binary_crossentropy(y_true, y_pred).data.mean())
    assert metric.name == "binary_crossentropy"


def test_accuracy_is_resolved_from_the_loss_as_keras():
    cases = [("binary_crossentropy", (None, 3), metrics.BinaryAccuracy),
             (losses.BinaryCrossentropy(from_logits=True), None, metrics.BinaryAccuracy),
             ("sparse_categorical_crossentropy", (None, 10), metrics.SparseCategoricalAccuracy),
             (losses.SparseCategoricalCrossentropy, None, metrics.SparseCategoricalAccuracy),
             (losses.categorical_crossentropy, (None, 10), metrics.CategoricalAccuracy),
             ("mse", (None, 1), metrics.BinaryAccuracy),
             ("mse", (None, 4), metrics.CategoricalAccuracy),
             (None, None, metrics.CategoricalAccuracy)]
    for loss, shape, cls in cases:
        for name in ("accuracy", "acc"):
            metric = metrics.get(name, loss=loss, output_shape=shape)
            assert type(metric) is cls and metric.name == name, (loss, shape)
    sparse = metrics.get("accuracy", loss=lambda t, p: p, output_shape=(None, 5), target_shape=(None, 1))
    assert type(sparse) is metrics.SparseCategoricalAccuracy


def test_get_resolves_names_classes_instances_and_functions():
    assert type(metrics.get("mae")) is metrics.MeanMetricWrapper and metrics.get("mae").name == "mae"
    assert type(metrics.get("AUC")) is metrics.AUC and type(metrics.get("rmse")) is metrics.RootMeanSquaredError
    assert type(metrics.get(metrics.Precision)) is metrics.Precision
    instance = metrics.Recall()
    assert metrics.get(instance) is instance and metrics.get(None) is None

    def always_one(y_true, y_pred):
        return np.ones(len(y_true))

    custom = metrics.get(always_one)
    assert custom.name == "always_one" and custom([1, 2], [3, 4]) == 1.0
    with pytest.raises(ValueError, match="Unknown metric 'accuracyy'"):
        metrics.get("accuracyy")
    with pytest.raises(TypeError, match=r"unexpected arguments \['kk'\]"):
        metrics.TopKCategoricalAccuracy(kk=3)
    with pytest.raises(ValueError, match="threshold"):
        metrics.BinaryAccuracy(threshold=1.5)


def test_config_round_trip_and_tensors_accepted():
    for metric in (metrics.BinaryAccuracy(threshold=0.3), metrics.TopKCategoricalAccuracy(k=2, name="top2"),
                   metrics.AUC(num_thresholds=50, curve="PR"), metrics.F1Score(average="weighted"),
                   metrics.Precision(thresholds=0.7)):
        again = metrics.deserialize(metrics.serialize(metric))
        assert type(again) is type(metric) and again.get_config() == metric.get_config()
    acc = metrics.SparseCategoricalAccuracy()
    logits = shendu.tensor([[2.0, 1.0], [0.0, 3.0]], requires_grad=True) * 1.0  # part of a graph
    assert acc(shendu.tensor([0, 0]), logits) == 0.5


_KERAS_CASES = [
    ("Accuracy", {}), ("BinaryAccuracy", {}), ("BinaryAccuracy", {"threshold": 0.7}), ("CategoricalAccuracy", {}),
    ("SparseCategoricalAccuracy", {}), ("TopKCategoricalAccuracy", {"k": 2}),
    ("SparseTopKCategoricalAccuracy", {"k": 3}), ("MeanAbsoluteError", {}), ("MeanSquaredError", {}),
    ("RootMeanSquaredError", {}), ("Precision", {}), ("Recall", {}), ("Precision", {"thresholds": [0.3, 0.6]}),
    ("AUC", {}), ("AUC", {"curve": "PR"}), ("AUC", {"num_thresholds": 17, "summation_method": "minoring"}),
    ("F1Score", {}), ("F1Score", {"average": "macro", "threshold": 0.4}),
    ("F1Score", {"average": "micro", "threshold": 0.4}), ("F1Score", {"average": "weighted"}),
    ("MeanAbsolutePercentageError", {}), ("MeanSquaredLogarithmicError", {}), ("LogCoshError", {}), ("Poisson", {}),
    ("KLDivergence", {}), ("Hinge", {}), ("SquaredHinge", {}), ("CategoricalHinge", {})]


def _keras_batch(name, rng):
    labels = rng.integers(0, 5, 20)
    if name.startswith("Sparse"):
        return labels, rng.random((20, 5))
    if name in ("CategoricalAccuracy", "TopKCategoricalAccuracy", "F1Score"):
        return np.eye(5)[labels], rng.random((20, 5))
    if name in ("BinaryAccuracy", "Precision", "Recall", "AUC"):
        return (rng.random((20, 1)) > 0.5) * 1.0, rng.random((20, 1))
    if name == "Accuracy":
        return rng.integers(0, 3, (20, 1)), rng.integers(0, 3, (20, 1))
    return rng.random((20, 3)), rng.random((20, 3))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside Keras's own convert_to_numpy
def test_metrics_match_keras_itself():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on PyTorch, as the issue compares
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(3)
    for name, kwargs in _KERAS_CASES:
        theirs, ours = getattr(keras.metrics, name)(**kwargs), getattr(metrics, name)(**kwargs)
        for batch in range(3):  # accumulated over batches, weighted after the first
            y_true, y_pred = _keras_batch(name, rng)
            sample_weight = None if batch == 0 else rng.random(20)
            theirs.update_state(y_true, y_pred, sample_weight=sample_weight)
            ours.update_state(y_true, y_pred, sample_weight=sample_weight)
        expected = np.asarray(keras.ops.convert_to_numpy(theirs.result()))
        np.testing.assert_allclose(ours.result(), expected, rtol=1e-5, atol=1e-6, err_msg=f"{name}{kwargs}")
        assert ours.name == re.sub(r"_\d+$", "", theirs.name)  # Keras numbers a second instance's name


def test_a_user_metric_named_like_a_built_in_does_not_replace_it():
    # The name tables are closed (built from the built-ins only): defining a class of the same name changes nothing.
    class Precision(metrics.Metric):
        def reset_state(self):
            pass

    assert type(metrics.get("Precision")) is metrics.Precision and type(metrics.get("precision")) is metrics.Precision
    restored = metrics.deserialize(metrics.serialize(metrics.Precision(thresholds=0.7)))
    assert type(restored) is metrics.Precision and Precision is not metrics.Precision
    assert restored.get_config()["thresholds"] == 0.7
    # a loss and a metric may share a class name; each module resolves its own
    assert type(metrics.get({"class_name": "MeanSquaredError", "config": {}})) is metrics.MeanSquaredError
    assert type(losses.get({"class_name": "MeanSquaredError", "config": {}})) is losses.MeanSquaredError


def test_loss_objects_as_metrics_keep_their_names():
    # Both used to be named 'mean_metric_wrapper', so fit reported only one of them.
    assert metrics.get(losses.MeanSquaredError()).name == "mean_squared_error"
    assert metrics.get(losses.Huber(name="robust")).name == "robust"
    model = shendu.models.Sequential([shendu.layers.Dense(1, input_dim=2)])
    model.compile("sgd", loss="mse", metrics=[losses.MeanSquaredError(), losses.MeanAbsoluteError()])
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    logs = model.fit(x, y, verbose=0).history
    assert {"mean_squared_error", "mean_absolute_error"} <= set(logs)
    np.testing.assert_allclose(logs["mean_squared_error"], logs["loss"], rtol=1e-6)


class BinaryTruePositives(metrics.Metric):
    """Keras's documented custom metric: state made in ``__init__`` with ``add_variable``."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = (np.asarray(y_true, bool) & np.asarray(y_pred, bool)).astype(self.dtype)
        if sample_weight is not None:
            values = values * np.broadcast_to(np.asarray(sample_weight, self.dtype), values.shape)
        self.true_positives.assign(self.true_positives + shendu.ops.sum(values))

    def result(self):
        return self.true_positives


def test_a_keras_style_metric_with_variables_made_in_init():
    metric = BinaryTruePositives()
    assert [v.shape for v in metric.variables] == [()] and not metric.true_positives.requires_grad
    metric.update_state([1, 1, 0, 1], [1, 0, 1, 1])
    assert float(metric.result()) == 2.0
    metric.update_state([1, 1], [1, 1], sample_weight=[0.5, 0.25])
    assert float(metric.result()) == 2.75
    metric.reset_state()
    assert float(metric.result()) == 0.0
    assert float(metric([1], [1])) == 1.0  # __call__: update, then the result


def test_add_weight_initializers_dtypes_and_default_reset_of_nested_metrics():
    class Counts(metrics.Metric):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.counts = self.add_weight(shape=(3,), initializer="ones", dtype="float64", name="counts")
            self.inner = metrics.Mean(name="inner")

        def update_state(self, values):
            self.counts.assign(self.counts + np.asarray(values, np.float64))
            self.inner.update_state(values)

        def result(self):
            return {"counts": self.counts, "inner": self.inner.result()}

    metric = Counts(name="counts_metric")
    assert metric.dtype == "float32" and metric.counts.dtype == np.float64
    np.testing.assert_array_equal(metric.counts.numpy(), [1.0, 1.0, 1.0])
    metric.update_state([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(metric.result()["counts"].numpy(), [2.0, 3.0, 4.0])
    assert metric.result()["inner"] == 2.0
    metric.reset_state()  # Keras's default: every variable to zero, held metrics reset
    np.testing.assert_array_equal(metric.counts.numpy(), [0.0, 0.0, 0.0])
    assert metric.inner.count == 0 and metric.result()["inner"] == 0.0
    assert metric.get_config() == {"name": "counts_metric", "dtype": "float32"}


def test_add_variable_before_super_init_is_an_error():
    class Forgot(metrics.Metric):
        def __init__(self):
            self.total = self.add_variable((), "zeros")

    with pytest.raises(RuntimeError, match="super"):
        Forgot()


def test_shendu_style_metrics_keep_their_state_in_reset_state():
    class Count(metrics.Metric):
        def reset_state(self):
            self.n = 0

        def update_state(self, values):
            self.n += len(values)

        def result(self):
            return float(self.n)

    metric = Count()
    metric.update_state([1, 2])
    assert metric.result() == 2.0 and metric.variables == []
