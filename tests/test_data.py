"""The data pipeline: datasets, DataLoader (batching, shuffling, exact resume), splits, padding, tokenizers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import shendu
from shendu.data import (
    CharTokenizer,
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    Tokenizer,
    default_collate,
    pad_sequences,
    random_split,
    text_to_word_sequence,
)


class CountingDataset(TensorDataset):
    """Counts per-sample reads, to prove the fast path never loops over samples."""

    def __init__(self, *arrays):
        super().__init__(*arrays)
        self.single_reads = 0

    def __getitem__(self, index):
        self.single_reads += 1
        return super().__getitem__(index)


class SquaresDataset(Dataset):
    """A map-style dataset with no batch access: sample i is ({'x': [i, i]}, i*i)."""

    def __len__(self):
        return 7

    def __getitem__(self, index):
        return {"x": np.array([index, index], dtype=np.float32)}, index * index


def _xy(n=10):
    return np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n)


def _labels(loader):
    return [y.tolist() for _, y in loader]


# ---------------------------------------------------------------------- datasets
def test_tensor_dataset_items_and_batches():
    x, y = _xy()
    ds = TensorDataset(shendu.tensor(x), y)
    assert len(ds) == 10
    np.testing.assert_array_equal(ds[3][0], x[3])
    bx, by = ds.__getitems__(np.array([4, 1]))
    np.testing.assert_array_equal(bx, x[[4, 1]])
    assert by.tolist() == [4, 1]


def test_tensor_dataset_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"same first axis.*\(10, 2\), \(9,\)"):
        TensorDataset(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


def test_random_split_counts_fractions_and_seed():
    ds = TensorDataset(np.arange(10))
    parts = random_split(ds, [3, 7], seed=1)
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(np.concatenate([p.indices for p in parts]).tolist()) == list(range(10))
    again = random_split(ds, [3, 7], seed=1)
    assert parts[0].indices.tolist() == again[0].indices.tolist()
    assert [len(p) for p in random_split(ds, [0.5, 0.3, 0.2])] == [5, 3, 2]
    assert [len(p) for p in random_split(TensorDataset(np.arange(11)), [0.5, 0.5])] == [6, 5]
    shendu.seed(3)
    first = random_split(ds, [5, 5])[0].indices.tolist()
    shendu.seed(3)
    assert random_split(ds, [5, 5])[0].indices.tolist() == first
    with pytest.raises(ValueError, match="summing to len"):
        random_split(ds, [3, 3])


def test_subset_reads_through_the_parent():
    x, y = _xy()
    sub = Subset(TensorDataset(x, y), [7, 2, 5])
    assert len(sub) == 3 and sub[1][1] == 2
    assert _labels(DataLoader(sub, batch_size=2)) == [[7, 2], [5]]
    sub_generic = Subset(SquaresDataset(), [3, 1])
    batch = next(iter(DataLoader(sub_generic, batch_size=2)))
    assert batch[1].tolist() == [9, 1]


def test_default_collate_structures():
    batch = default_collate([({"a": np.ones(2)}, 1, "s"), ({"a": np.zeros(2)}, 2, "t")])
    assert batch[0]["a"].shape == (2, 2) and batch[1].tolist() == [1, 2] and batch[2] == ["s", "t"]
    assert default_collate([shendu.tensor([1.0]), shendu.tensor([2.0])]).shape == (2, 1)
    assert isinstance(default_collate([[1, 2], [3, 4]]), list)


# ---------------------------------------------------------------------- DataLoader
def test_loader_len_and_batches():
    x, y = _xy(10)
    assert len(DataLoader((x, y), batch_size=4)) == 3
    assert len(DataLoader((x, y), batch_size=4, drop_last=True)) == 2
    assert _labels(DataLoader((x, y), batch_size=4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _labels(DataLoader((x, y), batch_size=4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    (only,) = next(iter(DataLoader(x, batch_size=3)))
    np.testing.assert_array_equal(only, x[:3])
    assert list(DataLoader(TensorDataset(np.zeros((0, 2))), batch_size=4)) == []


def test_loader_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(np.zeros(3), batch_size=0)
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(42)


def test_loader_fast_path_reads_no_single_samples():
    ds = CountingDataset(*_xy(50))
    for shuffle in (False, True):
        for _ in DataLoader(ds, batch_size=8, shuffle=shuffle, seed=0):
            pass
    assert ds.single_reads == 0


def test_unshuffled_batches_are_read_only_views():
    x, y = _xy()
    bx, _ = next(iter(DataLoader((x, y), batch_size=4)))
    assert np.shares_memory(bx, x) and not bx.flags.writeable
    assert x.flags.writeable
    sx, _ = next(iter(DataLoader((x, y), batch_size=4, shuffle=True, seed=0)))
    assert not np.shares_memory(sx, x)


def test_shuffle_covers_everything_and_changes_per_epoch():
    loader = DataLoader(_xy(20), batch_size=6, shuffle=True, seed=0)
    first, second = sum(_labels(loader), []), sum(_labels(loader), [])
    assert sorted(first) == sorted(second) == list(range(20))
    assert first != second and loader.epoch == 2


def test_shuffle_is_reproducible_from_seed_and_global_seed():
    data = _xy(30)
    assert _labels(DataLoader(data, 4, shuffle=True, seed=5)) == _labels(DataLoader(data, 4, shuffle=True, seed=5))
    shendu.seed(11)
    a = DataLoader(data, 4, shuffle=True)
    run_a = [_labels(a), _labels(a)]
    shendu.seed(11)
    b = DataLoader(data, 4, shuffle=True)
    assert [_labels(b), _labels(b)] == run_a
    unshuffled_state = shendu.random.get_state()
    DataLoader(data, 4).state_dict()
    list(DataLoader(data, 4))
    assert shendu.random.get_state() == unshuffled_state  # no shuffle: the global generator is untouched


def test_generic_dataset_with_dict_samples_and_custom_collate():
    features, targets = next(iter(DataLoader(SquaresDataset(), batch_size=4)))
    assert features["x"].shape == (4, 2) and targets.tolist() == [0, 1, 4, 9]
    ds = CountingDataset(*_xy(6))
    batches = list(DataLoader(ds, batch_size=4, collate=lambda samples: len(samples)))
    assert batches == [4, 2] and ds.single_reads == 6


def test_transforms_apply_to_inputs_and_targets():
    x, y = _xy(6)
    loader = DataLoader((x, y), batch_size=3, transform=lambda b: b / 2, target_transform=lambda t: t + 100)
    bx, by = next(iter(loader))
    np.testing.assert_allclose(bx, x[:3] / 2)
    assert by.tolist() == [100, 101, 102]
    assert np.array_equal(x, _xy(6)[0])  # the dataset is unchanged
    (only,) = next(iter(DataLoader(x, batch_size=2, transform=lambda b: b * 0)))
    assert not only.any()


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("stop_after", [0, 2, 3])
def test_state_dict_resumes_exactly(shuffle, stop_after):
    """Train-like run: 3 epochs of 4 batches. Save after `stop_after` batches of epoch 2, restore into a
    fresh loader (through JSON), and the remaining batches are identical."""
    data = _xy(15)
    shendu.seed(7)
    reference = DataLoader(data, batch_size=4, shuffle=shuffle)
    expected = [_labels(reference) for _ in range(3)]

    shendu.seed(7)
    first = DataLoader(data, batch_size=4, shuffle=shuffle)
    assert _labels(first) == expected[0]
    it = iter(first)
    got = [next(it)[1].tolist() for _ in range(stop_after)]
    state = json.loads(json.dumps(first.state_dict()))
    assert state["position"] == stop_after and state["epoch"] == 1

    shendu.seed(999)  # a new process: other global state
    resumed = DataLoader(data, batch_size=4, shuffle=shuffle)
    resumed.load_state_dict(state)
    got += _labels(resumed)
    assert got == expected[1]
    assert _labels(resumed) == expected[2] and resumed.epoch == 3


def test_state_after_the_last_batch_is_the_next_epoch():
    loader = DataLoader(_xy(8), batch_size=4, shuffle=True, seed=0)
    it = iter(loader)
    next(it), next(it)  # every batch handed out, the for-loop not yet finished
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["position"] == 0 and state["order"] is None


def test_load_state_dict_checks_compatibility():
    loader = DataLoader(_xy(8), batch_size=4, shuffle=True, seed=0)
    state = loader.state_dict()
    with pytest.raises(ValueError, match="num_samples=8 but this loader has num_samples=9"):
        DataLoader(_xy(9), batch_size=4, shuffle=True).load_state_dict(state)
    state.update(position=1, order=[0, 0, 1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError, match="permutation"):
        loader.load_state_dict(state)


def test_loader_matches_torch_batching():
    torch = pytest.importorskip("torch")
    x, y = _xy(11)
    theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=4, drop_last=False)
    for (ax, ay), (bx, by) in zip(DataLoader(TensorDataset(x, y), batch_size=4), theirs, strict=True):
        np.testing.assert_array_equal(ax, bx.numpy())
        np.testing.assert_array_equal(ay, by.numpy())
    assert len(DataLoader((x, y), 4, drop_last=True)) == len(torch.utils.data.DataLoader(x, 4, drop_last=True))


# ---------------------------------------------------------------------- pad_sequences
def test_pad_sequences_keras_examples():
    seqs = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(pad_sequences(seqs, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2, truncating="post"), [[0, 1], [2, 3], [4, 5]])
    assert pad_sequences(seqs).dtype == np.int32


def test_pad_sequences_empty_vectors_dtype_and_errors():
    out = pad_sequences([[], [[1.5, 2.0]]], dtype="float32", maxlen=3)
    assert out.shape == (2, 3, 2) and out.dtype == np.float32
    assert not out[0].any() and out[1, 2].tolist() == [1.5, 2.0]
    words = pad_sequences([["a"], ["b", "c"]], dtype=object, value="<pad>")
    assert words.tolist() == [["<pad>", "a"], ["b", "c"]]
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post'"):
        pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="dtype=object"):
        pad_sequences([["a"]], value="<pad>")
    with pytest.raises(ValueError, match="shape"):
        pad_sequences([[[1, 2]], [[1, 2, 3]]])


# ---------------------------------------------------------------------- tokenizers
def test_word_tokenizer_keras_semantics():
    texts = ["The cat sat on the mat.", "The dog ate my homework!"]
    tok = Tokenizer()
    tok.fit_on_texts(texts)
    assert tok.word_index["the"] == 1 and tok.word_counts["the"] == 3 and tok.document_count == 2
    assert list(tok.word_index)[:4] == ["the", "cat", "sat", "on"]  # ties keep first-seen order
    assert tok.texts_to_sequences(["the unknown cat"]) == [[1, 2]]  # unknown words dropped without oov
    assert tok.sequences_to_texts([[1, 2, 3, 0]]) == ["the cat sat"]
    assert tok.vocabulary[:3] == ["", "the", "cat"] and tok.vocabulary_size == len(tok.word_index) + 1
    assert text_to_word_sequence("A-b\tC") == ["a", "b", "c"]


def test_tokenizer_num_words_and_oov():
    tok = Tokenizer(num_words=3, oov_token="<oov>")
    tok.fit_on_texts(["a a a b b c"])
    assert tok.word_index == {"<oov>": 1, "a": 2, "b": 3, "c": 4}
    assert tok.texts_to_sequences(["a b c z"]) == [[2, 1, 1, 1]]  # only indices < num_words survive
    assert tok.sequences_to_texts([[2, 3, 4]]) == ["a <oov> <oov>"]
    assert tok.vocabulary_size == 3


def test_char_tokenizers_and_round_trip():
    text = "To be, or not to be"
    char = CharTokenizer()
    char.fit_on_texts([text])
    assert char.sequences_to_texts(char.texts_to_sequences([text])) == [text]
    keras_char = Tokenizer(char_level=True)
    keras_char.fit_on_texts([text])
    assert keras_char.word_index[" "] == 1 and "T" not in keras_char.word_index  # lower-cased, space most common
    assert keras_char.sequences_to_texts(keras_char.texts_to_sequences(["tb"])) == ["t b"]  # Keras joins with ' '
    restored = CharTokenizer.from_json(char.to_json())
    assert isinstance(restored, CharTokenizer) and restored.word_index == char.word_index
    assert restored.texts_to_sequences(["not"]) == char.texts_to_sequences(["not"])
    assert Tokenizer.from_json(keras_char.to_json()).char_level


def test_tokenizer_needs_fitting_and_a_list():
    with pytest.raises(RuntimeError, match="fit_on_texts"):
        Tokenizer().texts_to_sequences(["x"])
    with pytest.raises(TypeError, match=r"wrap it: \[text\]"):
        Tokenizer().fit_on_texts("a whole corpus")
