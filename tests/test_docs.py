"""The tutorials' code blocks run, in order, as one program, and regenerate the pictures they embed; the
README's PyTorch-style snippet runs."""

import contextlib
import importlib.util
import io
import pathlib
import re
import struct

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial.md"
pytestmark = pytest.mark.skipif(not TUTORIAL.exists(), reason="docs/ not present")


def _make_figures():
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def english(tmp_path_factory):
    """The English tutorial run by the figure script in a temporary folder: (namespace, printed text, folder)."""
    workdir = tmp_path_factory.mktemp("tutorial")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        namespace = _make_figures().build(workdir, TUTORIAL)
    return namespace, out.getvalue(), workdir


def test_tutorial_code_blocks_run(english):
    ns, out, _ = english
    assert len(_make_figures().code_blocks(TUTORIAL)) >= 20
    # hand calculations agree with shendu: forward, gradients (autograd, finite differences, gradcheck)
    assert out.count("same numbers: True") == 2 and "same numbers: True True" in out
    assert "gradcheck: True" in out
    assert "explain_step's gradient is the hand calculation: True" in out
    assert "and its update is W - 0.5 * dL/dW: True" in out
    np.testing.assert_allclose(ns["numeric"], ns["dW_hand"], rtol=1e-3, atol=1e-6)
    # the loss printed "after training" is the loss of the final weights
    assert ns["final"] < 0.1
    # momentum: the heavy-ball form is the velocity form is shendu's SGD(momentum)
    assert "heavy ball == velocity form: True" in out
    assert "velocity form == shendu's SGD(momentum=0.9): True" in out
    # the learning-rate sweep: the rate above 2/lambda_max diverges, the ones below converge
    assert 0.7 < 2 / ns["lam_max"] < 0.8
    # classification, evaluation, saving
    assert "test accuracy on the sample" in out
    assert ns["accuracy"] > 0.8
    assert out.rstrip().endswith("True")  # the saved model predicts what the original did
    assert ns["explain"].records and not any("exploding" in w for _, w in ns["explain"].warnings)
    # Explain as a debugger: each mistake is caught and its layer named
    assert any("layer 'hidden_sigmoid'" in w and "saturated" in w for w in ns["unscaled"])
    assert any("layer 'hidden_relu'" in w and "dead" in w for w in ns["too_fast"])


def test_the_articles_program_is_verbatim_and_explained(english):
    ns, out, _ = english
    blocks = _make_figures().code_blocks(TUTORIAL)
    article = next(b for b in blocks if "model.fit(X, y, epochs=1000, verbose=0)" in b)
    for line in ("X = np.random.rand(100, 1)", "y = X ** 2", "model.add(Dense(1, input_dim=1))",
                 "optimizer = SGD(lr=0.01, momentum=0.9)",
                 "model.compile(optimizer=optimizer, loss='mean_squared_error')",
                 "preds = model.predict(X)", "print(preds)"):
        assert line in article
    assert ns["preds"].shape == (100, 1)
    # 1000 epochs of mini-batch SGD reach the best straight line (to 2%), whose error is about 1/180
    assert ns["mse"] == pytest.approx(ns["lstsq_mse"], rel=0.02)
    assert ns["lstsq_mse"] == pytest.approx(1 / 180, rel=0.3)
    assert (ns["preds"] < 0).sum() > 0 and "negative predictions:" in out
    assert ns["w_learned"] == pytest.approx(1.0, abs=0.1) and ns["b_learned"] == pytest.approx(-1 / 6, abs=0.05)
    # the hidden layer fits the curve far better than any line
    assert float(np.mean((ns["curve"].predict(ns["X"], verbose=0) - ns["y"]) ** 2)) < ns["lstsq_mse"] / 10


def test_early_stopping_stops_early_near_the_best_epoch(english):
    ns, _, _ = english
    epochs_run = len(ns["stopped"].history["loss"])
    assert epochs_run < 500
    assert ns["best_epoch"] <= epochs_run <= ns["best_epoch"] + 2 * ns["stopper"].patience
    # overfitting is visible: the validation loss at the end is well above its minimum
    assert ns["full"].history["val_loss"][-1] > 1.3 * min(ns["full"].history["val_loss"])


def test_figures_are_regenerated_and_committed(english):
    _, _, workdir = english
    names = _make_figures().figure_names(TUTORIAL)
    assert len(names) >= 7 and len(set(names)) == len(names)
    for name in names:
        fresh, committed = workdir / "figures" / name, DOCS / "figures" / name
        assert fresh.exists(), f"the tutorial's code does not make {name}"
        assert committed.exists(), f"docs/figures/{name} is not committed: run python docs/make_figures.py"
        assert _png_size(fresh) == _png_size(committed), f"{name}: regenerate with python docs/make_figures.py"
    unused = {p.name for p in (DOCS / "figures").glob("*.png")} - set(names)
    assert not unused, f"pictures no tutorial embeds: {sorted(unused)}"


def test_readme_pytorch_style_snippet_runs(capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## PyTorch style, same objects"):]
    snippet = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(snippet, "README.md[PyTorch style]", "exec"), namespace)
    assert "last batch loss" in capsys.readouterr().out
    assert np.isfinite(float(namespace["loss"]))


# ---------------------------------------------------------------------------- the Chinese tutorial
ZH = DOCS / "zh" / "tutorial.md"
ARTICLE_SECTIONS = ("1 背景介绍", "2.1.1", "2.1.2", "2.1.3", "2.1.4", "2.1.5", "2.2.1", "2.2.2", "2.2.3", "3.1",
                    "3.2", "3.3.1", "3.3.2", "3.3.3", "4.1", "4.2", "4.3", "4.4", "5 未来发展趋势与挑战",
                    "常见问题与解答", "参考文献")
GLOSSARY = ("张量", "前向传播", "反向传播", "损失函数", "梯度下降", "随机梯度下降", "动量", "学习率", "过拟合",
            "激活函数", "权重", "偏置", "批量", "轮次")


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped (CJK kept), spaces to hyphens."""
    return "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_").replace(" ", "-")


def _section(text, heading):
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else len(text)]


@pytest.mark.parametrize("path", [TUTORIAL, ZH], ids=["en", "zh"])
def test_map_errata_and_glossary(path):
    text = path.read_text(encoding="utf-8")
    anchors = {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links and not [a for a in links if a not in anchors], "links to headings that do not exist"
    table = _section(text, "## 原文章节对照表" if path == ZH else "## Where each section of the article is")
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert sum("](#" in row for row in rows) >= 12
    for section in ARTICLE_SECTIONS:
        assert any(section in row for row in rows), f"{path.name}: article section {section!r} is not mapped"
    errata = _section(text, "## 勘误" if path == ZH else "## Errata")
    assert "勘误" in errata and len(re.findall(r"^> \d\. \*\*", errata, flags=re.M)) == 9
    for ref in ("[6]", "[10]", "[15]", "[19]–[48]"):
        assert ref in errata
    glossary = _section(text, "## 术语表" if path == ZH else "## Glossary")
    for term in GLOSSARY:
        assert f"| {term}" in glossary or f" {term} " in glossary or f"| {term}，" in glossary, term
    assert "explain_step" in text and "Explain(" in text


def test_chinese_tutorial_runs_and_embeds_the_same_figures(tmp_path, english):
    make_figures = _make_figures()
    assert len(make_figures.code_blocks(ZH)) == len(make_figures.code_blocks(TUTORIAL))
    assert sorted(make_figures.figure_names(ZH)) == sorted(make_figures.figure_names(TUTORIAL))
    assert "(../figures/" in ZH.read_text(encoding="utf-8")
    article = next(b for b in make_figures.code_blocks(TUTORIAL) if "epochs=1000" in b)
    assert article in make_figures.code_blocks(ZH)  # the article's program, verbatim in both
    (tmp_path / "figures").mkdir()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns = make_figures.run_tutorial(ZH, tmp_path)
    text = out.getvalue()
    assert text.count("结果相同: True") == 2 and "gradcheck: True" in text
    assert "重球形式 == 速度形式: True" in text and "速度形式 == shendu 的 SGD(momentum=0.9): True" in text
    assert ns["accuracy"] > 0.8 and text.rstrip().endswith("True")
    assert len(ns["stopped"].history["loss"]) < 500
    # the Chinese blocks compute what the English ones do
    en = english[0]
    for name in ("dW_hand", "numeric", "preds", "lam_max"):
        np.testing.assert_allclose(ns[name], en[name], rtol=1e-6)
    for name in make_figures.figure_names(ZH):
        if name != "network.png":  # the diagram is drawn by make_figures.build, not by a block
            assert (tmp_path / "figures" / name).exists(), name


@pytest.mark.parametrize("path", [TUTORIAL, ZH], ids=["en", "zh"])
def test_quoted_source_is_current(path):
    """A class quoted from shendu's source (outside the runnable blocks) is quoted as it is in the source."""
    quotes = re.findall(r"```\n(class .*?)```", path.read_text(encoding="utf-8"), flags=re.S)
    assert quotes
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src" / "shendu").rglob("*.py"))
    for quote in quotes:
        assert quote.rstrip("\n") in sources, f"{path.name} quotes code that is no longer in src/shendu:\n{quote}"
