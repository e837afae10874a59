"""Pictures of training: ``plot_history`` (learning curves), ``plot_model`` (the layers), ``graph_to_dot`` (autograd).

matplotlib is an optional extra (``pip install shendu[plot]``), imported only when a picture is drawn; the
figures are made without pyplot, so nothing opens a window and any backend works. ``plot_model`` and
``graph_to_dot`` write Graphviz DOT text; a ``.png``/``.svg``/``.pdf`` path is rendered by the ``dot`` program
when it is installed, and otherwise drawn by matplotlib with a simple layered layout.

>>> import shendu
>>> x = shendu.tensor([1.0, 2.0], requires_grad=True)
>>> print(graph_to_dot((x * x).sum()))  # doctest: +ELLIPSIS
digraph autograd {
...
}
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import numpy as np

from shendu.autograd.tensor import Parameter, Tensor

_VALIDATION = "val_"
_LR_KEYS = ("learning_rate", "lr")
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("shendu's plots need matplotlib: pip install 'shendu[plot]' (or pip install matplotlib)"
                          ) from None
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: str | os.PathLike | None, dpi: int = 120) -> None:
    if path is not None:
        directory = os.path.dirname(os.path.abspath(os.fspath(path)))
        os.makedirs(directory, exist_ok=True)
        fig.savefig(os.fspath(path), dpi=dpi)


# ---------------------------------------------------------------------------- learning curves
def _history_dict(history: Any) -> dict[str, list[float]]:
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(f"plot_history expects a History (what fit returns) or its .history dict, got "
                        f"{type(history).__name__}")
    return {k: [float(v) for v in values] for k, values in logs.items() if len(values)}


def plot_history(history: Any, path: str | os.PathLike | None = None, metrics: list[str] | None = None,
                 title: str | None = None) -> Any:
    """Draw the learning curves of ``fit``: one panel per quantity (loss first, then each metric), training
    as solid lines, validation (``val_*``) dashed with its best epoch marked; the learning rate, when
    recorded, on a second (log) axis of the loss panel. Saves to ``path`` when given; returns the Figure.

    ``history`` is what ``fit`` returns (or its ``.history`` dict); ``metrics`` picks the panels.
    """
    logs = _history_dict(history)
    if not logs:
        raise ValueError("plot_history: the history is empty; train for at least one epoch first")
    names = [k for k in logs if not k.startswith(_VALIDATION) and k not in _LR_KEYS]
    names += [k[len(_VALIDATION):] for k in logs if k.startswith(_VALIDATION) and k[len(_VALIDATION):] not in names]
    names = sorted(names, key=lambda k: k != "loss")  # stable: the loss first, the rest in recorded order
    if metrics is not None:
        unknown = [m for m in metrics if m not in names]
        if unknown:
            raise ValueError(f"plot_history: no {unknown} in the history; it has {names}")
        names = list(metrics)
    epochs_of = getattr(history, "epoch", None)
    fig = _figure(4.6 * len(names) + 0.6, 3.6)
    from matplotlib.ticker import MaxNLocator  # matplotlib is optional: imported once _figure found it

    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for key, style, label in ((name, "-", "training"), (_VALIDATION + name, "--", "validation")):
            values = logs.get(key)
            if not values:
                continue
            epochs = _epochs(values, epochs_of)
            color = _COLORS[0] if style == "-" else _COLORS[1]
            ax.plot(epochs, values, style, color=color, marker="o" if len(values) < 30 else None, markersize=3,
                    label=label)
            if style == "--":
                best = int(np.argmin(values) if "loss" in name or "error" in name else np.argmax(values))
                ax.plot(epochs[best], values[best], "*", color=color, markersize=11, label=f"best (epoch "
                        f"{epochs[best]})")
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2, 3 (not 1.0, 1.5, ...)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if name == "loss":
            more, more_labels = _plot_learning_rate(ax, logs, epochs_of)
            handles, labels = handles + more, labels + more_labels
        ax.legend(handles, labels, loc="best", fontsize="small")  # one legend: a second call would replace it
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def _epochs(values: list[float], epochs_of: Any) -> np.ndarray:
    """1-based epoch numbers of the last ``len(values)`` epochs (History.epoch when it covers them)."""
    if epochs_of and len(epochs_of) >= len(values):
        return np.asarray(epochs_of[-len(values):]) + 1
    return np.arange(1, len(values) + 1)


def _plot_learning_rate(ax: Any, logs: dict[str, list[float]], epochs_of: Any) -> tuple[list, list[str]]:
    """The learning rate on a second y axis of ``ax``; returns its legend handles and labels."""
    key = next((k for k in _LR_KEYS if k in logs), None)
    if key is None:
        return [], []
    values = logs[key]
    twin = ax.twinx()
    twin.plot(_epochs(values, epochs_of), values, ":", color=_COLORS[2], label="learning rate")
    twin.set_ylabel("learning rate", color=_COLORS[2])
    twin.tick_params(axis="y", colors=_COLORS[2])
    if min(values) > 0 and max(values) / min(values) > 10:
        twin.set_yscale("log")
    ax.set_zorder(twin.get_zorder() + 1)  # the loss curves and the legend above the learning-rate line
    ax.patch.set_visible(False)
    return twin.get_legend_handles_labels()


# ---------------------------------------------------------------------------- DOT and rendering
def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot(name: str, nodes: list[tuple[str, str, dict[str, str]]], edges: list[tuple[str, str]],
         rankdir: str = "TB") -> str:
    lines = [f"digraph {name} {{", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=11, style="rounded,filled", shape=box, fillcolor="#eef3fb"];']
    for node_id, label, attrs in nodes:
        extra = "".join(f", {k}={_quote(v)}" for k, v in attrs.items())
        lines.append(f"  {node_id} [label={_quote(label)}{extra}];")
    lines += [f"  {a} -> {b};" for a, b in edges]
    lines.append("}")
    return "\n".join(lines)


def _write_picture(dot_text: str, nodes: list, edges: list, path: str | os.PathLike, dpi: int) -> None:
    """``.dot``/``.gv``: the text; otherwise rendered by Graphviz's ``dot``, or drawn by matplotlib without it."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if extension in ("dot", "gv"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot_text + "\n")
        return
    program = shutil.which("dot")
    if program is not None:
        subprocess.run([program, f"-T{extension or 'png'}", f"-Gdpi={dpi}", "-o", path], input=dot_text.encode(),
                       check=True, capture_output=True, timeout=60)
        return
    _draw_layered(nodes, edges, path, dpi)


def _draw_layered(nodes: list[tuple[str, str, dict[str, str]]], edges: list[tuple[str, str]], path: str,
                  dpi: int) -> None:
    """A plain layered drawing (depth = longest path from a source), for machines without Graphviz."""
    ids = [n[0] for n in nodes]
    parents: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in edges:
        parents[b].append(a)
    depth: dict[str, int] = {}
    for node_id in ids:  # nodes are listed sources first (a topological order)
        depth[node_id] = 1 + max((depth.get(p, 0) for p in parents[node_id]), default=-1)
    for node_id in ids:  # sources (inputs, weights) sit just above their first consumer
        consumers = [depth[b] for a, b in edges if a == node_id]
        if not parents[node_id] and consumers:
            depth[node_id] = min(consumers) - 1
    if depth:
        low = min(depth.values())
        depth = {k: d - low for k, d in depth.items()}
    rows: dict[int, list[str]] = {}
    for node_id in ids:
        rows.setdefault(depth[node_id], []).append(node_id)
    levels = max(rows) + 1
    width = max(len(r) for r in rows.values())
    fig = _figure(max(4.0, 2.6 * width), max(2.0, 0.75 * levels + 0.5))
    ax = fig.add_subplot()
    ax.set_axis_off()
    position = {}
    for d, row in rows.items():
        for k, node_id in enumerate(row):
            position[node_id] = ((k + 0.5) / len(row), 1 - (d + 0.5) / levels)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    texts = {}
    for node_id, label, attrs in nodes:
        texts[node_id] = ax.text(*position[node_id], label, ha="center", va="center", fontsize=8, zorder=3,
                                 bbox={"boxstyle": "round,pad=0.4", "facecolor": attrs.get("fillcolor", "#eef3fb"),
                                       "edgecolor": "#5a6f8f"})
    fig.draw_without_rendering()  # lays the figure out, so the boxes have their final sizes
    to_data = ax.transData.inverted()
    boxes = {i: t.get_bbox_patch().get_window_extent().transformed(to_data).get_points() for i, t in texts.items()}
    for a, b in edges:
        _draw_edge(ax, position[a], position[b], boxes[a], boxes[b], [boxes[i] for i in ids if i not in (a, b)])
    _save(fig, path, dpi)


def _inside(points: np.ndarray, box: np.ndarray, margin: float = 0.0) -> np.ndarray:
    (x0, y0), (x1, y1) = box
    return ((points[:, 0] > x0 - margin) & (points[:, 0] < x1 + margin) & (points[:, 1] > y0 - margin)
            & (points[:, 1] < y1 + margin))


def _draw_edge(ax: Any, start: tuple[float, float], end: tuple[float, float], box_a: np.ndarray, box_b: np.ndarray,
               others: list[np.ndarray]) -> None:
    """An arrow from box A's border to box B's border: straight when that passes no other box, else the first
    of a few arcs (bending left or right, ever wider) that does. It ends on B's border, so the head shows."""
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path

    p0, p2 = np.asarray(start, float), np.asarray(end, float)
    normal = np.array([p0[1] - p2[1], p2[0] - p0[0]])
    t = np.linspace(0.0, 1.0, 200)[:, None]
    points = p0 + t * (p2 - p0)
    for bend in (0.0, 0.3, -0.3, 0.6, -0.6, 1.0, -1.0):
        p1 = (p0 + p2) / 2 + bend * normal  # a quadratic Bezier through this control point
        points = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        visible = ~_inside(points, box_a) & ~_inside(points, box_b)
        if not any(_inside(points[visible], box, 0.01).any() for box in others):
            break
    visible = np.flatnonzero(~_inside(points, box_a) & ~_inside(points, box_b))
    if len(visible) < 2:  # the boxes touch: nothing to draw between them
        return
    path = points[visible[0]:visible[-1] + 1]
    ax.add_patch(FancyArrowPatch(path=Path(path), arrowstyle="-|>", mutation_scale=10, color="#555555",
                                 linewidth=1.0, shrinkA=0, shrinkB=0, zorder=2))


# ---------------------------------------------------------------------------- models
def _shape_text(shape: Any) -> str:
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def model_to_dot(model: Any, show_shapes: bool = True, show_dtype: bool = False, show_layer_names: bool = True,
                 rankdir: str = "TB") -> tuple[str, list, list]:
    """(DOT text, nodes, edges) of a Sequential or functional model's layers; a box per layer with its class,
    name, output shape and parameter count."""
    if not getattr(model, "built", False):
        raise ValueError(f"plot_model: model '{model.name}' is not built; give the first layer input_shape=... or "
                         "call the model on data first")
    graph = model.__dict__.get("_graph")
    nodes: list[tuple[str, str, dict[str, str]]] = []
    edges: list[tuple[str, str]] = []

    def label(layer: Any, shape: Any) -> str:
        head = f"{layer.name} ({type(layer).__name__})" if show_layer_names else type(layer).__name__
        parts = [head]
        if show_shapes and shape is not None:
            parts.append(f"output: {_shape_text(shape)}")
        if layer.built and layer.weights:
            parts.append(f"params: {layer.count_params():,}")
        if show_dtype:
            parts.append(f"dtype: {layer.dtype}")
        return "\n".join(parts)

    if graph is not None:
        ids = {}
        for layer in graph.layers:
            ids[id(layer)] = f"layer{len(ids)}"
            out = layer.__dict__.get("_symbolic_outputs") or []
            shape = (getattr(out[0], "shape", None) if out and not isinstance(out[0], list)
                     else [t.shape for t in out[0]] if out else getattr(layer, "batch_shape", None))
            colour = "#fff4d6" if type(layer).__name__ == "InputLayer" else "#eef3fb"
            nodes.append((ids[id(layer)], label(layer, shape), {"fillcolor": colour}))
        for node, _ in graph.plan:
            for parent in node.parents:
                edge = (ids[id(parent.node.layer)], ids[id(node.layer)])
                if edge not in edges:
                    edges.append(edge)
    else:
        shapes = list(getattr(getattr(model, "_shapes", None), "outputs", []) or [])
        input_shape = getattr(model, "_build_input_shape", None)
        if input_shape is not None:
            nodes.append(("input", f"input\n{_shape_text(input_shape)}" if show_shapes else "input",
                          {"fillcolor": "#fff4d6"}))
        for i, layer in enumerate(model.layers):
            nodes.append((f"layer{i}", label(layer, shapes[i] if i < len(shapes) else None), {}))
            if len(nodes) > 1:
                edges.append((nodes[-2][0], nodes[-1][0]))
    return _dot("model", nodes, edges, rankdir), nodes, edges


def plot_model(model: Any, path: str | os.PathLike = "model.png", show_shapes: bool = True,
               show_dtype: bool = False, show_layer_names: bool = True, rankdir: str = "TB", dpi: int = 120) -> str:
    """Draw a model's layers (boxes with class, name, output shape and parameters; arrows for data flow) to
    ``path`` (``.png``, ``.svg``, ``.pdf`` or ``.dot``); returns the DOT text. Keras's arguments."""
    text, nodes, edges = model_to_dot(model, show_shapes, show_dtype, show_layer_names, rankdir)
    _write_picture(text, nodes, edges, path, dpi)
    return text


# ---------------------------------------------------------------------------- autograd graphs
def _autograd_graph(outputs: Any) -> tuple[list, list]:
    """Nodes (sources first) and edges of the graph behind ``outputs``: ops as boxes, leaf tensors as ellipses."""
    roots = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    for t in roots:
        if not isinstance(t, Tensor):
            raise TypeError(f"graph_to_dot expects Tensors, got {type(t).__name__}")
    ids: dict[int, str] = {}
    nodes: dict[str, tuple[str, str, dict[str, str]]] = {}
    edges: list[tuple[str, str]] = []
    order: list[str] = []

    def tensor_node(t: Any, role: str) -> str:
        key = id(t)
        if key not in ids:
            ids[key] = f"t{len(ids)}"
            name = t.name or ("parameter" if isinstance(t, Parameter) else role)
            fill = {"output": "#d9f2d9", "parameter": "#fff4d6"}.get(
                "parameter" if isinstance(t, Parameter) else role, "#f2f2f2")
            nodes[ids[key]] = (ids[key], f"{name}\n{tuple(t.shape)} {t.dtype}", {"shape": "ellipse", "fillcolor": fill})
        return ids[key]

    visited: set[int] = set()
    op_ids: dict[int, str] = {}  # numbered in execution order
    stack = [(t.creator, False) for t in roots if t.creator is not None]
    while stack:  # depth-first post-order: every op after the ops and leaves it consumes
        op, expanded = stack.pop()
        inputs = [x for x in (op.inputs or ()) if isinstance(x, Tensor)]
        if not expanded:
            if id(op) not in visited:
                visited.add(id(op))
                stack.append((op, True))
                stack.extend((x.creator, False) for x in reversed(inputs) if x.creator is not None)
            continue
        op_id = op_ids[id(op)] = f"op{len(op_ids)}"
        for x in inputs:
            source = op_ids[id(x.creator)] if x.creator is not None else tensor_node(x, "input")
            if x.creator is None and source not in order:
                order.append(source)
            edges.append((source, op_id))
        label = type(op).__name__ + ("" if op.inputs is not None else "\n(freed by backward)")
        nodes[op_id] = (op_id, label, {"fillcolor": "#eef3fb"})
        order.append(op_id)
    for t in roots:
        out_id = tensor_node(t, "output")
        if out_id not in order:
            order.append(out_id)
        if t.creator is not None:
            edges.append((op_ids[id(t.creator)], out_id))
    return [nodes[i] for i in order], edges


def graph_to_dot(tensor: Any, path: str | os.PathLike | None = None, rankdir: str = "TB", dpi: int = 120) -> str:
    """The autograd graph that produced ``tensor`` (or a list of tensors) as Graphviz DOT text: a box per op,
    an ellipse per leaf (parameters named, in yellow) and the output in green. With ``path`` the graph is
    also written (``.dot``) or drawn (``.png``/``.svg``/``.pdf``: by ``dot`` when present, else matplotlib).

    Call it before ``backward()`` (or use ``retain_graph=True``): backward frees the graph's records.
    """
    nodes, edges = _autograd_graph(tensor)
    text = _dot("autograd", nodes, edges, rankdir)
    if path is not None:
        _write_picture(text, nodes, edges, path, dpi)
    return text


__all__ = ["graph_to_dot", "model_to_dot", "plot_history", "plot_model"]
