"""Shape ops (reshape, transpose, broadcast, join, split, pad, indexing): gradients, double backward, PyTorch,
float32, and the indexing edge cases (repeated indices accumulate, boolean masks, negative axes)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import shendu
from shendu.ops import shaping as shape
from shendu.ops.shaping import IndexAddOp

if "optest" not in sys.modules:  # shared helpers, loaded by path (pytest runs with --import-mode=importlib)
    _spec = importlib.util.spec_from_file_location("optest", Path(__file__).with_name("optest.py"))
    sys.modules["optest"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["optest"])
import optest  # noqa: E402
from optest import OpCase, torch  # noqa: E402

F = torch and torch.nn.functional
MASK = np.array([[True, False, True], [False, False, True]])
ROWS = np.array([2, 0, 2, 2])  # repeated indices: their gradients accumulate
GATHER_IDX = np.array([[0, 0, 2], [1, 0, 0]])


def T(a):
    return torch.as_tensor(a)


def torch_pad(widths):
    """numpy pad widths ((before, after) per axis) as F.pad's flat list, last axis first."""
    return [w for pair in reversed(widths) for w in pair]


TABLE = [
    OpCase("ReshapeOp", lambda x: shendu.reshape(x, (-1,)), lambda x: x.reshape(-1),
           [((2, 3),), ((),), ((0, 3),)], name="reshape-flat"),
    OpCase("ReshapeOp", lambda x: x.reshape(3, 1, 2), lambda x: x.reshape(3, 1, 2), [((2, 3),), ((6,),)]),
    OpCase("ReshapeOp", lambda x: shendu.expand_dims(x, (0, -1)), lambda x: x[None, ..., None], [((2, 3),), ((),)],
           name="expand_dims"),
    OpCase("ReshapeOp", shendu.squeeze, torch and torch.squeeze, [((1, 3, 1),), ((2, 1),)], name="squeeze"),
    OpCase("ReshapeOp", lambda x: shendu.squeeze(x, -1), lambda x: torch.squeeze(x, -1), [((2, 1),)],
           name="squeeze-axis"),
    OpCase("ReshapeOp", lambda x: shendu.flatten(x, 1), lambda x: torch.flatten(x, 1), [((2, 3, 2),), ((2, 0, 1),)],
           name="flatten"),
    OpCase("TransposeOp", shendu.transpose, lambda x: x.permute(*reversed(range(x.ndim))),
           [((2, 3),), ((2, 3, 4),), ((0, 2),)]),
    OpCase("TransposeOp", lambda x: shendu.permute(x, (1, -1, 0)), lambda x: x.permute(1, -1, 0), [((2, 3, 4),)],
           name="permute"),
    OpCase("TransposeOp", lambda x: shendu.swapaxes(x, 0, -1), lambda x: torch.swapaxes(x, 0, -1),
           [((2, 3, 4),), ((1, 3),)], name="swapaxes"),
    OpCase("BroadcastToOp", lambda x: shendu.broadcast_to(x, (2, 3, 4)), lambda x: torch.broadcast_to(x, (2, 3, 4)),
           [((4,),), ((3, 1),), ((),), ((1, 1, 4),)]),
    OpCase("BroadcastToOp", lambda x: shendu.broadcast_to(x, (0, 3)), lambda x: torch.broadcast_to(x, (0, 3)),
           [((1, 3),), ((3,),)], name="broadcast_to-empty"),
    OpCase("SumToOp", lambda x: shendu.sum_to(x, (3, 1)), lambda x: x.sum_to_size(3, 1), [((2, 3, 4),), ((3, 4),)]),
    OpCase("SumToOp", lambda x: shendu.sum_to(x, (1, 3)), lambda x: x.sum_to_size(1, 3), [((0, 3),), ((2, 0, 3),)],
           name="sum_to-empty"),
    OpCase("ConcatenateOp", lambda a, b: shendu.concatenate([a, b], axis=-1), lambda a, b: torch.cat([a, b], -1),
           [((2, 3), (2, 1)), ((2, 0), (2, 2))]),
    OpCase("ConcatenateOp", lambda a, b, c: shendu.concatenate([a, b, c]), lambda a, b, c: torch.cat([a, b, c]),
           [((1, 2), (3, 2), (2, 2))], name="concatenate-3"),
    OpCase("StackOp", lambda a, b: shendu.stack([a, b]), lambda a, b: torch.stack([a, b]),
           [((2, 3), (2, 3)), ((), ()), ((0, 2), (0, 2))]),
    OpCase("StackOp", lambda a, b: shendu.stack([a, b], axis=-1), lambda a, b: torch.stack([a, b], -1),
           [((2, 3), (2, 3))], name="stack-last"),
    OpCase("GetItemOp", lambda x: shendu.split(x, 3, axis=1), lambda x: torch.split(x, 2, 1), [((2, 6),)],
           name="split-sections"),
    OpCase("GetItemOp", lambda x: shendu.split(x, [1, 3], axis=-1), lambda x: torch.tensor_split(x, [1, 3], -1),
           [((2, 5),), ((1, 4),)], name="split-points"),
    OpCase("PadOp", lambda x: shendu.pad(x, 1), lambda x: F.pad(x, [1] * 2 * x.ndim), [((2, 3),), ((0, 2),)]),
    OpCase("PadOp", lambda x: shendu.pad(x, ((1, 0), (0, 2)), constant_values=0.5),
           lambda x: F.pad(x, [0, 2, 1, 0], value=0.5),
           [((2, 3),)], name="pad-pairs"),
    OpCase("GetItemOp", lambda x: x[1:, ::2], lambda x: x[1:, ::2], [((3, 4),)], name="getitem-slices"),
    OpCase("GetItemOp", lambda x: x[-1], lambda x: x[-1], [((3, 4),), ((2,),)], name="getitem-int"),
    OpCase("GetItemOp", lambda x: x[..., None, 1], lambda x: x[..., None, 1], [((2, 3),)], name="getitem-newaxis"),
    OpCase("GetItemOp", lambda x: x[ROWS], lambda x: x[T(ROWS)], [((3, 2),), ((3,),)], name="getitem-repeats"),
    OpCase("GetItemOp", lambda x: x[[0, 1, 1], [2, -1, 2]], lambda x: x[[0, 1, 1], [2, -1, 2]], [((2, 3),)],
           name="getitem-pairs"),
    OpCase("GetItemOp", lambda x: x[:, [2, 0, 2]], lambda x: x[:, [2, 0, 2]], [((2, 3),)], name="getitem-columns"),
    OpCase("GetItemOp", lambda x: x[MASK], lambda x: x[T(MASK)], [((2, 3),)], name="getitem-mask"),
    OpCase("GetItemOp", lambda x: x[shendu.tensor(MASK[0])], lambda x: x[T(MASK[0])], [((3, 2),)],
           name="getitem-tensor-mask"),
    OpCase("GetItemOp", lambda x: x[ROWS[:0]], lambda x: x[T(ROWS[:0])], [((3, 2),)], name="getitem-empty"),
    OpCase("GetItemOp", lambda x: shendu.take(x, ROWS), lambda x: torch.take(x, T(ROWS)), [((2, 3),)], name="take"),
    OpCase("GetItemOp", lambda x: shendu.take(x, ROWS, axis=-1), lambda x: torch.index_select(x, -1, T(ROWS)),
           [((2, 3),)], name="take-axis"),
    OpCase("GetItemOp", lambda x: shendu.take_along_axis(x, GATHER_IDX, 1), lambda x: torch.gather(x, 1, T(GATHER_IDX)),
           [((2, 3),)], name="take_along_axis"),
    OpCase("GetItemOp", lambda x: shendu.gather(x, GATHER_IDX.T[:2], 0),
           lambda x: torch.gather(x, 0, T(GATHER_IDX.T[:2])), [((3, 2),)], name="gather-0"),
    OpCase("GetItemOp", lambda x: shendu.repeat(x, 2, axis=1), lambda x: torch.repeat_interleave(x, 2, 1),
           [((2, 3),)], name="repeat"),
    OpCase("GetItemOp", lambda x: shendu.repeat(x, [1, 0, 2], axis=0),
           lambda x: torch.repeat_interleave(x, T([1, 0, 2]), 0), [((3, 2),)], name="repeat-counts"),
    OpCase("GetItemOp", lambda x: shendu.repeat(x, 2), lambda x: torch.repeat_interleave(x.reshape(-1), 2),
           [((2, 2),)], name="repeat-flat"),
    OpCase("GetItemOp", lambda x: shendu.tile(x, (2, 1, 2)), lambda x: torch.tile(x, (2, 1, 2)), [((2, 3),)],
           name="tile"),
    OpCase("IndexAddOp", lambda x: IndexAddOp((ROWS,), (3, 2))(x),
           lambda x: torch.zeros(3, 2, dtype=x.dtype).index_put((T(ROWS),), x, accumulate=True), [((4, 2),)]),
    OpCase("IndexAddOp", lambda x: IndexAddOp((ROWS[:0],), (3, 2))(x),
           lambda x: torch.zeros(3, 2, dtype=x.dtype).index_put((T(ROWS[:0]),), x, accumulate=True), [((0, 2),)],
           name="index_add-empty"),
    OpCase("IndexAddOp", lambda x: IndexAddOp((slice(1, 3),), (4, 2))(x),
           lambda x: torch.zeros(4, 2, dtype=x.dtype).index_put((T([1, 2]),), x), [((2, 2),)], name="index_add-slice"),
]

GRADCHECK_CASES = optest.gradcheck_cases(TABLE)
test_gradcheck, test_gradgradcheck, test_matches_torch, test_float32 = optest.table_tests(TABLE)


def test_every_shape_op_in_table():
    assert optest.registered_ops(shape) <= {c.op for c in TABLE}


def test_repeated_indices_accumulate():
    x = shendu.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 0.0, 1.0])


def test_boolean_mask_gradient_lands_on_selected():
    x = shendu.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x[x > 2.0]
    np.testing.assert_array_equal(y.data, [3.0, 4.0, 5.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0, 0], [1, 1, 1]])


def test_split_of_empty_axis_and_uneven_sections():
    pieces = shendu.split(shendu.zeros(0, 2), 2)
    assert [p.shape for p in pieces] == [(0, 2), (0, 2)]
    with pytest.raises(ValueError, match="split.*size 5.*2 equal"):
        shendu.split(shendu.zeros(5), 2)


@pytest.mark.parametrize("call, pattern", [
    (lambda: shendu.reshape(shendu.zeros(2, 3), (4, 2)), r"reshape.*\(2, 3\).*\(4, 2\)"),
    (lambda: shendu.transpose(shendu.zeros(2, 3), (0, 0)), r"transpose.*\(0, 0\).*\(2, 3\)"),
    (lambda: shendu.broadcast_to(shendu.zeros(2, 3), (4, 3)), r"broadcast_to.*\(2, 3\).*\(4, 3\)"),
    (lambda: shendu.concatenate([shendu.zeros(2, 3), shendu.zeros(3, 2)]), r"concatenate.*\(2, 3\).*\(3, 2\)"),
    (lambda: shendu.stack([shendu.zeros(2), shendu.zeros(3)]), r"stack.*\(2,\).*\(3,\)"),
    (lambda: shendu.zeros(2, 3)[5], r"getitem.*\(2, 3\)"),
    (lambda: shendu.squeeze(shendu.zeros(2, 3), 0), r"squeeze.*\(2, 3\)"),
], ids=["reshape", "transpose", "broadcast_to", "concatenate", "stack", "getitem", "squeeze"])
def test_shape_errors_name_op_and_shapes(call, pattern):
    with pytest.raises((ValueError, IndexError), match=pattern):
        call()


def test_shape_ops_return_input_when_nothing_changes():
    x = shendu.randn(2, 3, requires_grad=True)
    assert shendu.reshape(x, (2, 3)) is x and shendu.broadcast_to(x, (2, 3)) is x and shendu.sum_to(x, (2, 3)) is x
