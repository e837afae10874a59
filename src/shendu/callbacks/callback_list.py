"""``CallbackList``: the callbacks of one ``fit``/``evaluate``/``predict`` call, each hook called on each in
order. ``fit`` adds ``History`` (and ``ProgbarLogger`` when verbose). Every hook receives a dict of logs (``{}``
where there are none, as in Keras 3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shendu.callbacks.callback import Callback
from shendu.callbacks.history import History
from shendu.callbacks.progbar_logger import ProgbarLogger

_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end",
                "on_predict_batch_begin", "on_predict_batch_end")


def _overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` does something in ``hook`` (so per-batch calls can be skipped when nobody listens)."""
    if isinstance(callback, CallbackList):
        return callback.listens(hook)
    names = [hook] + ([hook.replace("train_", "")] if hook.startswith("on_train_batch") else [])  # on_batch_*
    return any(name in getattr(callback, "__dict__", {})  # a hook set on the instance (LambdaCallback)
               or getattr(type(callback), name) is not getattr(Callback, name) for name in names)


class CallbackList(Callback):
    """Calls every hook on each callback in order; ``fit`` adds ``History`` (and ``ProgbarLogger`` when verbose).

    Per-batch hooks are dispatched only to the callbacks that override them, and ``needs_batch_logs(mode)``
    tells the training loop whether it must compute running metrics after every step at all.
    """

    def __init__(self, callbacks: Iterable[Callback] | None = None, add_history: bool = False,
                 add_progbar: bool = False, model: Any = None, **params: Any) -> None:
        super().__init__()
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected shendu.callbacks.Callback instances, got {type(cb).__name__}; "
                                "subclass Callback or wrap functions in LambdaCallback")
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if add_history and self.history is None:
            self.history = History()
            self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.insert(0, ProgbarLogger())
        self._batch_listeners = {hook: [getattr(cb, hook) for cb in self.callbacks if _overrides(cb, hook)]
                                 for hook in _BATCH_HOOKS}
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)
        for hook in _BATCH_HOOKS:
            if _overrides(callback, hook):
                self._batch_listeners[hook].append(getattr(callback, hook))

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def listens(self, hook: str) -> bool:
        """Whether some callback does something in the per-batch ``hook`` (e.g. ``'on_train_batch_end'``): the
        loops skip calling a hook that nobody listens to."""
        listeners = self._batch_listeners.get(hook)
        if listeners is None:
            raise ValueError(f"CallbackList.listens: {hook!r} is not a per-batch hook; expected one of {_BATCH_HOOKS}")
        return bool(listeners)

    def needs_batch_logs(self, mode: str = "train") -> bool:
        """True when some callback listens to ``on_{mode}_batch_end`` (then the loop computes logs per step)."""
        return self.listens(f"on_{mode}_batch_end")

    def _call(self, hook: str, *args: Any, logs: dict | None = None) -> None:
        logs = {} if logs is None else logs  # Keras passes {} where there are no logs
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs)

    def _call_batch(self, hook: str, batch: int, logs: dict | None) -> None:
        logs = {} if logs is None else logs
        for fn in self._batch_listeners[hook]:
            fn(batch, logs)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._call("on_train_end", logs=logs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._call("on_epoch_end", epoch, logs=logs)

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs: dict | None = None) -> None:
        self._call("on_test_end", logs=logs)

    def on_predict_begin(self, logs: dict | None = None) -> None:
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs: dict | None = None) -> None:
        self._call("on_predict_end", logs=logs)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._call_batch("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._call_batch("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._call_batch("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._call_batch("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._call_batch("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._call_batch("on_predict_batch_end", batch, logs)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)
