"""Models: ``Sequential``, functional ``Model(inputs, outputs)`` and subclassed ``Model``, with Keras's
``compile``/``fit``/``evaluate``/``predict``."""

from shendu.models.model import Model
from shendu.models.sequential import Sequential
from shendu.saving import load_model

__all__ = ["Model", "Sequential", "load_model"]
