"""``model.summary()``: a Keras-like table of the layers, their output shapes and parameter counts.

Plain ASCII (it reads the same in a terminal, a notebook and a log file)::

    Model: "sequential"
    _________________________________________________________________
     Layer (type)                Output Shape              Param #
    =================================================================
     dense (Dense)               (None, 512)          401,920
    =================================================================
    Total params: 401,920 (1.53 MB)
    Trainable params: 401,920 (1.53 MB)
    Non-trainable params: 0 (0.00 B)

Counts have thousands separators and sit right-aligned in their column, as in Keras 3 (``669,706``).
"""

from __future__ import annotations

from typing import Any, Callable


def _format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"  # pragma: no cover


def _count(params: list[Any]) -> tuple[int, int]:
    """(number of scalars, bytes)."""
    return sum(p.data.size for p in params), sum(p.data.nbytes for p in params)


def _layer_output_shape(model: Any, index: int, layer: Any) -> str:
    shapes = model._shapes.outputs if "_shapes" in model.__dict__ else None
    if shapes and index < len(shapes):
        return str(shapes[index])
    outputs = layer.__dict__.get("_symbolic_outputs") or []
    if outputs:
        out = outputs[0]
        return str(out.shape) if hasattr(out, "shape") else str([t.shape for t in out])
    if type(layer).__name__ == "InputLayer":
        return str(layer.batch_shape)
    return "?"


def _connections(model: Any, layer: Any) -> str:
    graph = model.__dict__.get("_graph")
    if graph is None:
        return ""
    names = []
    for node, _ in graph.plan:
        if node.layer is layer:
            for parent in node.parents:
                names.append(f"{parent.node.layer.name}[{parent.index}]")
    return ", ".join(names)


def print_summary(model: Any, line_length: int | None = None, print_fn: Callable[[str], Any] | None = None,
                  show_trainable: bool = False) -> None:
    """Print (or pass line by line to ``print_fn``) the summary table of ``model``."""
    print_fn = print_fn or print
    functional = model.__dict__.get("_graph") is not None
    multi_input = functional and len(model._graph.input_list) > 1
    columns = ["Layer (type)", "Output Shape", "Param #"]
    widths = [33, 26, 12]
    if multi_input or (functional and any(len(n.parents) > 1 for n, _ in model._graph.plan)):
        columns.append("Connected to")
        widths.append(30)
    if show_trainable:
        columns.append("Trainable")
        widths.append(10)
    layers = model.layers
    rows = []
    for i, layer in enumerate(layers):
        try:
            params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        except ValueError:
            params = "0 (unbuilt)"
        cells = [f"{layer.name} ({type(layer).__name__})", _layer_output_shape(model, i, layer), params]
        if "Connected to" in columns:
            cells.append(_connections(model, layer))
        if show_trainable:
            cells.append("Y" if layer.trainable else "N")
        rows.append(cells)
    if line_length:
        scale = line_length / sum(widths)
        widths = [max(8, int(w * scale)) for w in widths]
    right = columns.index("Param #")  # counts: right-aligned and never cut, however narrow the table
    widths[right] = max([widths[right]] + [len(cells[right]) + 2 for cells in rows])
    width = sum(widths)

    def row(cells: list[str]) -> str:
        text = [str(c)[:w - 2].rjust(w - 2) + "  " if i == right else str(c)[:w - 1].ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths))]
        return " " + "".join(text).rstrip()

    print_fn(f'Model: "{model.name}"')
    print_fn("_" * width)
    print_fn(row(columns))
    print_fn("=" * width)
    for i, cells in enumerate(rows):
        print_fn(row(cells))
        print_fn(("_" if i < len(rows) - 1 else "=") * width)
    if not layers:
        print_fn("=" * width)
    total, total_bytes = _count(model.weights)
    trainable, trainable_bytes = _count(model.trainable_weights)
    print_fn(f"Total params: {total:,} ({_format_bytes(total_bytes)})")
    print_fn(f"Trainable params: {trainable:,} ({_format_bytes(trainable_bytes)})")
    print_fn(f"Non-trainable params: {total - trainable:,} ({_format_bytes(total_bytes - trainable_bytes)})")
    if not model.built:
        print_fn("(the model is not built yet: call it on data, or give the first layer input_shape=...)")
