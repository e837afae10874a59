"""The tutorial's code blocks run, in order, as one program."""

import pathlib
import re

import pytest

TUTORIAL = pathlib.Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


@pytest.mark.skipif(not TUTORIAL.exists(), reason="docs/ not present")
def test_tutorial_code_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 10
    namespace: dict = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{TUTORIAL.name}[block {i}]", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the failure message names the block
            raise AssertionError(f"tutorial block {i} failed: {e!r}\n{block}") from e
    out = capsys.readouterr().out
    assert "test accuracy on the sample" in out
    assert namespace["accuracy"] > 0.8
    assert out.rstrip().endswith("True")  # the saved model predicts what the original did
