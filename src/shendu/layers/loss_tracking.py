"""Losses a layer contributes beyond the compiled loss: weight penalties, activity penalties and ``add_loss``.

``layer.losses`` is the one way to collect them, for a layer and everything below it:

* the penalty ``regularizer(w)`` of every trainable weight that has one (recomputed at each read, so it
  follows the current weights);
* the losses added during the latest forward pass of the current thread: ``add_loss(t)`` inside ``call``,
  and ``activity_regularizer(y) / batch size`` of each output of a layer that has an activity regulariser.

Reading ``losses`` is cheap enough to do every training step: the regularised weights and the layers below
are found once and kept until the layer tree changes (see :func:`shendu.layers.tracking.structure_version`:
assigning attributes, ``add_weight`` and ``trainable`` count; setting ``.trainable`` or ``.regularizer`` on
a single Parameter afterwards does not). Losses added in one thread are not seen by ``losses`` read in another.
"""

from __future__ import annotations

from typing import Any

from shendu.autograd.tensor import Tensor
from shendu.layers.context import _CONTEXT
from shendu.layers.tracking import Trackable, structure_version
from shendu.utils.tree import flatten


class LossesMixin(Trackable):
    """The loss-related part of ``Layer`` (see the module docstring)."""

    activity_regularizer: Any = None
    _call_losses: list[Any] = []  # replaced per instance at the first add_loss
    _call_losses_id = -1  # the top-level call the losses in _call_losses belong to

    def add_loss(self, loss: Any) -> None:
        """Add a scalar Tensor to ``losses`` for the current forward pass (activity regularisation, ...)."""
        call_id = _CONTEXT.call_id
        if self._call_losses_id != call_id:
            object.__setattr__(self, "_call_losses", [])
            object.__setattr__(self, "_call_losses_id", call_id)
        self._call_losses.append(loss)

    @property
    def losses(self) -> list[Any]:
        """Weight penalties (recomputed now), then the losses added during the latest forward pass, of this
        layer and all sublayers."""
        regularized, layers = self._loss_sources()
        out = [p.regularizer(p) for p in regularized]
        call_id = _CONTEXT.call_id
        for layer in layers:
            if layer._call_losses_id == call_id:
                out.extend(layer._call_losses)
        return out

    def _loss_sources(self) -> tuple[list[Any], list[Any]]:
        """(trainable weights with a regularizer, this layer and every sublayer), cached per tree version."""
        version = structure_version()
        cached = self.__dict__.get("_loss_sources_cache")
        if cached is None or cached[0] != version:
            seen: set[int] = set()
            regularized = []
            for p in self.trainable_weights:
                if p.regularizer is not None and id(p) not in seen:
                    seen.add(id(p))
                    regularized.append(p)
            cached = (version, regularized, self._all_layers())
            object.__setattr__(self, "_loss_sources_cache", cached)  # not tracked: it is a cache
        return cached[1], cached[2]

    def _add_activity_losses(self, outputs: Any) -> None:
        """activity_regularizer(y) / batch size for each output (Keras 3 divides by the batch size)."""
        for y in flatten(outputs):
            if isinstance(y, Tensor):
                loss = self.activity_regularizer(y)
                self.add_loss(loss * (1.0 / y.shape[0]) if y.ndim and y.shape[0] else loss)
