"""Step plans (shendu.models.step_plan): a replayed training step is the recorded one, bit for bit, and a step that
cannot be replayed is never planned."""

import threading

import numpy as np
import pytest

import shendu
from shendu import losses, regularizers
from shendu.autograd import op as op_module
from shendu.callbacks import LambdaCallback
from shendu.layers import Activation, BatchNormalization, Dense, Dropout, Flatten, Input, Layer
from shendu.models import Model, Sequential, step_plan
from shendu.optimizers import SGD, Adam


@pytest.fixture
def plans_on():
    saved = step_plan.enabled
    step_plan.enabled = True
    yield
    step_plan.enabled = saved


def _data(n=50, features=6, outputs=3):
    rng = np.random.default_rng(1)
    return (rng.random((n, features)).astype(np.float32), rng.random((n, outputs)).astype(np.float32),
            rng.integers(0, outputs, n), rng.random(n).astype(np.float32))


def _train(build, planned, loss="mse", target="y", sample_weight=False, epochs=3, **fit):
    saved = step_plan.enabled
    step_plan.enabled = planned
    try:
        shendu.seed(0)
        x, y, labels, sw = _data()
        model = build()
        model.compile(optimizer=Adam(1e-2), loss=loss, metrics=["mae"] if target == "y" else ["accuracy"])
        logs = []
        cb = LambdaCallback(on_train_batch_end=lambda b, lg: logs.append(dict(lg)))
        history = model.fit(x, y if target == "y" else labels, batch_size=16, epochs=epochs, verbose=0,
                            sample_weight=sw if sample_weight else None, callbacks=[cb], **fit)
        return model, [w.data.copy() for w in model.weights], history.history, logs
    finally:
        step_plan.enabled = saved


def _mlp():
    return Sequential([Input((6,)), Dense(8, activation="relu"), Dropout(0.3), Dense(3)])


def _functional():
    i = Input((6,))
    d = Dense(6, activation="tanh")
    o = Dense(3)(d(d(i)))  # a shared layer: its weights get two gradients
    return Model(i, Activation("softmax")(o))


CASES = {
    "mlp with dropout": (_mlp, {}),
    "sample weights and validation": (_mlp, {"sample_weight": True, "validation_split": 0.2}),
    "sparse cross-entropy from logits": (lambda: Sequential([Input((6,)), Dense(5, activation="relu"), Dense(3)]),
                                         {"loss": losses.SparseCategoricalCrossentropy(from_logits=True),
                                          "target": "labels"}),
    "functional, shared layer": (_functional, {"loss": "categorical_crossentropy"}),
    "weight regulariser": (lambda: Sequential([Input((6,)), Dense(3, kernel_regularizer=regularizers.L2(0.1))]), {}),
    "float64 data": (lambda: Sequential([Dense(3, input_dim=6)]), {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_replayed_steps_equal_the_normal_ones_bit_for_bit(case, plans_on):
    build, kwargs = CASES[case]
    model, weights, history, logs = _train(build, True, **kwargs)
    if case != "weight regulariser":  # (planned or not, the results must match)
        assert any(p is not None for p in model._train.plans.plans.values()), "the step was not planned"
    _, weights_ref, history_ref, logs_ref = _train(build, False, **kwargs)
    for w, ref in zip(weights, weights_ref):
        np.testing.assert_array_equal(w, ref)
    assert history == history_ref
    assert logs == logs_ref  # callbacks see the same logs, batch by batch


def test_the_seed_program_is_planned_and_matches(plans_on):
    def seed_model():
        return Sequential([Dense(1, input_dim=1)])

    shendu.seed(0)
    X = np.random.rand(100, 1)
    results = []
    for planned in (True, False):
        step_plan.enabled = planned
        shendu.seed(0)
        m = seed_model()
        m.compile(optimizer=SGD(lr=0.01, momentum=0.9), loss="mean_squared_error")
        h = m.fit(X, X ** 2, epochs=20, verbose=0)
        results.append(([w.data.copy() for w in m.weights], h.history["loss"], len(m._train.plans.plans)))
        if planned:
            m_planned = m
    (w1, l1, n1), (w2, l2, n2) = results
    assert n1 == 2 and n2 == 0  # full batches of 32 and the last batch of 4
    assert m_planned._train.plans.replayed == 20 * 4 - 2  # recorded at the first batch of each shape only
    assert l1 == l2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


class _Noisy(Layer):
    """Adds noise drawn outside the ops: a replay would reuse one draw, so it must never be planned."""

    def call(self, x):
        return x + np.random.default_rng().random(x.shape).astype(np.float32)


@pytest.mark.parametrize("build", [
    lambda: Sequential([Input((6,)), Dense(4), _Noisy(), Dense(3)]),  # a layer not known to be pure
    lambda: Sequential([Input((6,)), Dense(4), BatchNormalization(), Dense(3)]),  # running statistics
    lambda: Sequential([Input((6,)), Dense(3, activity_regularizer=regularizers.L2(0.1))]),  # add_loss
    lambda: Sequential([Input((6,)), Dense(3, activation=lambda t: t * 2.0)]),  # a user's activation
], ids=["custom layer", "batch norm", "activity regulariser", "custom activation"])
def test_steps_that_cannot_be_replayed_are_not_planned(build, plans_on):
    model, *_ = _train(build, True)
    assert not any(model._train.plans.plans.values())


def test_a_custom_train_step_or_subclass_is_not_planned(plans_on):
    class Custom(Sequential):
        pass

    model, *_ = _train(lambda: Custom([Input((6,)), Dense(3)]), True)
    assert not model._train.plans.plans and model._train.plans.allowed is False


def test_an_array_made_outside_the_ops_refuses_the_plan(plans_on):
    x, y, _, _ = _data()
    model = Sequential([Input((6,)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y[:, 0], batch_size=50, epochs=2, verbose=0)  # y of shape (n,) expanded per batch, outside the ops
    assert model._train.plans.plans and all(p is None for p in model._train.plans.plans.values())


def test_plans_follow_weights_and_structure(plans_on):
    x, y, _, _ = _data()
    model = Sequential([Input((6,)), Dense(4), Dense(3)])
    model.compile(optimizer=SGD(0.1), loss="mse")
    model.fit(x, y, batch_size=50, epochs=2, verbose=0)
    assert len(model._train.plans.plans) == 1
    new = [np.full_like(w, 0.5) for w in model.get_weights()]
    model.set_weights(new)  # replays read the weights afresh
    before = model.get_weights()
    model.fit(x, y, batch_size=50, epochs=1, verbose=0, shuffle=False)
    ref = Sequential([Input((6,)), Dense(4), Dense(3)])
    ref.compile(optimizer=SGD(0.1), loss="mse")
    ref.set_weights(before)
    step_plan.enabled = False
    ref.fit(x, y, batch_size=50, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    step_plan.enabled = True
    model.layers[0].trainable = False  # the structure changed: plans are dropped and recorded again
    frozen = model.layers[0].get_weights()
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    for a, b in zip(model.layers[0].get_weights(), frozen):
        np.testing.assert_array_equal(a, b)
    model.add(Dense(2))
    model.compile(optimizer=SGD(0.1), loss="mse")
    model.fit(x, y[:, :2], batch_size=50, epochs=1, verbose=0)
    assert all(p is not None for p in model._train.plans.plans.values())


def test_recording_in_one_thread_ignores_ops_of_another():
    class Probe:
        def __init__(self):
            self.entries, self.pure = [], True

        def add(self, *args):
            self.entries.append(args)

        def unrecorded(self):
            self.pure = False

    probe = Probe()
    op_module.start_recording(probe)
    try:
        t = threading.Thread(target=lambda: (shendu.ones(3, requires_grad=True) * 2).sum())
        t.start()
        t.join()
        assert probe.entries == [] and probe.pure
        (shendu.ones(3, requires_grad=True) * 2).sum()
        assert len(probe.entries) == 2
    finally:
        op_module.stop_recording()
    assert not op_module._RECORDERS


@pytest.mark.parametrize("from_logits", [True, False])
def test_flatten_first_mlp(from_logits, plans_on):
    """Planned with either loss (from probabilities, the labels reach NegativeLogLikelihoodOp as an input, so
    each replay reads its own batch's), and the results match the unplanned steps bit for bit."""
    rng = np.random.default_rng(0)
    x = rng.random((40, 4, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    out = []
    for planned in (True, False):
        step_plan.enabled = planned
        shendu.seed(0)
        m = Sequential([Input((4, 4)), Flatten(), Dense(8, activation="relu"),
                        Dense(3, activation=None if from_logits else "softmax")])
        m.compile(optimizer=Adam(1e-2), loss=losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"])
        h = m.fit(x, labels, batch_size=8, epochs=2, verbose=0)
        out.append((m.get_weights(), h.history, any(m._train.plans.plans.values())))
    assert out[0][2] and not out[1][2]
    assert out[0][1] == out[1][1]
    for a, b in zip(out[0][0], out[1][0]):
        np.testing.assert_array_equal(a, b)


def test_changing_a_layer_setting_or_the_loss_records_again(plans_on):
    """Settings live in the ops' arguments (the dropout rate, a loss's reduction): changing one between batches
    must reach the next step, as it does without plans."""
    x, y, _, _ = _data()
    runs = []
    for planned in (True, False):
        step_plan.enabled = planned
        shendu.seed(0)
        m = Sequential([Input((6,)), Dense(8), Dropout(0.5), Dense(3)])
        m.compile(optimizer=SGD(0.05), loss=losses.MeanSquaredError())

        def change(batch, logs, m=m):
            if batch == 1:
                m.layers[1].rate = 0.1
                m._train.compiled_loss.fns[0].reduction = "sum"

        m.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[LambdaCallback(on_train_batch_end=change)])
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_two_threads_fitting_two_models_record_and_replay_their_own_steps(plans_on):
    x, y, _, _ = _data()

    def make(seed):
        shendu.seed(seed)
        m = Sequential([Input((6,)), Dense(8, activation="relu"), Dense(3)])
        m.compile(optimizer=SGD(0.05, momentum=0.9), loss="mse")
        return m

    alone = []
    for seed in (0, 1):
        m = make(seed)
        m.fit(x, y, batch_size=10, epochs=20, verbose=0, shuffle=False)
        alone.append(m.get_weights())
    models = [make(0), make(1)]
    threads = [threading.Thread(target=lambda m=m: m.fit(x, y, batch_size=10, epochs=20, verbose=0, shuffle=False))
               for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m, ref in zip(models, alone):
        assert m._train.plans.replayed > 0
        for a, b in zip(m.get_weights(), ref):
            np.testing.assert_array_equal(a, b)


def test_a_plan_is_written_out_as_a_function_to_read(plans_on):
    shendu.seed(0)
    model = Sequential([Dense(1, input_dim=1)])
    model.compile(optimizer=SGD(lr=0.01, momentum=0.9), loss="mean_squared_error")
    x = np.random.default_rng(0).random((64, 1))
    model.fit(x, x ** 2, batch_size=32, epochs=2, verbose=0)
    (plan,) = [p for p in model._train.plans.plans.values() if p is not None]
    lines = plan.source.splitlines()
    assert lines[0] == "def replay(x, y, sw):"
    assert not any(line.lstrip().startswith(("for ", "while ")) for line in lines)  # straight-line
    forward = [line for line in lines if ".forward(" in line]
    assert [line.split("# ")[-1] for line in forward] == ["LinearOp", "MeanSquaredErrorOp"]
    assert sum(".backward(" in line for line in lines) == 2


class _Halves(op_module.Op):
    """(x[:, :k], x[:, k:]): an op with two outputs, for the replay's tuple path."""

    def forward(self, x):
        k = x.shape[1] // 2
        return x[:, :k].copy(), x[:, k:].copy()

    def backward(self, gy, x, out):
        return (np.concatenate(gy, axis=1),)


@pytest.mark.parametrize("used", [(0,), (0, 1)], ids=["one output used", "both used"])
def test_replayed_tuple_outputs_get_the_engines_gradients(used):
    """A two-output op whose second output may get no gradient (filled with zeros, as the engine does), and an
    output used twice (its gradients summed); the replay's weight gradient equals the engine's, bit for bit."""
    from shendu.ops.arithmetic import MulOp
    from shendu.ops.reduce import SumOp

    rng = np.random.default_rng(0)
    w = shendu.Parameter(rng.standard_normal((3, 4)).astype(np.float32))
    halves = _Halves()(w)
    product = halves[0] * halves[used[-1]]
    (product.sum()).backward()
    want = w.grad.data.copy()
    w.grad = None

    def entry(cls, config, sources, needs, outputs=0):
        return step_plan._Entry(cls, config, sources, True, needs, outputs)

    entries = [entry(_Halves, {}, [(step_plan._WEIGHT, w, 0)], [True], outputs=2),
               entry(MulOp, {}, [(step_plan._OUT, 0, 0), (step_plan._OUT, 0, used[-1])], [True, True]),
               entry(SumOp, {"axis": None, "keepdims": False}, [(step_plan._OUT, 1, 0)], [True])]
    plan = step_plan.Plan(entries, [(w, True)], (1, 0), (2, 0), [])
    _, loss = plan.run(None, None, None)
    np.testing.assert_array_equal(loss.data, product.sum().data)
    np.testing.assert_array_equal(w.grad.data, want)
    if used == (0,):  # the unused output's gradient: zeros, as the engine gives it
        assert "_zeros_like(o0[1]),)" in plan.source


def test_a_replayed_step_still_refuses_a_bad_label(plans_on):
    """The labels are checked inside the loss's op, so a replayed step meets a label out of range as the first step
    does: a clear error, not a silently wrong loss (-1 would read the last class)."""
    shendu.seed(0)
    x = np.random.default_rng(0).random((48, 4)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 3, 48)
    m = Sequential([Input((4,)), Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, labels, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert m._train.plans.replayed == 2
    bad = labels.copy()
    bad[40] = -1  # in the third batch: a replayed step
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy: .*labels .*\[0, 3\)"):
        m.fit(x, bad, batch_size=16, epochs=1, shuffle=False, verbose=0)
