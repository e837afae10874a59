"""The fused optimiser kernels (shendu.kernels.optim) against the NumPy references in shendu.optimizers.

Each case runs the same optimiser twice over the same gradients, once with the kernels and once inside
``kernels.disabled()``, and compares weights and state after every step: the kernel applies the reference's
operations in the same order and dtype, so the two agree to float rounding (in practice bit for bit).
Sizes cover 0-d, small (serial kernel) and large (parallel kernel) parameters, float32 and float64;
non-contiguous and mixed-dtype arrays must take the reference. Under ``SHENDU_JIT=0`` both runs are the
reference and the comparisons hold trivially.
"""

import numpy as np
import pytest

import shendu
from shendu import kernels
from shendu.kernels import optim
from shendu.optimizers import GD, SGD, Adam, AdamW, RMSprop, schedules

SHAPES = [(), (7,), (3, 5), (optim.PARALLEL_MIN + 3,)]
STEPS = 4

CASES = {
    "adam": lambda: Adam(0.01),
    "adam-amsgrad": lambda: Adam(0.01, beta_1=0.8, beta_2=0.99, amsgrad=True),
    "adam-eps0": lambda: Adam(0.01, epsilon=0.0),
    "adamw": lambda: AdamW(0.01, weight_decay=0.1),
    "adam-clipnorm-schedule": lambda: Adam(schedules.ExponentialDecay(0.01, 2, 0.5), clipnorm=0.5),
    "gd-decay": lambda: GD(0.1, weight_decay=0.05),
    "sgd-clipvalue": lambda: SGD(0.1, clipvalue=0.3),
    "sgd-momentum": lambda: SGD(0.05, momentum=0.9),
    "sgd-nesterov-decay": lambda: SGD(0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "rmsprop": lambda: RMSprop(0.01),
    "rmsprop-centered": lambda: RMSprop(0.01, centered=True),
    "rmsprop-momentum-decay": lambda: RMSprop(0.01, momentum=0.7, global_clipnorm=1.0, weight_decay=0.1),
    "rmsprop-centered-momentum": lambda: RMSprop(0.01, rho=0.8, momentum=0.5, centered=True, epsilon=0.0),
}

TOL = {np.float32: 1e-6, np.float64: 1e-14}


def _gradients(dtype, shapes, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]


def _run(make, init, grads, jit):
    """Weights and optimiser state after each step (PyTorch-style steps)."""
    params = [shendu.Parameter(w.copy()) for w in init]
    opt = make()
    opt.add_params(params)
    history = []
    for step_grads in grads:
        _step(opt, params, step_grads, jit)
        history.append(([p.data.copy() for p in params], opt.state_dict()["state"]))
    return history, params, opt


def _step(opt, params, grads, jit):
    for p, g in zip(params, grads):
        p.grad = shendu.tensor(g)
    if jit:
        opt.step()
    else:
        with kernels.disabled():
            opt.step()


def _assert_same(fast_history, ref_history, dtype):
    for (w_fast, s_fast), (w_ref, s_ref) in zip(fast_history, ref_history):
        for a, b in zip(w_fast, w_ref):
            assert a.dtype == b.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=0)
        for slot_fast, slot_ref in zip(s_fast, s_ref):
            assert slot_fast.keys() == slot_ref.keys()
            for key in slot_fast:
                assert slot_fast[key].dtype == dtype
                np.testing.assert_allclose(slot_fast[key], slot_ref[key], rtol=TOL[dtype], atol=0, err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", CASES)
def test_kernel_matches_numpy_reference(name, dtype):
    init = [0.5 * g for g in _gradients(dtype, SHAPES, steps=1, seed=1)[0]]
    grads = _gradients(dtype, SHAPES)
    fast, _, _ = _run(CASES[name], init, grads, jit=True)
    ref, _, _ = _run(CASES[name], init, grads, jit=False)
    _assert_same(fast, ref, dtype)


def test_kernel_path_is_taken_for_contiguous_float_arrays(monkeypatch):
    calls = []
    real = optim.adam
    monkeypatch.setattr(optim, "adam", lambda *a: calls.append(a[0].shape) or real(*a))
    w = shendu.Parameter(np.ones((3, 4), np.float32))
    opt = Adam(0.1, params=[w])
    w.grad = shendu.tensor(np.ones((3, 4), np.float32))
    opt.step()
    assert calls == ([(3, 4)] if kernels.available() else [])
    with kernels.disabled():
        opt.step()
    assert len(calls) == (1 if kernels.available() else 0)


def test_f_ordered_initial_values_are_stored_c_ordered_and_take_the_kernel_path(monkeypatch):
    """An LSTM's recurrent kernel (Orthogonal: LAPACK's q is F-ordered) used to keep that layout, and with it
    every Adam step of it ran the reference's dozen NumPy passes."""
    calls = []
    real = optim.adam
    monkeypatch.setattr(optim, "adam", lambda *a: calls.append(a[0].shape) or real(*a))
    assert shendu.initializers.Orthogonal(seed=1)((8, 32)).flags.c_contiguous
    values = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    w = shendu.Parameter(values)
    assert w.data.flags.c_contiguous and np.array_equal(w.data, values)
    layer = shendu.layers.LSTM(8)
    layer.build((None, 5, 4))
    assert all(v.data.flags.c_contiguous for v in layer.weights)
    opt = Adam(0.1, params=[w])
    w.grad = shendu.tensor(np.ones((3, 4), np.float32))
    opt.step()
    assert calls == ([(3, 4)] if kernels.available() else [])


@pytest.mark.parametrize("name", ["adam-amsgrad", "sgd-nesterov-decay", "rmsprop-centered-momentum"])
def test_non_contiguous_and_mixed_dtype_arrays_take_the_reference(name):
    rng = np.random.default_rng(2)
    w64 = rng.standard_normal((6, 5))
    layouts = [np.asfortranarray(w64.astype(np.float32)), w64.astype(np.float32)]
    grads = [[np.asfortranarray(g) for g in step] for step in _gradients(np.float32, [(6, 5), (6, 5)])]
    grads = [[step[0], step[1][::-1]] for step in grads]  # F-ordered, and a reversed (negative-stride) view
    assert not optim.ready(layouts[0], grads[0][0])
    assert not optim.ready(layouts[1], grads[0][1])
    assert not optim.ready(layouts[1], layouts[1].astype(np.float64))
    fast, _, _ = _run(CASES[name], layouts, grads, jit=True)
    ref, _, _ = _run(CASES[name], layouts, grads, jit=False)
    _assert_same(fast, ref, np.float32)


def test_read_only_weights_raise_numpys_error_and_read_only_gradients_are_fine():
    w = shendu.Parameter(np.ones(3, np.float32))
    frozen = np.ones(3, np.float32)
    frozen.flags.writeable = False
    w.data = frozen
    opt = Adam(0.1, params=[w])
    w.grad = shendu.tensor(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="read-only"):
        opt.step()
    grad = np.full(3, 0.5, np.float32)
    grad.flags.writeable = False
    results = []
    for jit in (True, False):
        w = shendu.Parameter(np.ones(3, np.float32))
        opt = Adam(0.1)
        if jit:
            opt.apply_gradients([(grad, w)])  # the array itself reaches the kernel
        else:
            with kernels.disabled():
                opt.apply_gradients([(grad, w)])
        results.append(w.data)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["adam-eps0", "adam-amsgrad", "rmsprop-centered-momentum", "sgd-momentum"])
def test_zero_nan_and_inf_gradients_behave_as_numpy(name):
    """A zero gradient with epsilon 0 divides 0 by 0 (NaN, not ZeroDivisionError); NaN and inf propagate as in
    NumPy (np.maximum keeps NaN for amsgrad)."""
    init = [np.array([1.0, 2.0, 3.0, 4.0], np.float32)]
    grads = [[np.array([0.0, np.nan, np.inf, -1.0], np.float32)], [np.array([0.0, 1.0, -np.inf, 2.0], np.float32)]]
    with np.errstate(all="ignore"):
        fast, _, _ = _run(CASES[name], init, grads, jit=True)
        ref, _, _ = _run(CASES[name], init, grads, jit=False)
    for (w_fast, s_fast), (w_ref, s_ref) in zip(fast, ref):
        np.testing.assert_array_equal(w_fast[0], w_ref[0])
        for key in s_fast[0]:
            np.testing.assert_array_equal(s_fast[0][key], s_ref[0][key])


def test_python_int_hyper_parameters_round_like_numpy():
    init = [np.linspace(-1, 1, 9, dtype=np.float32)]
    grads = _gradients(np.float32, [(9,)])
    for make in (lambda: SGD(1, momentum=1), lambda: RMSprop(1, rho=0, momentum=1), lambda: Adam(1, beta_1=0)):
        fast, _, _ = _run(make, init, grads, jit=True)
        ref, _, _ = _run(make, init, grads, jit=False)
        _assert_same(fast, ref, np.float32)


@pytest.mark.parametrize("name", ["adam-amsgrad", "rmsprop-centered-momentum", "sgd-nesterov-decay"])
def test_state_saved_from_the_kernel_resumes_on_the_reference_and_back(name):
    """state_dict holds the same per-parameter arrays on both paths, so a run may resume on either."""
    shapes = [(4, 3), (3,)]
    init = [0.1 * g for g in _gradients(np.float32, shapes, steps=1, seed=3)[0]]
    grads = _gradients(np.float32, shapes, steps=6)
    full, _, _ = _run(CASES[name], init, grads, jit=True)
    _, params, opt = _run(CASES[name], init, grads[:3], jit=True)
    for jit in (False, True):
        resumed = [shendu.Parameter(p.data.copy()) for p in params]
        again = CASES[name]()
        again.add_params(resumed)
        again.load_state_dict(opt.state_dict())
        for step_grads in grads[3:]:
            _step(again, resumed, step_grads, jit)
        for a, b in zip(resumed, full[-1][0]):
            np.testing.assert_allclose(a.data, b, rtol=1e-6, atol=0)


def test_training_a_small_model_gives_the_same_result_with_and_without_kernels():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = (x[:, :1] - 2 * x[:, 1:2] > 0).astype(np.float32)

    def train():
        shendu.seed(0)
        model = shendu.Sequential([shendu.layers.Dense(16, activation="relu"), shendu.layers.Dense(1)])
        model.compile(optimizer=Adam(0.01, amsgrad=True), loss="mse")
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False)
        return history.history["loss"], model.get_weights()

    loss_fast, weights_fast = train()
    with kernels.disabled():
        loss_ref, weights_ref = train()
    np.testing.assert_allclose(loss_fast, loss_ref, rtol=1e-5)
    for a, b in zip(weights_fast, weights_ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_weight_decay_exclusions_and_an_update_without_decay_argument():
    """The fused decay honours exclude_from_weight_decay; a subclass whose update has the plain signature
    gets the base class's separate decay pass, as before."""

    class PlainAdam(Adam):
        def update(self, param, grad, state, lr):
            super().update(param, grad, state, lr)

    assert AdamW._update_decays and not PlainAdam._update_decays
    init = [np.full((3, 2), 0.5, np.float32), np.full(2, 0.5, np.float32)]
    grads = _gradients(np.float32, [(3, 2), (2,)])

    def train(make, jit):
        params = [shendu.Parameter(w.copy(), name=n) for w, n in zip(init, ["kernel", "bias"])]
        opt = make()
        opt.add_params(params)
        opt.exclude_from_weight_decay(var_names=["bias"])
        for step_grads in grads:
            _step(opt, params, step_grads, jit)
        return [p.data for p in params]

    plain = train(lambda: PlainAdam(0.01, weight_decay=0.2), True)
    fused = train(lambda: AdamW(0.01, weight_decay=0.2), True)
    reference = train(lambda: AdamW(0.01, weight_decay=0.2), False)
    no_decay = train(lambda: Adam(0.01), False)
    for a, b, c in zip(plain, fused, reference):
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=0)
        np.testing.assert_allclose(b, c, rtol=1e-6, atol=0)
    np.testing.assert_allclose(fused[1], no_decay[1], rtol=1e-6, atol=0)  # the bias is excluded
    assert np.all(np.abs(fused[0]) < np.abs(no_decay[0]))  # the kernel is decayed
