"""Bad labels give a clear error instead of a silently wrong loss (issue 13, "no silent wrong results").

Each error names the loss, the range it expected and the values it received, with a hint; a label that names
no class is never read as another class (NumPy would read -1 as the last one).
"""

from __future__ import annotations

import numpy as np
import pytest

import shendu
from shendu import losses, metrics
from shendu.layers import Dense
from shendu.models import Sequential

RNG = np.random.default_rng(0)
PROBS = RNG.dirichlet(np.ones(4), size=6)
LOGITS = RNG.normal(size=(6, 4))


def _sparse_forms():
    """Every way to compute sparse categorical cross-entropy: function and class, probabilities and logits."""
    return {
        "function": lambda y: losses.sparse_categorical_crossentropy(y, PROBS),
        "function_logits": lambda y: losses.sparse_categorical_crossentropy(y, LOGITS, from_logits=True),
        "class": lambda y: losses.SparseCategoricalCrossentropy()(y, PROBS),
        "class_logits_fused": lambda y: losses.SparseCategoricalCrossentropy(from_logits=True)(y, LOGITS),
        "class_weighted": lambda y: losses.SparseCategoricalCrossentropy(from_logits=True)(y, LOGITS, np.ones(6)),
        "string": lambda y: losses.get("sparse_categorical_crossentropy")(y, PROBS),
        "metric": lambda y: metrics.get("sparse_categorical_crossentropy")(y, PROBS),
    }


@pytest.mark.parametrize("form", sorted(_sparse_forms()))
def test_sparse_label_minus_one_is_refused_not_read_as_the_last_class(form):
    y = np.array([0, 1, 2, 3, -1, 2])
    with pytest.raises(ValueError) as info:
        _sparse_forms()[form](y)
    message = str(info.value)
    assert "sparse_categorical_crossentropy" in message
    assert "[0, 3]" in message and "got -1" in message and "index 4" in message
    assert "ignore_class=-1" in message  # the hint


@pytest.mark.parametrize("form", sorted(_sparse_forms()))
@pytest.mark.parametrize("label", [4, 10, 255])
def test_sparse_label_past_the_last_class_gives_a_short_clear_error(form, label):
    y = np.array([0, 1, 2, 3, 1, label])
    with pytest.raises(ValueError) as info:  # not an IndexError listing index arrays
        _sparse_forms()[form](y)
    message = str(info.value)
    assert "sparse_categorical_crossentropy" in message and f"got {label}" in message
    assert "4 classes" in message and f"give the last layer {label + 1} units" in message
    assert len(message) < 400


@pytest.mark.parametrize("shape", [(6,), (6, 1)])
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "float32"])
def test_sparse_label_check_covers_shapes_and_dtypes(shape, dtype):
    good = np.array([0, 1, 2, 3, 1, 2]).astype(dtype).reshape(shape)
    losses.SparseCategoricalCrossentropy(from_logits=True)(good, LOGITS)  # valid labels pass
    bad = np.array([0, 1, 2, 3, 1, 7]).astype(dtype).reshape(shape)
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\].*got 7"):
        losses.SparseCategoricalCrossentropy(from_logits=True)(bad, LOGITS)


def test_sparse_labels_of_a_sequence_report_the_position():
    logits = RNG.normal(size=(2, 3, 4))
    y = np.array([[0, 1, 2], [3, 9, 0]])
    with pytest.raises(ValueError, match=r"got 9 \(1 of 6 labels out of range, the first at index \(1, 1\)\)"):
        losses.sparse_categorical_crossentropy(y, logits, from_logits=True)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ignore", [-1, 255])
def test_ignore_class_outside_the_range_is_still_allowed(from_logits, ignore):
    pred = LOGITS if from_logits else PROBS
    y = np.array([0, ignore, 2, 3, ignore, 1])
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=ignore)(y, pred)
    keep = y != ignore
    expected = losses.SparseCategoricalCrossentropy(from_logits=from_logits)(y[keep], pred[keep])
    np.testing.assert_allclose(loss.data, expected.data, rtol=1e-6)
    with pytest.raises(ValueError, match="got 7"):  # other out-of-range labels are still refused
        losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=ignore)(
            np.array([0, ignore, 7, 3, 1, 1]), pred)


def test_fit_and_evaluate_refuse_a_label_that_names_no_class():
    shendu.seed(0)
    model = Sequential([Dense(3, input_dim=2)])
    model.compile("sgd", loss=losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x = RNG.normal(size=(8, 2)).astype("float32")
    y = np.array([0, 1, 2, 1, 0, 3, 2, 1])
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy: .*\[0, 2\].*got 3.*4 units"):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        model.evaluate(x, np.where(y == 3, -1, y), verbose=0)


# ---------------------------------------------------------------------------- binary cross-entropy
def _binary_forms():
    p = np.full((4, 1), 0.3)
    z = np.zeros((4, 1))
    return {
        "function": lambda y: losses.binary_crossentropy(y, p),
        "function_logits": lambda y: losses.binary_crossentropy(y, z, from_logits=True),
        "class": lambda y: losses.BinaryCrossentropy()(y, p),
        "class_logits_fused": lambda y: losses.BinaryCrossentropy(from_logits=True)(y, z),
        "class_smoothing": lambda y: losses.BinaryCrossentropy(label_smoothing=0.2)(y, p),
        "class_logits_smoothing": lambda y: losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2)(y, z),
        "metric": lambda y: metrics.get("binary_crossentropy")(y, p),
    }


@pytest.mark.parametrize("form", sorted(_binary_forms()))
@pytest.mark.parametrize("labels, hint", [([0, 1, 2, 1], "sparse_categorical_crossentropy"),
                                          ([-1, 1, 1, -1], r"\(y \+ 1\) / 2"),
                                          ([0, 0.5, 1.5, 1], "rescale")])
def test_binary_targets_outside_zero_one_are_refused(form, labels, hint):
    y = np.array(labels, dtype="float64").reshape(4, 1)
    with pytest.raises(ValueError, match=r"binary_crossentropy: y_true must hold probabilities in \[0, 1\], got "
                                         r"values from .*Hint: .*" + hint):
        _binary_forms()[form](y)


@pytest.mark.parametrize("form", sorted(_binary_forms()))
def test_binary_soft_and_hard_targets_inside_zero_one_are_accepted(form):
    for labels in ([0, 1, 1, 0], [0.0, 0.25, 0.9, 1.0]):
        result = _binary_forms()[form](np.array(labels).reshape(4, 1))
        value = np.mean(result.data if isinstance(result, shendu.Tensor) else result)
        assert np.isfinite(value) and value > 0


def test_binary_nan_target_is_refused():
    with pytest.raises(ValueError, match="binary_crossentropy: .*NaN in 1 of 3"):
        losses.BinaryCrossentropy(from_logits=True)(np.array([0.0, np.nan, 1.0]), np.zeros(3))


# ---------------------------------------------------------------------------- metrics that read labels
@pytest.mark.parametrize("k", [1, 2, 4])
def test_sparse_top_k_never_reads_a_non_class_label_as_another_class(k):
    scores = np.array([[0.1, 0.1, 0.1, 0.7], [0.7, 0.1, 0.1, 0.1]])
    # -1 used to index the last class (a hit for row 0); 255 used to raise an IndexError.
    for bad in (-1, 255):
        hits = metrics.sparse_top_k_categorical_accuracy(np.array([bad, 0]), scores, k=k)
        np.testing.assert_array_equal(hits, [0.0, 1.0])
    np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy(np.array([3, 0]), scores, k=k), [1, 1])
    m = metrics.SparseTopKCategoricalAccuracy(k=k)
    m.update_state(np.array([[-1], [0]]), scores)
    assert m.result() == 0.5


def test_sparse_categorical_accuracy_counts_a_non_class_label_as_a_miss():
    scores = np.array([[0.1, 0.9], [0.8, 0.2]])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(np.array([-1, 0]), scores), [0.0, 1.0])
