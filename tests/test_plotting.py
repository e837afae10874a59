"""Pictures: learning curves, model diagrams and autograd graphs (DOT text always; PNGs with matplotlib/Graphviz)."""

from __future__ import annotations

import re
import shutil
import sys

import numpy as np
import pytest

import shendu
from shendu.callbacks import LearningRateScheduler
from shendu.layers import Dense, Input, concatenate
from shendu.models import Model, Sequential
from shendu.utils import graph_to_dot, plot_history, plot_model, plotting

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG


@pytest.fixture
def no_graphviz(monkeypatch):
    monkeypatch.setattr(plotting.shutil, "which", lambda name: None)


def _mlp():
    return Sequential([Dense(4, input_dim=3, activation="tanh", name="hidden"), Dense(2, name="out")])


def test_graph_to_dot_lists_ops_leaves_and_edges():
    model = _mlp()
    loss = ((model(np.ones((5, 3), "float32")) - 1.0) ** 2).mean()
    text = graph_to_dot(loss)
    labels = re.findall(r'label="([^"\\]+)', text)
    assert labels == ["input", "hidden/kernel", "hidden/bias", "LinearOp", "TanhOp", "out/kernel", "out/bias",
                      "LinearOp", "SubOp", "PowOp", "MeanOp", "output"]
    edges = re.findall(r"^  (\w+) -> (\w+);$", text, flags=re.M)
    assert len(edges) == 11  # 3 into each Linear, Tanh, Sub, Pow, Mean, the output
    assert "(5, 3) float32" in text and text.startswith("digraph autograd {") and text.endswith("}")
    loss.backward()
    assert "freed by backward" in graph_to_dot(loss)


def test_graph_to_dot_shares_nodes_and_takes_several_outputs():
    x = shendu.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    text = graph_to_dot([y.sum(), (y * 2.0).sum()])
    assert text.count('label="MulOp"') == 2 and text.count('label="output') == 2
    assert text.count("label=\"input") == 1  # x appears once though used twice
    with pytest.raises(TypeError, match="expects Tensors"):
        graph_to_dot(np.ones(2))


@pytest.mark.parametrize("renderer", ["graphviz", "matplotlib"])
def test_graph_and_model_pictures_are_written(tmp_path, renderer, monkeypatch):
    pytest.importorskip("matplotlib")
    if renderer == "graphviz" and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    if renderer == "matplotlib":
        monkeypatch.setattr(plotting.shutil, "which", lambda name: None)
    model = _mlp()
    loss = model(np.ones((2, 3), "float32")).sum()
    graph_to_dot(loss, tmp_path / "graph.png")
    plot_model(model, tmp_path / "model.png")
    assert _is_png(tmp_path / "graph.png") and _is_png(tmp_path / "model.png")
    graph_to_dot(loss, tmp_path / "graph.dot")
    assert (tmp_path / "graph.dot").read_text().startswith("digraph autograd")


def test_plot_model_describes_sequential_and_functional_models(tmp_path):
    text = plot_model(_mlp(), tmp_path / "seq.dot")
    assert "hidden (Dense)\\noutput: (None, 4)\\nparams: 16" in text and "out (Dense)" in text
    assert re.findall(r"-> (\w+);", text) == ["layer0", "layer1"]
    a, b = Input(shape=(3,), name="a"), Input(shape=(5,), name="b")
    merged = concatenate([Dense(4, name="left")(a), Dense(4, name="right")(b)], name="join")
    functional = Model([a, b], Dense(2, name="head")(merged))
    text = plot_model(functional, tmp_path / "functional.dot", show_dtype=True)
    assert text.count("->") == 5 and "join (Concatenate)\\noutput: (None, 8)" in text and "dtype: float32" in text
    with pytest.raises(ValueError, match="not built"):
        plot_model(Sequential([Dense(2)]), tmp_path / "unbuilt.dot")


def _fitted_history():
    shendu.seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)).astype("float32"), rng.integers(0, 2, 64)
    model = Sequential([Dense(8, input_dim=3, activation="relu"), Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, epochs=4, batch_size=16, validation_split=0.25, verbose=0,
                     callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)])


def test_plot_history_draws_loss_metrics_validation_and_learning_rate(tmp_path):
    pytest.importorskip("matplotlib")
    history = _fitted_history()
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history.history)
    fig = plot_history(history, tmp_path / "curves.png")
    assert _is_png(tmp_path / "curves.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["loss", "accuracy"]
    loss_ax = fig.axes[0]
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels[:2] == ["training", "validation"]
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), history.history["loss"])
    lr_key = next((k for k in ("learning_rate", "lr") if k in history.history), None)
    if lr_key is not None:  # the learning rate shares the loss panel on a second axis
        twins = [ax for ax in fig.axes if ax.get_ylabel() == "learning rate"]
        assert len(twins) == 1
        np.testing.assert_allclose(twins[0].get_lines()[0].get_ydata(), history.history[lr_key])
    again = history.plot(metrics=["accuracy"])
    assert [ax.get_title() for ax in again.axes] == ["accuracy"]


def test_plot_history_accepts_dicts_and_rejects_bad_input():
    pytest.importorskip("matplotlib")
    fig = plot_history({"loss": [1.0, 0.5], "val_loss": [1.2, 0.7], "lr": [0.1, 0.01]})
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["loss"]
    with pytest.raises(ValueError, match="empty"):
        plot_history({"loss": []})
    with pytest.raises(ValueError, match="no \\['f1'\\]"):
        plot_history({"loss": [1.0]}, metrics=["f1"])
    with pytest.raises(TypeError, match="History"):
        plot_history([1.0, 2.0])


def test_missing_matplotlib_gives_a_clear_error(monkeypatch, no_graphviz, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'shendu\[plot\]'"):
        plot_history({"loss": [1.0]})
    with pytest.raises(ImportError, match="matplotlib"):
        plot_model(_mlp(), tmp_path / "model.png")
    assert plot_model(_mlp(), tmp_path / "model.dot").startswith("digraph model")  # DOT needs no matplotlib


def test_plot_history_legend_keeps_the_learning_rate_and_epochs_are_integers():
    pytest.importorskip("matplotlib")
    fig = plot_history({"loss": [1.0, 0.6, 0.5], "val_loss": [1.2, 0.8, 0.7], "learning_rate": [0.1, 0.05, 0.01],
                        "accuracy": [0.5, 0.6, 0.7]})
    fig.draw_without_rendering()
    loss_ax, accuracy_ax = (ax for ax in fig.axes if ax.get_title() in ("loss", "accuracy"))
    legend = [text.get_text() for text in loss_ax.get_legend().get_texts()]
    assert legend == ["training", "validation", "best (epoch 3)", "learning rate"]
    for ax in (loss_ax, accuracy_ax):
        low, high = ax.get_xlim()
        shown = [(tick, label.get_text()) for tick, label in zip(ax.get_xticks(), ax.get_xticklabels())
                 if low <= tick <= high]
        assert shown == [(1, "1"), (2, "2"), (3, "3")], shown  # not 1.0, 1.25, 1.5, ...


def _drawn_figure(monkeypatch, draw):
    """The matplotlib figure that plot_model/graph_to_dot would save (without Graphviz)."""
    from matplotlib.figure import Figure

    figures = []
    monkeypatch.setattr(plotting.shutil, "which", lambda name: None)
    monkeypatch.setattr(Figure, "savefig", lambda fig, *args, **kwargs: figures.append(fig))
    draw()
    (fig,) = figures
    fig.draw_without_rendering()
    return fig


def _arrows_and_boxes(fig):
    from matplotlib.patches import FancyArrowPatch

    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    arrows += [t.arrow_patch for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    boxes = [t.get_bbox_patch().get_window_extent() for t in ax.texts if t.get_bbox_patch() is not None]
    return arrows, boxes


def _skip_model():
    a, b = Input(shape=(3,), name="a"), Input(shape=(5,), name="b")
    merged = concatenate([Dense(4, name="left")(a), Dense(4, name="right")(b)], name="join")
    skip = concatenate([merged, Dense(4, name="mid")(merged)], name="skip")  # join -> skip passes mid's level
    return Model([a, b], Dense(2, name="head")(skip))


@pytest.mark.parametrize("what", ["functional", "sequential", "autograd"])
def test_matplotlib_drawing_shows_every_edge_with_its_arrowhead_outside_the_boxes(monkeypatch, tmp_path, what):
    pytest.importorskip("matplotlib")
    if what == "autograd":
        model = _mlp()
        loss = ((model(np.ones((5, 3), "float32")) - 1.0) ** 2).mean()
        fig = _drawn_figure(monkeypatch, lambda: graph_to_dot(loss, tmp_path / "graph.png"))
        edges = 11
    else:
        model = _skip_model() if what == "functional" else _mlp()
        fig = _drawn_figure(monkeypatch, lambda: plot_model(model, tmp_path / "model.png"))
        edges = 8 if what == "functional" else 2
    arrows, boxes = _arrows_and_boxes(fig)
    assert len(arrows) == edges
    for arrow in arrows:
        assert arrow.get_arrowstyle().__class__.__name__ == "CurveFilledB"  # "-|>": a filled head
        path = arrow.get_transform().transform_path(arrow.get_path())  # line and head, in pixels
        for box in boxes:  # no part of an edge (its head included) hidden behind or drawn over a box
            inner = box.expanded(0.98, 0.9)
            assert not inner.count_contains(path.vertices), f"an edge crosses the box at {box}"
