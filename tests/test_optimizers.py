"""Optimisers: N steps against torch.optim (epsilon conventions mapped) or against NumPy transcriptions of
Keras 3's formulas where PyTorch has no equivalent; clipping, weight decay, groups, configs, state_dict."""

import math
import os
import sys
import warnings

import numpy as np
import pytest

import shendu
from shendu import optimizers
from shendu.optimizers import (
    GD,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lion,
    Nadam,
    Optimizer,
    RMSprop,
    schedules,
)

N_STEPS = 20
SHAPES = [(3, 4), (5,), (1, 1)]


def _problem(seed=0, scale=1.0):
    """Initial weights and N_STEPS rounds of gradients (float64)."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[scale * rng.standard_normal(s) for s in SHAPES] for _ in range(N_STEPS)]
    return init, grads


def _run_shendu(make_opt, init, grads, style="torch"):
    params = [shendu.Parameter(w.copy()) for w in init]
    opt = make_opt(params)
    for step_grads in grads:
        if style == "torch":
            for p, g in zip(params, step_grads):
                p.grad = shendu.tensor(g)
            opt.step()
            opt.zero_grad()
        else:
            opt.apply_gradients(zip(step_grads, params))
    return [p.data for p in params], opt


def _run_torch(make_opt, init, grads, before_step=None):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(w.copy(), requires_grad=True) for w in init]
    opt = make_opt(params)
    for t, step_grads in enumerate(grads, start=1):
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        if before_step is not None:
            before_step(opt, t)
        opt.step()
    return [p.detach().numpy() for p in params]


def _assert_close(actual, expected, rtol=1e-5):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=1e-12)


def _keras_adam_eps(eps, beta_2):
    """Keras adds epsilon to sqrt(v) before bias correction; torch after: torch eps_t = eps / sqrt(1 - beta_2**t)."""
    def before_step(opt, t):
        for group in opt.param_groups:
            group["eps"] = eps / math.sqrt(1 - beta_2 ** t)
    return before_step


# (id, shendu factory, torch factory, hook before each torch step)
TORCH_CASES = [
    ("gd", lambda p: GD(0.1, params=p), lambda t, p: t.optim.SGD(p, lr=0.1), None),
    ("sgd", lambda p: SGD(0.05, params=p), lambda t, p: t.optim.SGD(p, lr=0.05), None),
    ("sgd-momentum", lambda p: SGD(0.05, params=p, momentum=0.9),
     lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9), None),
    ("sgd-nesterov", lambda p: SGD(0.05, params=p, momentum=0.8, nesterov=True),
     lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True), None),
    ("adam", lambda p: Adam(0.01, params=p, epsilon=1e-3),
     lambda t, p: t.optim.Adam(p, lr=0.01), _keras_adam_eps(1e-3, 0.999)),
    ("adam-amsgrad", lambda p: Adam(0.01, params=p, beta_1=0.8, beta_2=0.99, epsilon=1e-3, amsgrad=True),
     lambda t, p: t.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), amsgrad=True), _keras_adam_eps(1e-3, 0.99)),
    ("adamw", lambda p: AdamW(0.01, params=p, weight_decay=0.1, epsilon=1e-3),
     lambda t, p: t.optim.AdamW(p, lr=0.01, weight_decay=0.1), _keras_adam_eps(1e-3, 0.999)),
    # torch's Adamax adds eps inside the max, Keras outside the max: equal for eps=0 (Keras form checked below)
    ("adamax", lambda p: Adamax(0.01, params=p, epsilon=0.0), lambda t, p: t.optim.Adamax(p, lr=0.01, eps=0.0), None),
    # Keras 3's Nadam momentum schedule 0.96**t is torch's NAdam with momentum_decay=1 (torch default: 0.004)
    ("nadam", lambda p: Nadam(0.01, params=p, epsilon=1e-3),
     lambda t, p: t.optim.NAdam(p, lr=0.01, eps=1e-3, momentum_decay=1.0), None),
    # RMSprop/Adagrad: Keras puts epsilon inside the sqrt, torch outside: equal for eps=0 (Keras form below)
    ("rmsprop", lambda p: RMSprop(0.01, params=p, rho=0.8, epsilon=0.0),
     lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.8, eps=0.0), None),
    ("rmsprop-momentum-centered", lambda p: RMSprop(0.01, params=p, momentum=0.7, centered=True, epsilon=0.0),
     lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.7, centered=True, eps=0.0), None),
    ("adagrad", lambda p: Adagrad(0.1, params=p, epsilon=0.0),
     lambda t, p: t.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=0.0), None),
    ("adadelta", lambda p: Adadelta(1.0, params=p, rho=0.9, epsilon=1e-6),
     lambda t, p: t.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6), None),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c[0])
def test_matches_torch_optim(case):
    torch = pytest.importorskip("torch")
    _, make_shendu, make_torch, hook = case
    init, grads = _problem()
    expected = _run_torch(lambda p: make_torch(torch, p), init, grads, hook)
    actual, opt = _run_shendu(make_shendu, init, grads)
    assert opt.iterations == N_STEPS
    assert not np.allclose(actual[0], init[0])  # the run really moved the weights
    _assert_close(actual, expected)


def test_keras_style_apply_gradients_equals_torch_style_step():
    init, grads = _problem(seed=3)
    torch_style, _ = _run_shendu(lambda p: Adam(0.01, params=p), init, grads, style="torch")
    keras_style, opt = _run_shendu(lambda p: Adam(0.01), init, grads, style="keras")
    assert opt.iterations == N_STEPS and len(opt.state) == len(SHAPES)
    for a, b in zip(torch_style, keras_style):
        np.testing.assert_array_equal(a, b)


def test_sgd_weight_decay_without_momentum_equals_torch_coupled_decay():
    torch = pytest.importorskip("torch")
    init, grads = _problem(seed=1)
    # Keras decays the weights (w -= lr*wd*w) before the step: without momentum that is torch's coupled decay,
    # w -= lr*(g + wd*w); with momentum the two differ.
    expected = _run_torch(lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=0.1), init, grads)
    actual, _ = _run_shendu(lambda p: SGD(0.05, params=p, weight_decay=0.1), init, grads)
    _assert_close(actual, expected)


# --------------------------------------------------------------------- NumPy transcriptions of Keras 3's formulas
def _keras_rmsprop(w, grads, lr, rho, momentum, epsilon, centered):
    v, s, a = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        v = rho * v + (1 - rho) * g ** 2
        if centered:
            a = rho * a + (1 - rho) * g
            increment = lr * g / np.sqrt(v - a ** 2 + epsilon)
        else:
            increment = lr * g / np.sqrt(v + epsilon)
        if momentum > 0:
            s = momentum * s + increment
            w = w - s
        else:
            w = w - increment
    return w


def _keras_adagrad(w, grads, lr, initial, epsilon):
    acc = np.full_like(w, initial)
    for g in grads:
        acc = acc + g ** 2
        w = w - lr * g / np.sqrt(acc + epsilon)
    return w


def _keras_adamax(w, grads, lr, beta_1, beta_2, epsilon):
    m, u = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = m + (g - m) * (1 - beta_1)
        u = np.maximum(beta_2 * u, np.abs(g))
        w = w - lr * m / ((1 - beta_1 ** t) * (u + epsilon))
    return w


def _keras_nadam(w, grads, lr, beta_1, beta_2, epsilon):
    m, v, product = np.zeros_like(w), np.zeros_like(w), 1.0
    for t, g in enumerate(grads, start=1):
        u_t = beta_1 * (1 - 0.5 * 0.96 ** t)
        u_next = beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
        product *= u_t
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        m_hat = u_next * m / (1 - product * u_next) + (1 - u_t) * g / (1 - product)
        w = w - lr * m_hat / (np.sqrt(v / (1 - beta_2 ** t)) + epsilon)
    return w


def _lion_paper(w, grads, lr, beta_1, beta_2, weight_decay):
    """Chen et al. 2023, Algorithm 2 (decoupled weight decay applied to the weights first, as Keras does)."""
    m = np.zeros_like(w)
    for g in grads:
        w = w - lr * weight_decay * w
        c = beta_1 * m + (1 - beta_1) * g
        w = w - lr * np.sign(c)
        m = beta_2 * m + (1 - beta_2) * g
    return w


KERAS_FORMULA_CASES = [
    ("rmsprop", lambda p: RMSprop(0.01, params=p, epsilon=1e-2),
     lambda w, gs: _keras_rmsprop(w, gs, 0.01, 0.9, 0.0, 1e-2, False)),
    ("rmsprop-centered-momentum", lambda p: RMSprop(0.01, params=p, momentum=0.5, centered=True, epsilon=1e-2),
     lambda w, gs: _keras_rmsprop(w, gs, 0.01, 0.9, 0.5, 1e-2, True)),
    ("adagrad", lambda p: Adagrad(0.1, params=p, epsilon=1e-2), lambda w, gs: _keras_adagrad(w, gs, 0.1, 0.1, 1e-2)),
    ("adamax", lambda p: Adamax(0.01, params=p, epsilon=1e-2),
     lambda w, gs: _keras_adamax(w, gs, 0.01, 0.9, 0.999, 1e-2)),
    ("nadam-defaults", lambda p: Nadam(params=p), lambda w, gs: _keras_nadam(w, gs, 0.001, 0.9, 0.999, 1e-7)),
    ("lion", lambda p: Lion(0.01, params=p, beta_1=0.8, beta_2=0.95),
     lambda w, gs: _lion_paper(w, gs, 0.01, 0.8, 0.95, 0.0)),
    ("lion-weight-decay", lambda p: Lion(0.01, params=p, weight_decay=0.5),
     lambda w, gs: _lion_paper(w, gs, 0.01, 0.9, 0.99, 0.5)),
]


@pytest.mark.parametrize("case", KERAS_FORMULA_CASES, ids=lambda c: c[0])
def test_matches_numpy_transcription_of_keras_formula(case):
    _, make_shendu, reference = case
    init, grads = _problem(seed=2)
    actual, _ = _run_shendu(make_shendu, init, grads)
    expected = [reference(w, [g[i] for g in grads]) for i, w in enumerate(init)]
    _assert_close(actual, expected)


def test_lion_moves_every_coordinate_by_exactly_lr():
    w = shendu.Parameter(np.zeros(4))
    opt = Lion(0.01, params=[w])
    w.grad = shendu.tensor(np.array([3.0, -0.1, 2e-9, -5.0]))
    opt.step()
    np.testing.assert_array_equal(w.data, [-0.01, 0.01, -0.01, 0.01])


# --------------------------------------------------------------------- arguments, defaults and errors
@pytest.mark.parametrize("cls, lr, hyper", [
    (SGD, 0.01, {"momentum": 0.0, "nesterov": False}),
    (GD, 0.01, {}),
    (Adam, 0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}),
    (AdamW, 0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}),
    (RMSprop, 0.001, {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False}),
    (Adagrad, 0.001, {"initial_accumulator_value": 0.1, "epsilon": 1e-7}),
    (Adadelta, 0.001, {"rho": 0.95, "epsilon": 1e-7}),
    (Adamax, 0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    (Nadam, 0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    (Lion, 0.001, {"beta_1": 0.9, "beta_2": 0.99}),
])
def test_keras_3_defaults(cls, lr, hyper):
    opt = cls()
    assert opt.learning_rate == lr
    assert {k: getattr(opt, k) for k in hyper} == hyper
    assert opt.weight_decay == (0.004 if cls is AdamW else None)


def test_lr_is_an_alias_of_learning_rate():
    opt = SGD(lr=0.01, momentum=0.9)  # the seed program's spelling
    assert opt.learning_rate == 0.01 and opt.lr == 0.01 and opt.momentum == 0.9
    opt.lr = 0.5
    assert opt.learning_rate == 0.5
    with pytest.raises(TypeError, match="alias"):
        SGD(learning_rate=0.1, lr=0.1)


def test_unknown_keyword_is_rejected_with_the_valid_ones():
    with pytest.raises(TypeError, match=r"\['momentun'\].*momentum, nesterov"):
        SGD(0.1, momentun=0.9)
    with pytest.raises(TypeError, match="amsgrad"):
        Adam(betas=(0.9, 0.999))


def test_invalid_hyper_parameters_raise():
    with pytest.raises(ValueError, match="momentum"):
        SGD(momentum=1.5)
    with pytest.raises(ValueError, match="beta_1"):
        Lion(beta_1=0.0)
    with pytest.raises(ValueError, match="Only one of"):
        Adam(clipnorm=1.0, clipvalue=1.0)


def test_parameters_passed_as_learning_rate_get_a_hint():
    w = shendu.Parameter(np.zeros(2))
    with pytest.raises(TypeError, match="params="):
        SGD([w], lr=0.1)


def test_keras_2_decay_argument_is_time_based_decay():
    w = shendu.Parameter(np.zeros(1))
    opt = SGD(lr=0.1, decay=0.5, params=[w])
    rates = []
    for _ in range(3):
        rates.append(opt.learning_rate)
        w.grad = shendu.tensor(np.ones(1))
        opt.step()
    np.testing.assert_allclose(rates, [0.1 / (1 + 0.5 * t) for t in range(3)])
    np.testing.assert_allclose(w.data, [-sum(rates)])


# --------------------------------------------------------------------- learning rate: float, schedule, callable
def test_schedule_is_evaluated_at_iterations():
    schedule = schedules.PiecewiseConstantDecay([1, 2], [0.5, 0.25, 0.125])
    w = shendu.Parameter(np.zeros(1))
    opt = SGD(schedule, params=[w])
    for _ in range(4):
        w.grad = shendu.tensor(np.ones(1))
        opt.step()
    # steps at iterations 0, 1, 2, 3 use 0.5, 0.5, 0.25, 0.125
    np.testing.assert_allclose(w.data, [-(0.5 + 0.5 + 0.25 + 0.125)])
    assert opt.learning_rate == 0.125
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    opt.learning_rate = schedules.ExponentialDecay(1.0, 1, 0.5)  # replacing with another schedule is fine
    assert opt.learning_rate == 0.5 ** 4


def test_callable_learning_rate_and_setter():
    rate = {"value": 0.3}
    opt = SGD(lambda: rate["value"])
    assert opt.learning_rate == 0.3
    rate["value"] = 0.1
    assert opt.learning_rate == 0.1
    opt2 = Adam(0.01)
    opt2.learning_rate = 0.002  # what ReduceLROnPlateau and LearningRateScheduler do
    assert opt2.learning_rate == 0.002 and isinstance(opt2.learning_rate, float)


# --------------------------------------------------------------------- clipping and weight decay (Keras 3 formulas)
def _one_step(opt_kwargs, grads):
    params = [shendu.Parameter(np.zeros_like(g)) for g in grads]
    SGD(1.0, **opt_kwargs).apply_gradients(zip(grads, params))
    return [-p.data for p in params]  # with lr=1 and w=0, -w is the gradient actually applied


def test_clipnorm_clips_each_gradient_to_the_norm():
    big, small = np.array([3.0, 4.0]), np.array([0.3, 0.4])
    applied = _one_step({"clipnorm": 1.0}, [big, small])
    np.testing.assert_allclose(applied[0], big * 1.0 / 5.0)
    np.testing.assert_array_equal(applied[1], small)


def test_global_clipnorm_scales_all_gradients_together():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 4.0])
    applied = _one_step({"global_clipnorm": 2.5}, [a, b])
    np.testing.assert_allclose(applied[0], a * 0.5)
    np.testing.assert_allclose(applied[1], b * 0.5)
    untouched = _one_step({"global_clipnorm": 10.0}, [a, b])
    np.testing.assert_array_equal(untouched[0], a)


def test_clipvalue_clips_elements():
    applied = _one_step({"clipvalue": 0.5}, [np.array([-2.0, 0.1, 0.7])])
    np.testing.assert_array_equal(applied[0], [-0.5, 0.1, 0.5])


def test_clipping_does_not_modify_param_grad():
    w = shendu.Parameter(np.zeros(2))
    w.grad = shendu.tensor(np.array([3.0, 4.0]))
    SGD(1.0, params=[w], clipnorm=1.0).step()
    np.testing.assert_array_equal(w.grad.data, [3.0, 4.0])
    np.testing.assert_allclose(w.data, [-0.6, -0.8])


def test_weight_decay_is_decoupled_and_can_exclude_parameters():
    kernel = shendu.Parameter(np.ones(2), name="dense/kernel")
    bias = shendu.Parameter(np.ones(2), name="dense/bias")
    opt = Adam(0.1, params=[kernel, bias], weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    for p in (kernel, bias):
        p.grad = shendu.tensor(np.zeros(2))
    opt.step()  # zero gradient: Adam's step is 0, only the decay acts: w -= lr*wd*w
    np.testing.assert_allclose(kernel.data, [0.95, 0.95])
    np.testing.assert_array_equal(bias.data, [1.0, 1.0])


# --------------------------------------------------------------------- PyTorch-style use
def test_pytorch_style_loop_fits_a_line():
    rng = np.random.default_rng(0)
    x = shendu.tensor(rng.random((64, 1)))
    y = 3.0 * x + 0.5
    w = shendu.Parameter(np.zeros((1, 1), dtype=np.float32))
    b = shendu.Parameter(np.zeros(1, dtype=np.float32))
    opt = SGD(0.1, params=[w, b], momentum=0.9)
    for _ in range(300):
        loss = ((x @ w + b - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert w.dtype == np.float32 and b.dtype == np.float32  # Python-float hyper-parameters never promote
    np.testing.assert_allclose([w.item(), b.item()], [3.0, 0.5], atol=1e-3)


def test_parameters_without_grad_are_skipped_and_zero_grad_clears():
    a, b = shendu.Parameter(np.ones(2)), shendu.Parameter(np.ones(2))
    opt = Adam(0.1, params=[a, b])
    a.grad = shendu.tensor(np.ones(2))
    opt.step()
    assert not np.allclose(a.data, 1.0)
    np.testing.assert_array_equal(b.data, [1.0, 1.0])
    np.testing.assert_array_equal(opt.state[b]["momentum"], [0.0, 0.0])
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    a.grad = shendu.tensor(np.ones(2))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.data, [0.0, 0.0])


def test_step_with_closure_returns_the_loss():
    w = shendu.Parameter(np.array([2.0]))
    opt = SGD(0.25, params=[w])

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 4.0
    np.testing.assert_allclose(w.data, [1.0])  # 2 - 0.25 * 4


def test_param_groups_take_their_own_learning_rate_like_torch():
    torch = pytest.importorskip("torch")
    init, grads = _problem(seed=4)

    def make_shendu(p):
        return SGD(0.1, params=[{"params": p[:1], "lr": 0.01}, {"params": p[1:]}], momentum=0.9)

    def make_torch(p):
        return torch.optim.SGD([{"params": p[:1], "lr": 0.01}, {"params": p[1:]}], lr=0.1, momentum=0.9)

    actual, opt = _run_shendu(make_shendu, init, grads)
    _assert_close(actual, _run_torch(make_torch, init, grads))
    assert [len(g["params"]) for g in opt.param_groups] == [1, len(SHAPES) - 1]
    with pytest.raises(TypeError, match="group keys"):
        SGD(params=[{"params": [shendu.Parameter(np.ones(1))], "momentum": 0.5}])


def test_state_is_keyed_by_parameter_in_order_and_add_params_skips_known():
    params = [shendu.Parameter(np.ones(s)) for s in SHAPES]
    opt = RMSprop(momentum=0.5, centered=True)
    opt.add_params(params[:2])
    opt.add_params(params)  # what Model.compile does again on a second fit
    assert list(opt.state) == params and opt.params == params
    assert all(opt.state[p]["velocity"].shape == p.shape for p in params)
    assert sorted(opt.state[params[0]]) == ["average_gradient", "momentum", "velocity"]
    with pytest.raises(TypeError, match="floating-point"):
        opt.add_params([shendu.tensor(np.arange(3))])


def test_apply_gradients_accepts_arrays_and_tensors_and_warns_on_missing():
    a, b = shendu.Parameter(np.zeros(2)), shendu.Parameter(np.zeros(2))
    opt = SGD(1.0)
    opt.apply_gradients([(shendu.tensor(np.ones(2)), a), (np.full(2, 2.0), b)])
    np.testing.assert_array_equal(a.data, [-1.0, -1.0])
    np.testing.assert_array_equal(b.data, [-2.0, -2.0])
    with pytest.warns(UserWarning, match="do not exist"):
        opt.apply_gradients([(None, a), ([1.0, 1.0], b)])
    with pytest.raises(ValueError, match="No gradients"):
        opt.apply_gradients([(None, a)])
    with pytest.raises(ValueError, match=r"shape \(3,\), expected.*\(2,\)"):
        opt.apply_gradients([(np.ones(3), a)])
    assert opt.iterations == 2


def test_float32_parameters_stay_float32_with_float64_gradients():
    w = shendu.Parameter(np.ones(3, dtype=np.float32))
    opt = Nadam(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.apply_gradients([(np.ones(3, dtype=np.float64), w)])
    assert w.dtype == np.float32 and opt.state[w]["velocity"].dtype == np.float32


# --------------------------------------------------------------------- configs, get, serialize
ALL_OPTIMIZERS = [GD, SGD, Adam, AdamW, Adamax, Nadam, RMSprop, Adagrad, Adadelta, Lion]


@pytest.mark.parametrize("cls", ALL_OPTIMIZERS, ids=lambda c: c.__name__)
def test_config_round_trip(cls):
    opt = cls(learning_rate=schedules.CosineDecay(0.1, 100, warmup_target=0.2, warmup_steps=10),
              clipnorm=2.0, name="mine")
    clone = cls.from_config(opt.get_config())
    assert clone.get_config() == opt.get_config()
    assert clone.name == "mine" and clone.clipnorm == 2.0
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert type(again) is cls and again.get_config() == opt.get_config()


def test_get_resolves_names_classes_dicts_and_instances():
    assert type(optimizers.get("adam")) is Adam
    assert type(optimizers.get("RMSprop")) is RMSprop
    assert type(optimizers.get(SGD)) is SGD
    opt = Lion()
    assert optimizers.get(opt) is opt
    assert optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.5}}).learning_rate == 0.5
    assert optimizers.get(None) is None
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        optimizers.get("adamm")
    with pytest.raises(ValueError, match="Could not interpret"):
        optimizers.get(3)


def test_keras_3_config_loads():
    keras_config = {"name": "adam", "learning_rate": 0.002, "weight_decay": None, "clipnorm": None,
                    "global_clipnorm": None, "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
                    "ema_overwrite_frequency": None, "loss_scale_factor": None,
                    "gradient_accumulation_steps": None, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
                    "amsgrad": False}
    opt = Adam.from_config(keras_config)
    assert opt.learning_rate == 0.002
    with pytest.raises(ValueError, match="use_ema"):
        Adam.from_config({**keras_config, "use_ema": True})


# --------------------------------------------------------------------- state_dict: exact resume
STATEFUL_CASES = {
    "sgd-nesterov": lambda: SGD(0.05, momentum=0.9, nesterov=True),
    "adam-amsgrad": lambda: Adam(0.01, amsgrad=True),
    "adamw": lambda: AdamW(0.01, weight_decay=0.05),
    "adamax": lambda: Adamax(0.01),
    "nadam": lambda: Nadam(0.01),
    "rmsprop-centered-momentum": lambda: RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: Adagrad(0.1),
    "adadelta": lambda: Adadelta(1.0),
    "lion": lambda: Lion(0.01),
    "sgd-schedule": lambda: SGD(schedules.ExponentialDecay(0.1, 3, 0.5), momentum=0.9),
}


@pytest.mark.parametrize("make", STATEFUL_CASES.values(), ids=STATEFUL_CASES.keys())
def test_state_dict_round_trip_continues_identically(make):
    init, grads = _problem(seed=5)
    params = [shendu.Parameter(w.astype(np.float32)) for w in init]
    opt = make()
    for step_grads in grads[:10]:
        opt.apply_gradients(zip(step_grads, params))
    saved_weights = [p.data.copy() for p in params]
    saved = opt.state_dict()
    assert saved["iterations"] == 10 and len(saved["state"]) == len(params)
    assert all(isinstance(a, np.ndarray) for s in saved["state"] for a in s.values())
    for step_grads in grads[10:]:
        opt.apply_gradients(zip(step_grads, params))
    expected = [p.data.copy() for p in params]

    # a fresh optimiser: attach first (PyTorch style) ...
    resumed = [shendu.Parameter(w) for w in saved_weights]
    fresh = make()
    fresh.add_params(resumed)
    fresh.load_state_dict(saved)
    # ... or load first and attach later (Keras style: compile, load, then fit attaches the weights)
    late = [shendu.Parameter(w.copy()) for w in saved_weights]
    deferred = make()
    deferred.load_state_dict(saved)
    for step_grads in grads[10:]:
        fresh.apply_gradients(zip(step_grads, resumed))
        deferred.apply_gradients(zip(step_grads, late))
    for e, r, d in zip(expected, resumed, late):
        np.testing.assert_array_equal(r.data, e)
        np.testing.assert_array_equal(d.data, e)
    assert fresh.iterations == deferred.iterations == len(grads)


def test_state_dict_is_a_snapshot_and_mismatches_are_reported():
    w = shendu.Parameter(np.zeros(2))
    opt = SGD(0.1, momentum=0.9, params=[w])
    w.grad = shendu.tensor(np.ones(2))
    opt.step()
    saved = opt.state_dict()
    opt.step()
    np.testing.assert_allclose(saved["state"][0]["momentum"], [-0.1, -0.1])  # not changed by later steps
    two = SGD(0.1, momentum=0.9, params=[shendu.Parameter(np.zeros(2)), shendu.Parameter(np.zeros(2))])
    with pytest.raises(ValueError, match="1 parameters"):
        two.load_state_dict(saved)
    with pytest.raises(ValueError, match="another optimiser class"):
        Adam(params=[shendu.Parameter(np.zeros(2))]).load_state_dict(saved)
    wrong_shape = SGD(0.1, momentum=0.9, params=[shendu.Parameter(np.zeros(3))])
    with pytest.raises(ValueError, match="shape"):
        wrong_shape.load_state_dict(saved)


def test_subclass_needs_only_init_state_and_update():
    class SignSGD(Optimizer):
        """w = w - lr * sign(g)"""

        def update(self, param, grad, state, lr):
            param.data -= lr * np.sign(grad)

    w = shendu.Parameter(np.array([1.0, -1.0]))
    opt = SignSGD(0.5, params=[w])
    w.grad = shendu.tensor(np.array([10.0, -0.1]))
    opt.step()
    np.testing.assert_array_equal(w.data, [0.5, -0.5])
    assert opt.get_config()["learning_rate"] == 0.5 and opt.name == "sign_sgd"


def test_build_then_apply_with_gradients_only():
    params = [shendu.Parameter(np.zeros(2)), shendu.Parameter(np.zeros(3))]
    opt = SGD(0.5)
    opt.build(params)  # Keras: optimizer.build(model.trainable_variables)
    opt.apply([np.ones(2), shendu.tensor(np.full(3, 2.0))])
    np.testing.assert_array_equal(params[0].data, [-0.5, -0.5])
    np.testing.assert_array_equal(params[1].data, [-1.0, -1.0, -1.0])
    with pytest.raises(ValueError, match="1 gradients for 2 parameters"):
        opt.apply([np.ones(2)])


# --------------------------------------------------------------------- Keras 3 itself (when installed)
def _import_keras_on_torch():
    """Keras on its PyTorch backend. Importing it takes 5-20 s, so this runs when another test module has
    already imported it (tests/test_keras_parity.py) or when SHENDU_KERAS_TESTS=1."""
    if "keras" not in sys.modules and os.environ.get("SHENDU_KERAS_TESTS") != "1":
        pytest.skip("Keras not imported yet; set SHENDU_KERAS_TESTS=1 to compare with Keras 3 itself")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras runs on another backend here")
    return keras


KERAS_CASES = [
    ("SGD", {"momentum": 0.9, "nesterov": True}), ("SGD", {"momentum": 0.5, "weight_decay": 0.1}),
    ("Adam", {"amsgrad": True, "epsilon": 1e-3}), ("AdamW", {"weight_decay": 0.1}), ("Adamax", {"epsilon": 1e-2}),
    ("Nadam", {"epsilon": 1e-2}), ("RMSprop", {"momentum": 0.8, "centered": True, "epsilon": 1e-2}),
    ("Adagrad", {"epsilon": 1e-2}), ("Adadelta", {"learning_rate": 1.0, "epsilon": 1e-3}), ("Lion", {}),
    ("SGD", {"clipnorm": 1.0}), ("SGD", {"global_clipnorm": 1.0}), ("SGD", {"clipvalue": 0.5}),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_matches_keras_3_itself():
    keras = _import_keras_on_torch()
    torch = pytest.importorskip("torch")
    init, grads = _problem(seed=6)
    for name, kwargs in KERAS_CASES:
        variables = [keras.Variable(w.copy(), dtype="float64") for w in init]
        keras_opt = getattr(keras.optimizers, name)(**kwargs)
        for step_grads in grads:
            keras_opt.apply_gradients(zip([torch.tensor(g) for g in step_grads], variables))
        actual, _ = _run_shendu(lambda p, n=name, k=kwargs: getattr(optimizers, n)(**k), init, grads, style="keras")
        _assert_close(actual, [np.asarray(v.numpy()) for v in variables])
        keras_config = keras_opt.get_config()
        assert getattr(optimizers, name).from_config(keras_config).get_config().items() <= keras_config.items()


# --------------------------------------------------------------------- the registry: no silent replacement
def test_a_user_optimizer_named_like_a_builtin_does_not_replace_it():
    class Adam(Optimizer):  # a user's class that happens to share a built-in's name
        """w = w - lr * g"""

        def update(self, param, grad, state, lr):
            param.data -= lr * grad

    assert type(optimizers.get("adam")) is optimizers.Adam
    assert type(optimizers.deserialize({"class_name": "Adam", "config": {}})) is optimizers.Adam
    mine = Adam(0.5)
    config = optimizers.serialize(mine)
    assert config["module"] == __name__  # the defining module: loading finds this exact class again
    assert type(optimizers.deserialize(config)) is Adam
    assert type(optimizers.deserialize(optimizers.serialize(optimizers.Adam()))) is optimizers.Adam
    assert type(optimizers.deserialize(config, custom_objects={"Adam": optimizers.SGD})) is optimizers.SGD


def test_user_optimizers_resolve_by_name_unless_ambiguous():
    def make(doc):
        class Twin(Optimizer):
            def update(self, param, grad, state, lr):
                param.data -= lr * grad

        Twin.__doc__ = doc
        return Twin

    first = make("one")
    assert type(optimizers.get("twin")) is first
    second = make("two")  # the same qualified name again (as a re-run notebook cell)
    assert type(optimizers.get("twin")) is second  # the same qualified name defined again replaces itself
    third = type("Twin", (Optimizer,), {"__module__": "elsewhere", "update": first.update})
    with pytest.raises(ValueError, match=r"'twin' is ambiguous.*elsewhere\.Twin"):
        optimizers.get("twin")
    assert type(optimizers.deserialize({"module": "elsewhere", "class_name": "Twin", "config": {}})) is third
    with pytest.raises(ValueError, match=r"saved from module 'nowhere'.*import nowhere"):
        optimizers.deserialize({"module": "nowhere", "class_name": "Twin", "config": {}})
