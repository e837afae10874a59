"""Models: ``Sequential``, functional ``Model(inputs, outputs)`` and subclassed ``Model``, with Keras's
``compile``/``fit``/``evaluate``/``predict``."""

from __future__ import annotations

import os
from typing import Any

from shendu import saving
from shendu.callbacks import History
from shendu.models.cloning import clone_model
from shendu.models.model import Model
from shendu.models.sequential import Sequential
from shendu.saving import model_from_json

__all__ = ["Model", "Sequential", "clone_model", "load_model", "model_from_json"]


def load_model(filepath: str | os.PathLike, compile: bool = True,  # noqa: A002 (Keras's name)
               custom_objects: dict[str, type] | None = None, data_loader: Any = None,
               max_bytes: int | None = None) -> Model:
    """:func:`shendu.saving.load_model`, and ``model.history`` restored as a :class:`~shendu.callbacks.History`
    (``shendu.saving`` ranks below ``shendu.callbacks``, so the History is rebuilt here)."""
    model, training = saving.load_model_and_training_state(filepath, compile, custom_objects, data_loader,
                                                           max_bytes)
    if training:
        history = History()
        saved = training.get("history", {})
        history.history = dict(saved.get("history", {}))
        history.epoch = list(saved.get("epoch", []))
        history.set_model(model)
        model.history = history
    return model
