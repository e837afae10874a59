"""The fused optimiser kernels (shendu.kernels.optim) against the NumPy references in shendu.optimizers.

Each case runs the same optimiser twice over the same gradients, once with the kernels and once inside
``kernels.disabled()``, and compares weights and state after every step: the kernel applies the reference's
operations in the same order and dtype, so the two agree to float rounding (in practice bit for bit). The
kernel run takes either path: "all" (one call for every parameter through an ``optim.Table``, what steps
use) or "each" (one call per parameter, what they fall back to).
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


def _run(make, init, grads, jit, path="all"):
    """Weights and optimiser state after each step (PyTorch-style steps); ``path="each"`` turns the
    all-parameters kernel off for this optimiser."""
    params = [shendu.Parameter(w.copy()) for w in init]
    opt = make()
    if path == "each":
        opt._fuses = False
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


@pytest.mark.parametrize("path", ["all", "each"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", CASES)
def test_kernel_matches_numpy_reference(name, dtype, path):
    init = [0.5 * g for g in _gradients(dtype, SHAPES, steps=1, seed=1)[0]]
    grads = _gradients(dtype, SHAPES)
    fast, _, _ = _run(CASES[name], init, grads, jit=True, path=path)
    ref, _, _ = _run(CASES[name], init, grads, jit=False)
    _assert_same(fast, ref, dtype)


def _count_calls(monkeypatch, name):
    """Record the shapes each call of ``optim.<name>`` updates (a Table's, or the one weight's)."""
    calls = []
    real = getattr(optim, name)

    def spy(*args):
        calls.append(tuple(args[0].shapes) if isinstance(args[0], optim.Table) else args[0].shape)
        return real(*args)

    monkeypatch.setattr(optim, name, spy)
    return calls


def test_kernel_path_is_taken_for_contiguous_float_arrays(monkeypatch):
    every, each = _count_calls(monkeypatch, "adam_all"), _count_calls(monkeypatch, "adam")
    w, b = shendu.Parameter(np.ones((3, 4), np.float32)), shendu.Parameter(np.ones(4, np.float32))
    opt = Adam(0.1, params=[w, b])
    w.grad, b.grad = shendu.tensor(np.ones((3, 4), np.float32)), shendu.tensor(np.ones(4, np.float32))
    opt.step()
    assert every == ([((3, 4), (4,))] if kernels.available() else []) and each == []
    with kernels.disabled():
        opt.step()
    opt._fuses = False
    opt.step()
    assert len(every) == len(each) // 2 == (1 if kernels.available() else 0)


def test_f_ordered_initial_values_are_stored_c_ordered_and_take_the_kernel_path(monkeypatch):
    """An LSTM's recurrent kernel (Orthogonal: LAPACK's q is F-ordered) used to keep that layout, and with it
    every Adam step of it ran the reference's dozen NumPy passes."""
    calls = _count_calls(monkeypatch, "adam_all")
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
    assert calls == ([((3, 4),)] if kernels.available() else [])


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


# ---------------------------------------------------------------- all parameters in one call (optim.Table)
needs_kernels = pytest.mark.skipif(not kernels.available(), reason="the Numba kernels are off")


def _steps_with_grads(opt, params, grads, jit=True):
    for step_grads in grads:
        _step(opt, params, step_grads, jit)
    return [p.data.copy() for p in params]


@needs_kernels
def test_table_is_built_once_and_rebuilt_when_an_array_is_replaced(monkeypatch):
    """The table keeps addresses: it must notice a weight or a state array that is no longer the one it
    holds (``p.data = ...``, ``load_state_dict``), or the kernel would update memory nobody reads."""
    builds = []
    real = optim.Table.build.__func__
    monkeypatch.setattr(optim.Table, "build", classmethod(lambda cls, *a: builds.append(1) or real(cls, *a)))
    shapes = [(5, 3), (3,)]
    init = [np.full(s, 0.5, np.float32) for s in shapes]
    grads = _gradients(np.float32, shapes, steps=6)
    ref_params = [shendu.Parameter(w.copy()) for w in init]
    ref = Adam(0.05, params=ref_params)
    params = [shendu.Parameter(w.copy()) for w in init]
    opt = Adam(0.05, params=params)

    _steps_with_grads(opt, params, grads[:2])
    _steps_with_grads(ref, ref_params, grads[:2], jit=False)
    assert len(builds) == 1
    params[0].data = params[0].data.copy()  # a new array, PyTorch style
    ref_params[0].data = ref_params[0].data.copy()
    _steps_with_grads(opt, params, grads[2:4])
    _steps_with_grads(ref, ref_params, grads[2:4], jit=False)
    assert len(builds) == 2
    opt.load_state_dict(opt.state_dict())  # fresh state arrays with the same values
    _steps_with_grads(opt, params, grads[4:])
    _steps_with_grads(ref, ref_params, grads[4:], jit=False)
    assert len(builds) == 3
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-6, atol=0)


@needs_kernels
def test_parameters_without_gradients_groups_and_exclusions_match_the_reference():
    """A step over a subset of the parameters (the others have no .grad), two groups with their own learning
    rate and weight decay, a parameter exempt from decay, and an empty parameter."""
    shapes = [(40, 30), (30,), (0,), (optim.CHUNK * 2 + 5,)]
    init = [0.3 * g for g in _gradients(np.float32, shapes, steps=1, seed=5)[0]]
    grads = _gradients(np.float32, shapes, steps=5, seed=6)
    results = []
    for jit in (True, False):
        params = [shendu.Parameter(w.copy(), name=n) for w, n in zip(init, ["kernel", "bias", "empty", "big"])]
        opt = SGD(params=[{"params": params[:2], "lr": 0.1, "weight_decay": 0.05},
                          {"params": params[2:], "lr": 0.02}], momentum=0.9, weight_decay=0.2)
        opt.exclude_from_weight_decay(var_names=["bias"])
        for i, step_grads in enumerate(grads):
            for p, g in zip(params, step_grads):
                p.grad = None if (i == 1 and p.name == "kernel") else shendu.tensor(g)
            if jit:
                opt.step()
                assert len(opt._table.shapes) == (3 if i == 1 else 4)  # the step's parameters, in one table
            else:
                with kernels.disabled():
                    opt.step()
        results.append([p.data for p in params])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)


def test_a_group_added_after_the_first_step_matches_the_reference():
    shapes = [(6, 4), (4,), (3,)]
    init = [0.2 * g for g in _gradients(np.float64, shapes, steps=1, seed=7)[0]]
    grads = _gradients(np.float64, shapes, steps=4, seed=8)
    results = []
    for jit in (True, False):
        params = [shendu.Parameter(w.copy()) for w in init]
        opt = RMSprop(0.01, momentum=0.3, params=params[:2])
        _steps_with_grads(opt, params[:2], [g[:2] for g in grads[:1]], jit)
        opt.add_param_group({"params": [params[2]], "lr": 0.1, "weight_decay": 0.5})
        _steps_with_grads(opt, params[:2], [g[:2] for g in grads[1:2]], jit)  # the new group has no gradient yet
        _steps_with_grads(opt, params, grads[2:], jit)
        results.append([p.data for p in params])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


@needs_kernels
def test_arrays_that_cannot_share_a_table_take_the_per_parameter_path():
    f32, f64 = np.ones((4, 3), np.float32), np.ones(3, np.float64)
    assert optim.Table.build([f32, f64], {"v": [None, None]}, [0, 0], 2) is None  # two dtypes
    base = np.zeros(10, np.float32)
    assert optim.Table.build([base[:6], base[4:]], {"v": [None, None]}, [0, 0], 2) is None  # overlapping
    assert optim.Table.build([base[:5], base[5:]], {"v": [None, None]}, [0, 0], 2) is not None
    assert optim.Table.build([f32], {"v": [np.asfortranarray(np.ones((4, 3), np.float32))]}, [0], 2) is None
    assert optim.Table.build([f32, f32.copy()], {"v": [None, np.ones((4, 3), np.float32)]}, [0, 0], 2) is None
    table = optim.Table.build([f32], {"v": [None]}, [0], 2)
    assert not table.load_gradients([np.ones((3, 4), np.float32)])  # same size, other shape
    assert not table.load_gradients([np.ones((4, 3), np.float64)])
    assert not table.load_gradients([np.ones((3, 4), np.float32).T])
    assert table.load_gradients([np.ones((4, 3), np.float32)])

    # two parameters viewing one buffer, updated through the optimiser: one after the other, as the reference
    results = []
    for jit in (True, False):
        buffer = np.linspace(-1, 1, 12).astype(np.float32)
        params = [shendu.Parameter(np.zeros(1, np.float32)), shendu.Parameter(np.zeros(1, np.float32))]
        params[0].data, params[1].data = buffer[:8], buffer[4:]
        opt = SGD(0.1, momentum=0.5, params=params)
        _steps_with_grads(opt, params, _gradients(np.float32, [(8,), (8,)], steps=3), jit)
        assert opt._table is None
        results.append(buffer)
    np.testing.assert_array_equal(*results)


def test_a_copied_table_is_none_and_a_subclass_overriding_update_alone_is_not_fused():
    import copy
    import pickle

    table = optim.Table.build([np.ones(3, np.float32)], {"v": [None]}, [0], 2)
    if kernels.available():
        assert copy.copy(table) is None and copy.deepcopy(table) is None
        assert pickle.loads(pickle.dumps(table)) is None

    class Clipped(SGD):
        def update(self, param, grad, state, lr, decay=1.0):
            super().update(param, grad.clip(-0.1, 0.1), state, lr, decay)

    class Faster(Adam):
        pass

    assert SGD._fuses and GD._fuses and Adam._fuses and AdamW._fuses and RMSprop._fuses and Faster._fuses
    assert not Clipped._fuses
    w = shendu.Parameter(np.zeros(2, np.float32))
    opt = Clipped(1.0, params=[w])
    w.grad = shendu.tensor(np.array([5.0, -5.0], np.float32))
    opt.step()
    np.testing.assert_allclose(w.data, [-0.1, 0.1], rtol=1e-6)


def test_a_subclass_with_a_state_of_its_own_is_not_fused():
    """A subclass that renames or extends the state its parent's kernel reads: the all-parameters kernel would
    read no velocity (a silent update without momentum) or fail to compile, so such a step takes the
    per-parameter path, which reports the missing key as the NumPy reference does."""
    class Renamed(SGD):  # a velocity under another name, and the inherited update
        def init_state(self, param):
            return {"velocity": np.zeros_like(param.data)}

    class Prefixed(Adam):
        def init_state(self, param):
            return {"my_" + k: v for k, v in super().init_state(param).items()}

    assert not Renamed._fuses and not Prefixed._fuses
    for make in (lambda p: Renamed(0.1, params=p, momentum=0.9), lambda p: Prefixed(0.1, params=p)):
        for jit in (True, False):
            w = shendu.Parameter(np.ones(3, np.float32))
            opt = make([w])
            with pytest.raises(KeyError):
                _step(opt, [w], [np.ones(3, np.float32)], jit)

    # a state with a key the kernel does not know (put there by hand): no table, the reference's result
    results = []
    for jit in (True, False):
        w = shendu.Parameter(np.ones(3, np.float32))
        opt = SGD(0.1, momentum=0.9, params=[w])
        opt.state[w]["extra"] = np.zeros(3, np.float32)
        _steps_with_grads(opt, [w], _gradients(np.float32, [(3,)], steps=2), jit)
        assert opt._table is None
        results.append(w.data.copy())
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("path", ["all", "each"])
def test_constraints_apply_after_the_update_on_both_paths(path):
    """A weight's constraint (Keras's kernel_constraint) is applied to the updated weight, and every updated
    weight's version moves on, whichever path updated it."""
    shapes = [(5, 4), (4,)]
    init = [np.full(s, 0.04, np.float32) for s in shapes]
    grads = _gradients(np.float32, shapes, steps=3, seed=9)
    results = []
    for jit in (True, False):
        params = [shendu.Parameter(w.copy()) for w in init]
        params[0].constraint = lambda w: np.clip(w.data, -0.05, 0.05)
        opt = SGD(0.5, momentum=0.5, params=params)
        if path == "each":
            opt._fuses = False
        versions = [p._version for p in params]
        results.append(_steps_with_grads(opt, params, grads, jit))
        assert [p._version for p in params] == [v + len(grads) for v in versions]
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert np.abs(results[0][0]).max() <= 0.05 and np.abs(results[0][1]).max() > 0.05  # only the constrained one
