"""no_grad / enable_grad / set_grad_enabled: context managers, decorators, thread-local."""

import threading

import pytest

import shendu


def test_no_grad_context_records_nothing_and_restores():
    w = shendu.ones(2, requires_grad=True)
    with shendu.no_grad():
        assert not shendu.is_grad_enabled()
        y = w * 2
    assert shendu.is_grad_enabled()
    assert not y.requires_grad and y.creator is None
    assert (w * 2).requires_grad


def test_enable_grad_inside_no_grad():
    w = shendu.ones(2, requires_grad=True)
    with shendu.no_grad():
        with shendu.enable_grad():
            assert (w * 2).requires_grad
        assert not (w * 2).requires_grad


def test_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with shendu.no_grad():
            raise ValueError("boom")
    assert shendu.is_grad_enabled()


@pytest.mark.parametrize("decorator", [shendu.no_grad, shendu.no_grad()], ids=["bare", "called"])
def test_no_grad_as_decorator(decorator):
    w = shendu.ones(2, requires_grad=True)

    @decorator
    def predict(x):
        """Doc kept."""
        return x * w

    assert not predict(shendu.ones(2)).requires_grad
    assert predict.__doc__ == "Doc kept."
    assert shendu.is_grad_enabled()


def test_enable_grad_as_decorator():
    w = shendu.ones(2, requires_grad=True)

    @shendu.enable_grad()
    def train_step():
        return w * 2

    with shendu.no_grad():
        assert train_step().requires_grad


def test_set_grad_enabled_function_context_and_decorator():
    shendu.set_grad_enabled(False)
    try:
        assert not shendu.is_grad_enabled()
    finally:
        shendu.set_grad_enabled(True)
    with shendu.set_grad_enabled(False):
        assert not shendu.is_grad_enabled()
    assert shendu.is_grad_enabled()

    @shendu.set_grad_enabled(False)
    def inference():
        return shendu.is_grad_enabled()

    assert shendu.is_grad_enabled()  # decorating does not change the mode
    assert inference() is False
    assert shendu.is_grad_enabled()


def test_grad_mode_is_thread_local():
    inside_no_grad = threading.Event()
    checked = threading.Event()
    seen = {}

    def worker():
        inside_no_grad.wait(5)
        seen["worker"] = shendu.is_grad_enabled()  # the main thread is in no_grad: must not leak here
        w = shendu.ones(2, requires_grad=True)
        seen["recorded"] = (w * 2).requires_grad
        with shendu.no_grad():
            seen["worker_no_grad"] = shendu.is_grad_enabled()
        checked.set()

    thread = threading.Thread(target=worker)
    thread.start()
    with shendu.no_grad():
        inside_no_grad.set()
        checked.wait(5)
        seen["main"] = shendu.is_grad_enabled()
    thread.join(5)
    assert seen == {"worker": True, "recorded": True, "worker_no_grad": False, "main": False}
    assert shendu.is_grad_enabled()


def test_decorated_function_is_thread_local_too():
    results = []

    @shendu.no_grad
    def in_no_grad():
        results.append(shendu.is_grad_enabled())

    threads = [threading.Thread(target=in_no_grad) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == [False, False, False]
    assert shendu.is_grad_enabled()
