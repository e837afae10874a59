"""``Callback``: hooks into ``fit``/``evaluate``/``predict``, with Keras's names and order, and ``CallbackList``.

Order of the hooks in ``fit``::

    on_train_begin
      on_epoch_begin(epoch)
        on_train_batch_begin(step) / on_train_batch_end(step, logs)   (per step)
        [validation: on_test_begin, on_test_batch_begin/end, on_test_end]
      on_epoch_end(epoch, logs)         logs: loss, metrics, val_loss, val_metrics
    on_train_end

``evaluate`` calls ``on_test_*`` and ``predict`` calls ``on_predict_*``. A callback sees ``self.model`` and
``self.params`` (``verbose``, ``epochs``, ``steps``) and can stop training with ``self.model.stop_training = True``.
:class:`~shendu.callbacks.callback_list.CallbackList` calls the hooks of several callbacks in order.
"""

from __future__ import annotations

from typing import Any


class Callback:
    """Base class: override the hooks you need (each one does nothing here)."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_test_begin(self, logs: dict | None = None) -> None: ...
    def on_test_end(self, logs: dict | None = None) -> None: ...
    def on_predict_begin(self, logs: dict | None = None) -> None: ...
    def on_predict_end(self, logs: dict | None = None) -> None: ...

    # Keras 2 names for the training-batch hooks; on_train_batch_* call them by default
    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
