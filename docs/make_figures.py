"""Make the tutorial's pictures from shendu itself: ``python docs/make_figures.py [--out DIR]``.

The pictures are drawn by the tutorial's own code blocks (``docs/tutorial.md``), run in order as one program
in a working folder (default ``docs/``, so they land in ``docs/figures/``), and this script adds the one
picture that is a diagram rather than a result: the network of chapter 1, drawn from the model object
``net`` that the tutorial builds. ``tests/test_docs.py`` runs the same function into a temporary folder, so
the committed pictures cannot drift from the code that makes them.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
from typing import Any

DOCS = pathlib.Path(__file__).resolve().parent
TUTORIAL = DOCS / "tutorial.md"


def code_blocks(path: str | os.PathLike) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"```python\n(.*?)```", pathlib.Path(path).read_text(encoding="utf-8"), flags=re.S)


def figure_names(path: str | os.PathLike) -> list[str]:
    """The file names of the pictures a Markdown file embeds from a ``figures/`` folder."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    return re.findall(r"!\[[^\]]*\]\((?:\.\./)?figures/([\w.-]+\.png)\)", text)


def run_tutorial(path: str | os.PathLike, workdir: str | os.PathLike) -> dict[str, Any]:
    """Run every code block of ``path`` in order, in one namespace, with ``workdir`` as the current folder;
    returns the namespace. A failing block raises an error that names it."""
    namespace: dict[str, Any] = {"__name__": "__tutorial__"}
    blocks = code_blocks(path)
    previous = os.getcwd()
    os.chdir(workdir)  # (contextlib.chdir needs Python 3.11; shendu supports 3.10)
    try:
        for i, block in enumerate(blocks):
            try:
                exec(compile(block, f"{pathlib.Path(path).name}[block {i}]", "exec"), namespace)
            except Exception as e:
                raise RuntimeError(f"{path}: code block {i} failed: {e!r}\n{block}") from e
    finally:
        os.chdir(previous)
    return namespace


def draw_network(model: Any, path: str | os.PathLike) -> None:
    """A neuron diagram of a small Dense network: the input layer as plain data, one circle per unit, the
    connections of each layer labelled with the shapes of its weight matrix and bias."""
    from matplotlib.figure import Figure

    dense = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    sizes = [dense[0].kernel.shape[0]] + [layer.kernel.shape[1] for layer in dense]
    fig = Figure(figsize=(7.2, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    top = max(sizes)
    position = [[(2.2 * i, (top - 1) / 2 - j) for j in range(n)] for i, n in enumerate(sizes)]
    for i, layer in enumerate(dense):
        for a in position[i]:
            for b in position[i + 1]:
                ax.plot([a[0], b[0]], [a[1], b[1]], color="#8aa0c0", lw=1, zorder=1)
        mid_x = 2.2 * i + 1.1
        ax.text(mid_x, (top - 1) / 2 + 0.75, f"W{i + 1} {tuple(layer.kernel.shape)}\nb{i + 1} ({sizes[i + 1]},)",
                ha="center", va="bottom", fontsize=10, color="#2b4a7a")
    names = ["input layer\n(the data: no weights)"] + [
        f"{'output' if i == len(dense) - 1 else 'hidden'} layer\n"
        f"y = {(getattr(layer.activation, '__name__', 'f') if getattr(layer, 'activation', None) else 'f')}(xW + b)"
        .replace("linear(xW + b)", "xW + b")
        for i, layer in enumerate(dense)]
    for i, column in enumerate(position):
        face = "#fff4d6" if i == 0 else "#d9f2d9" if i == len(position) - 1 else "#eef3fb"
        for k, (x, y) in enumerate(column):
            ax.add_patch(_circle(x, y, face))
            label = f"x{k + 1}" if i == 0 else f"y{k + 1}" if i == len(position) - 1 else f"h{k + 1}"
            ax.text(x, y, label, ha="center", va="center", fontsize=10, zorder=3)
        ax.text(2.2 * i, -(top - 1) / 2 - 0.85, names[i], ha="center", va="top", fontsize=10)
    ax.set_xlim(-1.0, 2.2 * (len(sizes) - 1) + 1.0)
    ax.set_ylim(-(top - 1) / 2 - 1.9, (top - 1) / 2 + 1.5)
    ax.set_aspect("equal")
    fig.savefig(os.fspath(path), dpi=110)


def _circle(x: float, y: float, face: str) -> Any:
    from matplotlib.patches import Circle

    return Circle((x, y), 0.32, facecolor=face, edgecolor="#5a6f8f", lw=1.2, zorder=2)


def build(workdir: str | os.PathLike, tutorial: str | os.PathLike = TUTORIAL) -> dict[str, Any]:
    """Run the tutorial in ``workdir`` (its pictures go to ``workdir/figures``) and draw the network diagram;
    returns the tutorial's namespace."""
    os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
    namespace = run_tutorial(tutorial, workdir)
    draw_network(namespace["net"], os.path.join(workdir, "figures", "network.png"))
    return namespace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DOCS), help="working folder; the pictures go to OUT/figures")
    args = parser.parse_args()
    build(args.out)
    print("wrote", ", ".join(sorted(p.name for p in pathlib.Path(args.out, "figures").glob("*.png"))))


if __name__ == "__main__":
    main()
