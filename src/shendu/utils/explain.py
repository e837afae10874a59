"""Explain mode: what happens inside a model, layer by layer, in numbers a learner can check by hand.

* ``explain_step(model, x, y)`` runs ONE real training step (forward, loss, backward, optimiser update) and
  prints every number of it: each layer's input, weights, pre-activation ``z = xW + b`` and output, the
  loss, every gradient ``dL/dW``, and every weight before and after the update. It returns the same numbers
  in a dict, so a tutorial can compare them with a NumPy hand calculation.
* ``layer_stats(model, x, y)`` measures, on a small batch and without changing the model, per layer: the
  output shape and activation statistics, the fraction of dead ReLU units, the fraction of saturated
  sigmoid/tanh outputs, and the norm of the gradient of the loss with respect to the layer's weights.
  ``diagnose`` turns those numbers into warnings that name the layer (vanishing or exploding gradients,
  dead ReLUs, saturated activations); ``plot_explain`` draws them over training.
  The callback ``shendu.callbacks.Explain`` calls these once per epoch.

The functions work on any model object duck-typed: ``model.layers``, ``model.trainable_weights``,
``model.compute_loss`` and ``model.optimizer`` (Keras's public names). Per-layer activations need the
layers to run one after the other (a ``Sequential`` model: it has ``add`` and ``pop``); for other models the
statistics cover weights and gradients, and the activations of the model's output only.

Definitions (what the numbers mean):

* dead ReLU fraction: among the units of a ReLU layer (every output feature, batch axis excluded), the
  fraction that is ``<= 0`` for EVERY sample of the batch; such a unit passes no gradient and does not learn.
* saturated fraction: the fraction of outputs in the flat tails of the activation, where its derivative is
  below about 0.01: ``|tanh| > 0.99``, sigmoid ``< 0.01`` or ``> 0.99``.
* gradient norm: ``sqrt(sum of dL/dw**2)`` over the layer's trainable weights, the loss being the model's
  compiled loss (plus regularisation) on the batch, computed in inference mode (``training=False``: dropout
  off, no random numbers drawn, batch-norm statistics untouched), so measuring changes nothing.
* update/weight ratio (measured by the callback): ``||W_after - W_before|| / ||W_before||`` over one
  optimiser step; around 1e-3 is the usual healthy order, above 1e-1 the steps are too big, below 1e-6 the
  layer barely moves.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from shendu.autograd.tensor import Tensor
from shendu.utils.plotting import _figure, _save

RELU_NAMES = ("relu", "relu6", "ReLU")
_SATURATING = {"sigmoid": "sigmoid", "hard_sigmoid": "sigmoid", "tanh": "tanh"}

__all__ = ["activation_name", "diagnose", "explain_step", "format_stats", "layer_stats", "plot_explain"]


# ---------------------------------------------------------------------------- helpers
def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], Tensor):
        value = value[0].data  # a layer that returns several tensors (e.g. an RNN's states): the first
    get = getattr(value, "get", None)  # a CuPy array
    return np.asarray(get() if callable(get) and not isinstance(value, np.ndarray) else value)


def activation_name(layer: Any) -> str | None:
    """The name of a layer's activation: ``Dense(activation='relu')`` and ``Activation('relu')`` give 'relu',
    a ``ReLU`` layer 'relu'; None when the layer has no activation (or a linear one)."""
    if type(layer).__name__ in ("ReLU", "LeakyReLU", "ELU", "Softmax"):
        return type(layer).__name__.lower()
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", None) if fn is not None else None
    if isinstance(fn, str):
        name = fn
    return None if name in (None, "linear") else name


def _is_sequential(model: Any) -> bool:
    return callable(getattr(model, "add", None)) and callable(getattr(model, "pop", None))


def _ensure_built(model: Any, x: Any) -> None:
    if not getattr(model, "built", True):
        model(x[:1] if hasattr(x, "__getitem__") else x, training=False)


def _norm(arrays: list[np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays)) if arrays else 0.0


def _forward(model: Any, x: Any, training: bool) -> tuple[Any, list[Any] | None]:
    """The model's output and, for a Sequential model, every layer's output (None otherwise)."""
    if not _is_sequential(model):
        return model(x, training=training), None
    h, outputs = x, []
    for layer in model.layers:
        h = layer(h, training=training)
        outputs.append(h)
    return h, outputs


# ---------------------------------------------------------------------------- statistics
def layer_stats(model: Any, x: Any, y: Any = None) -> list[dict[str, Any]]:
    """Per-layer statistics on the batch ``(x, y)`` (see the module docstring); the model is left unchanged
    (weights, existing ``.grad`` values and random state). Without ``y`` only the activations are measured.

    Each entry: ``name``, ``class``, ``activation``, ``output_shape``, ``mean``, ``std``, ``dead_fraction``
    (ReLU layers, else None), ``saturated_fraction`` (sigmoid/tanh layers, else None), ``weight_norm`` and
    ``grad_norm`` (None for layers without trainable weights or without ``y``).
    """
    _ensure_built(model, x)
    params = list(model.trainable_weights)
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        y_pred, outputs = _forward(model, x, training=False)
        if y is not None and params:
            loss = model.compute_loss(x, y, y_pred, training=False)
            loss.backward()
        grads = {id(p): (_numpy(p.grad) if p.grad is not None else np.zeros(p.shape)) for p in params}
    finally:
        for p, g in zip(params, saved):
            p.grad = g
    layers = list(model.layers)
    if outputs is None:  # only the model's output is known: attach it to the last layer
        outputs = [None] * (len(layers) - 1) + [y_pred] if layers else []
    stats = []
    for layer, out in zip(layers, outputs):
        weights = list(getattr(layer, "trainable_weights", []))
        if out is None and not weights:
            continue  # e.g. a functional model's InputLayer: nothing measured
        act = activation_name(layer)
        entry: dict[str, Any] = {"name": layer.name, "class": type(layer).__name__, "activation": act,
                                 "output_shape": None, "mean": None, "std": None, "dead_fraction": None,
                                 "saturated_fraction": None, "weight_norm": None, "grad_norm": None}
        if out is not None:
            a = _numpy(out).astype(np.float64)
            entry.update(output_shape=tuple(a.shape), mean=float(a.mean()), std=float(a.std()))
            if act in ("relu", "relu6") and a.ndim >= 1 and a.shape[0]:
                entry["dead_fraction"] = float(np.all(a.reshape(a.shape[0], -1) <= 0, axis=0).mean())
            kind = _SATURATING.get(act or "")
            if kind == "sigmoid":
                entry["saturated_fraction"] = float(np.mean((a < 0.01) | (a > 0.99)))
            elif kind == "tanh":
                entry["saturated_fraction"] = float(np.mean(np.abs(a) > 0.99))
        if weights:
            entry["weight_norm"] = _norm([_numpy(w) for w in weights])
            if y is not None:
                entry["grad_norm"] = _norm([grads[id(w)] for w in weights])
        stats.append(entry)
    return stats


def diagnose(stats: list[dict[str, Any]], vanishing: float = 1e-7, relative_vanishing: float = 1e-4,
             exploding: float = 1e3, dead: float = 0.5, saturated: float = 0.5,
             update_ratios: dict[str, float] | None = None, large_update: float = 0.1) -> list[str]:
    """Warnings, each naming its layer, for the statistics of ``layer_stats``:

    * vanishing gradient: a layer's gradient norm below ``vanishing``, or below ``relative_vanishing`` times
      the largest layer's (the early layers of a deep sigmoid network are the classic case); when EVERY layer's
      gradient is below ``vanishing`` one warning names them all: the loss is flat where the model stands
      (typically a saturated output after a too-large step);
    * exploding gradient: a gradient norm above ``exploding``, or not finite;
    * dead ReLUs: more than ``dead`` of a ReLU layer's units never active on the batch;
    * saturated activations: more than ``saturated`` of a sigmoid/tanh layer's outputs in the flat tails;
    * a too large step: an update/weight ratio (from ``update_ratios``, by layer name) above ``large_update``.
    """
    warnings = []
    measured = [s for s in stats if s["grad_norm"] is not None]
    finite = [s for s in measured if math.isfinite(s["grad_norm"])]
    top = max(finite, key=lambda s: s["grad_norm"], default=None)
    largest = top["grad_norm"] if top is not None else 0.0
    flat = bool(measured) and len(finite) == len(measured) and largest < vanishing
    if flat:
        names = ", ".join(f"'{s['name']}'" for s in measured)
        warnings.append(f"layers {names}: no gradient reaches any layer (every norm < {vanishing:g}); the loss is "
                        "flat where the model stands, typically an output saturated at probabilities 0 and 1 "
                        "after a too-large step: lower the learning rate")
    for s in stats:
        name, g = s["name"], s["grad_norm"]
        if g is not None and not flat:
            if not math.isfinite(g) or g > exploding:
                warnings.append(f"layer '{name}': exploding gradient (norm {g:.3g} > {exploding:g}); lower the "
                                "learning rate, clip gradients (clipnorm=...) or normalise the inputs")
            elif g < vanishing or g < relative_vanishing * largest:
                warnings.append(f"layer '{name}': vanishing gradient (norm {g:.3g}, while layer '{top['name']}' "
                                f"has {largest:.3g}); look for saturated sigmoid/tanh or dead ReLU layers above it, "
                                "or try a better initialiser or normalisation")
        if s["dead_fraction"] is not None and s["dead_fraction"] > dead:
            warnings.append(f"layer '{name}': {s['dead_fraction']:.0%} of its ReLU units are dead (zero for every "
                            "sample); lower the learning rate or use leaky_relu")
        if s["saturated_fraction"] is not None and s["saturated_fraction"] > saturated:
            warnings.append(f"layer '{name}': {s['saturated_fraction']:.0%} of its {s['activation']} outputs are "
                            "saturated (derivative < 0.01); scale the inputs or use smaller initial weights")
        ratio = (update_ratios or {}).get(name)
        if ratio is not None and (not math.isfinite(ratio) or ratio > large_update):
            warnings.append(f"layer '{name}': one update changes its weights by {ratio:.3g} of their size "
                            f"(> {large_update:g}); the learning rate is probably too high")
    return warnings


def format_stats(stats: list[dict[str, Any]], update_ratios: dict[str, float] | None = None) -> str:
    """A table of ``layer_stats`` (and update/weight ratios by layer name), one line per layer."""
    def num(v: Any, fmt: str = ".3g") -> str:
        return "-" if v is None else format(v, fmt)

    def pct(v: Any) -> str:
        return "-" if v is None else f"{v:.0%}"

    width = max([len(s["name"]) for s in stats] + [5])
    head = (f"{'layer':<{width}}  {'output':<14} {'mean':>9} {'std':>9} {'dead':>5} {'sat':>5} "
            f"{'|grad|':>9} {'upd/w':>9}")
    lines = [head]
    for s in stats:
        shape = "-" if s["output_shape"] is None else "(" + ", ".join(map(str, s["output_shape"])) + ")"
        ratio = (update_ratios or {}).get(s["name"])
        lines.append(f"{s['name']:<{width}}  {shape:<14} {num(s['mean']):>9} {num(s['std']):>9} "
                     f"{pct(s['dead_fraction']):>5} {pct(s['saturated_fraction']):>5} {num(s['grad_norm']):>9} "
                     f"{num(ratio):>9}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- one step, number by number
def _attach_optimizer(model: Any) -> None:
    """Give the compiled optimiser the model's weights unless it already holds some of them (as fit does)."""
    opt = model.optimizer
    groups = getattr(opt, "param_groups", None) or []
    attached = {id(p) for g in groups for p in g.get("params", ())}
    mine = list(model.trainable_weights)
    if not any(id(p) in attached for p in mine):
        opt.add_params(mine)


def explain_step(model: Any, x: Any, y: Any, print_fn: Callable[[str], Any] | None = print,
                 precision: int = 4) -> dict[str, Any]:
    """Run one training step of a compiled model on ``(x, y)`` and print every number of it.

    Prints, in order: each layer's input, its weights, for a Dense-like layer (a ``kernel``, maybe a ``bias``)
    the pre-activation ``z = x @ W + b`` and the output ``f(z)``; the loss; every gradient ``dL/dw``; and each
    weight before and after the optimiser's update. The step is real (the model is trained by it, exactly as
    one step of ``fit`` on this batch). Meant for small models and batches: the numbers are printed in full.

    Returns ``{"layers": [{"name", "input", "z", "output"}, ...], "loss": float, "gradients": {weight name:
    array}, "before": {...}, "after": {...}}``; ``print_fn=None`` prints nothing.
    """
    if getattr(model, "optimizer", None) is None:
        raise RuntimeError("explain_step: compile the model first (model.compile(optimizer=..., loss=...))")
    say = print_fn if print_fn is not None else (lambda _text: None)

    def show(a: Any, indent: int = 16) -> str:
        text = np.array2string(np.asarray(a), precision=precision, suppress_small=True, max_line_width=100)
        return text.replace("\n", "\n" + " " * indent)

    x_arr = np.asarray(x)
    _ensure_built(model, x_arr)
    params = list(model.trainable_weights)
    before = {p.name: _numpy(p).copy() for p in params}
    say(f"explain_step: one training step of '{model.name}' on a batch of {x_arr.shape[0]} sample(s)")
    say("-- forward: each layer computes y = f(x @ W + b)")
    y_pred, outputs = _forward(model, x_arr, training=True)
    layers_info = []
    h = x_arr
    for i, layer in enumerate(model.layers if outputs is not None else []):
        out = _numpy(outputs[i])
        info: dict[str, Any] = {"name": layer.name, "input": np.asarray(h), "z": None, "output": out}
        act = activation_name(layer) or "linear"
        say(f"layer '{layer.name}' ({type(layer).__name__}, activation {act})")
        say(f"  {'x':<11} = {show(h)}")
        kernel = getattr(layer, "kernel", None)
        if isinstance(kernel, Tensor) and kernel.ndim == 2:
            bias = getattr(layer, "bias", None)
            w = _numpy(kernel)
            z = np.asarray(h, dtype=w.dtype).reshape(-1, w.shape[0]) @ w
            say(f"  {'W':<11} = {show(w)}")
            if isinstance(bias, Tensor):
                z = z + _numpy(bias)
                say(f"  {'b':<11} = {show(_numpy(bias))}")
            info["z"] = z.reshape(out.shape[:-1] + (w.shape[1],))
            say(f"  {'z = xW + b':<11} = {show(info['z'])}")
        say(f"  {'y = f(z)' if info['z'] is not None else 'y':<11} = {show(out)}")
        layers_info.append(info)
        h = out
    if outputs is None:
        say(f"  (not a Sequential model: only its output is shown)\n  {'y_pred':<11} = {show(_numpy(y_pred))}")
    loss = model.compute_loss(x_arr, y, y_pred, training=True)
    loss_value = float(_numpy(loss))
    say(f"-- loss: {loss_value:.{precision + 2}g}, comparing the prediction with")
    say(f"  {'y_true':<11} = {show(np.asarray(y))}")
    _attach_optimizer(model)
    for p in params:
        p.grad = None
    loss.backward()
    grads = {p.name: (_numpy(p.grad).copy() if p.grad is not None else np.zeros(p.shape)) for p in params}
    say("-- backward: the chain rule gives each gradient dL/dw")
    for name, g in grads.items():
        say(f"  dL/d {name} =\n    {show(g, 4)}")
    model.optimizer.step()
    model.optimizer.zero_grad()
    after = {p.name: _numpy(p).copy() for p in params}
    config = model.optimizer.get_config() if hasattr(model.optimizer, "get_config") else {}
    settings = ", ".join(f"{k}={v}" for k, v in config.items()
                         if k in ("learning_rate", "momentum", "nesterov", "beta_1", "beta_2", "rho"))
    say(f"-- update: {type(model.optimizer).__name__}({settings})")
    for name in before:
        say(f"  {name}\n    {'before':<6} = {show(before[name], 13)}\n    {'after':<6} = {show(after[name], 13)}"
            f"\n    {'change':<6} = {show(after[name] - before[name], 13)}")
    return {"layers": layers_info, "loss": loss_value, "gradients": grads, "before": before, "after": after}


# ---------------------------------------------------------------------------- pictures
def plot_explain(records: list[dict[str, Any]], path: str | os.PathLike | None = None,
                 title: str | None = None) -> Any:
    """Draw the explain statistics over training: one line per layer in four panels (gradient norm,
    update/weight ratio, activation spread, dead ReLU and saturated fractions). ``records`` is
    ``Explain.records``: per epoch ``{"epoch": int, "layers": layer_stats(...), "update_ratios": {...}}``.
    Saves to ``path`` when given; returns the Figure.
    """
    if not records:
        raise ValueError("plot_explain: no records; train with the Explain callback for at least one epoch")
    epochs = [r["epoch"] + 1 for r in records]
    names = [s["name"] for s in records[0]["layers"]]

    def series(name: str, key: str) -> list[float]:
        values = []
        for r in records:
            s = next((s for s in r["layers"] if s["name"] == name), None)
            v = (r.get("update_ratios") or {}).get(name) if key == "update_ratio" else (s or {}).get(key)
            values.append(np.nan if v is None else float(v))
        return values

    fig = _figure(10.0, 6.4)
    axes = fig.subplots(2, 2).ravel()
    panels = (("grad_norm", "gradient norm ||dL/dW||", True), ("update_ratio", "update / weight ratio", True),
              ("std", "activation std", False), ("fraction", "dead ReLU (solid) / saturated (dashed)", False))
    colors = [f"C{i % 10}" for i in range(len(names))]
    for ax, (key, label, log) in zip(axes, panels):
        drawn = False
        for name, color in zip(names, colors):
            if key == "fraction":
                for sub, style in (("dead_fraction", "-"), ("saturated_fraction", "--")):
                    values = series(name, sub)
                    if not all(np.isnan(values)):
                        ax.plot(epochs, values, style, color=color, label=f"{name} ({sub.split('_')[0]})")
                        drawn = True
                continue
            values = series(name, key)
            if all(np.isnan(values)):
                continue
            ax.plot(epochs, values, color=color, marker="o" if len(epochs) < 30 else None, markersize=3, label=name)
            drawn = True
        if log and drawn:
            ax.set_yscale("log")
        if key == "fraction":
            ax.set_ylim(-0.03, 1.03)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("fraction of units" if key == "fraction" else label)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize="small", loc="best")
        else:
            ax.text(0.5, 0.5, "no layer of this kind", ha="center", va="center", transform=ax.transAxes,
                    color="#777777")
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig
