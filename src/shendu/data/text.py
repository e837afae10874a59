"""Text tokenizers: word level (Keras's classic ``Tokenizer``) and character level.

Index 0 is reserved for padding (see :func:`~shendu.data.pad_sequences`); the most frequent token gets
index 1 (or 2 after an out-of-vocabulary token, which takes 1). Ties keep first-seen order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(text: str, filters: str = DEFAULT_FILTERS, lower: bool = True,
                          split: str = " ") -> list[str]:
    """Lower-case, replace every ``filters`` character by ``split``, split, drop empty words.

    >>> text_to_word_sequence("Hello, world!  Hello.")
    ['hello', 'world', 'hello']
    """
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [word for word in text.split(split) if word]


def _require_list(method: str, texts: Any) -> None:
    if isinstance(texts, str):
        raise TypeError(f"Tokenizer.{method} expects a list of texts, got one string; wrap it: [text]")


class Tokenizer:
    """Map tokens to integer indices, as ``keras.preprocessing.text.Tokenizer``.

    Args:
        num_words: keep only indices below ``num_words`` (the ``num_words - 1`` most frequent tokens,
            counting the oov token) when converting; the vocabulary itself keeps every token.
        filters: characters removed from words (ignored at character level, as in Keras).
        lower: lower-case the texts.
        split: the word separator.
        char_level: every character is a token.
        oov_token: the token (index 1) that replaces unknown tokens; without it they are dropped.

    >>> tok = Tokenizer(oov_token="<unk>")
    >>> tok.fit_on_texts(["the cat sat", "the dog"])
    >>> tok.word_index
    {'<unk>': 1, 'the': 2, 'cat': 3, 'sat': 4, 'dog': 5}
    >>> tok.texts_to_sequences(["the bird sat"])
    [[2, 1, 4]]
    >>> tok.sequences_to_texts([[2, 3, 4]])
    ['the cat sat']
    """

    join_with = " "  # sequences_to_texts joins tokens with this (Keras: a space, even at character level)
    _init_arguments = ("num_words", "filters", "lower", "split", "char_level", "oov_token")

    def __init__(self, num_words: int | None = None, filters: str = DEFAULT_FILTERS, lower: bool = True,
                 split: str = " ", char_level: bool = False, oov_token: str | None = None) -> None:
        if num_words is not None and (not isinstance(num_words, int) or num_words < 1):
            raise ValueError(f"Tokenizer: num_words must be a positive integer or None, got {num_words!r}")
        self.num_words = num_words
        self.filters = filters
        self.lower = lower
        self.split = split
        self.char_level = char_level
        self.oov_token = oov_token
        self.word_counts: dict[str, int] = {}
        self.document_count = 0
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}

    # ------------------------------------------------------------------ fitting
    def tokenize(self, text: str | Sequence[str]) -> list[str]:
        """One text's tokens: characters, or words (a list of strings is taken as tokens already)."""
        if isinstance(text, (list, tuple)):
            return [t.lower() for t in text] if self.lower else list(text)
        if self.char_level:
            return list(text.lower() if self.lower else text)
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts: Iterable[str | Sequence[str]]) -> None:
        """Count tokens over ``texts`` (may be called again to add texts) and rebuild the index."""
        _require_list("fit_on_texts", texts)
        for text in texts:
            self.document_count += 1
            for token in self.tokenize(text):
                self.word_counts[token] = self.word_counts.get(token, 0) + 1
        ranked = sorted(self.word_counts, key=self.word_counts.__getitem__, reverse=True)  # stable: ties keep order
        if self.oov_token is not None:
            ranked = [self.oov_token] + [t for t in ranked if t != self.oov_token]
        self.word_index = {token: i for i, token in enumerate(ranked, start=1)}
        self.index_word = {i: token for token, i in self.word_index.items()}

    # ------------------------------------------------------------------ converting
    @property
    def vocabulary(self) -> list[str]:
        """Tokens by index: ``vocabulary[i]`` is the token of index ``i``; index 0 (padding) is ''."""
        return ["", *self.word_index]

    @property
    def vocabulary_size(self) -> int:
        """The number of indices a model must embed: ``len(word_index) + 1`` (capped by ``num_words``)."""
        size = len(self.word_index) + 1
        return min(size, self.num_words) if self.num_words else size

    def texts_to_sequences(self, texts: Iterable[str | Sequence[str]]) -> list[list[int]]:
        """Each text as a list of indices; unknown (or beyond ``num_words``) tokens become the oov index or
        are dropped."""
        self._require_fitted("texts_to_sequences")
        _require_list("texts_to_sequences", texts)
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        sequences = []
        for text in texts:
            seq = []
            for token in self.tokenize(text):
                i = self.word_index.get(token)
                if i is None or (self.num_words and i >= self.num_words):
                    i = oov
                if i is not None:
                    seq.append(i)
            sequences.append(seq)
        return sequences

    def sequences_to_texts(self, sequences: Iterable[Iterable[int]]) -> list[str]:
        """The inverse of :meth:`texts_to_sequences` (up to filtering, case and oov); index 0 is skipped."""
        self._require_fitted("sequences_to_texts")
        oov_word = self.oov_token if self.oov_token in self.word_index else None
        texts = []
        for seq in sequences:
            words = []
            for i in seq:
                i = int(i)
                word = self.index_word.get(i)
                if word is None or (self.num_words and i >= self.num_words):
                    word = oov_word
                if word is not None:
                    words.append(word)
            texts.append(self.join_with.join(words))
        return texts

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict[str, Any]:
        """Arguments and fitted state, JSON-serialisable (no pickle)."""
        return {"class_name": type(self).__name__, "num_words": self.num_words, "filters": self.filters,
                "lower": self.lower, "split": self.split, "char_level": self.char_level,
                "oov_token": self.oov_token, "document_count": self.document_count,
                "word_counts": self.word_counts, "word_index": self.word_index}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from :meth:`get_config`."""
        tok = cls(**{name: config[name] for name in cls._init_arguments})
        tok.document_count = int(config["document_count"])
        tok.word_counts = {str(k): int(v) for k, v in config["word_counts"].items()}
        tok.word_index = {str(k): int(v) for k, v in config["word_index"].items()}
        tok.index_word = {i: w for w, i in tok.word_index.items()}
        return tok

    def to_json(self) -> str:
        """:meth:`get_config` as a JSON string."""
        return json.dumps(self.get_config(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Rebuild a tokenizer from :meth:`to_json`."""
        return cls.from_config(json.loads(text))

    def _require_fitted(self, method: str) -> None:
        if not self.word_index:
            raise RuntimeError(f"{type(self).__name__}.{method}: the vocabulary is empty; call "
                               f"fit_on_texts(texts) first")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocabulary_size={self.vocabulary_size}, oov_token={self.oov_token!r})"


class CharTokenizer(Tokenizer):
    """Character-level tokenizer for character models: keeps case and every character, joins with ''.

    >>> tok = CharTokenizer()
    >>> tok.fit_on_texts(["hello"])
    >>> tok.word_index
    {'l': 1, 'h': 2, 'e': 3, 'o': 4}
    >>> tok.texts_to_sequences(["hole"]), tok.sequences_to_texts([[2, 4, 1, 3]])
    ([[2, 4, 1, 3]], ['hole'])
    """

    join_with = ""
    _init_arguments = ("num_words", "lower", "oov_token")

    def __init__(self, num_words: int | None = None, lower: bool = False, oov_token: str | None = None) -> None:
        super().__init__(num_words=num_words, filters="", lower=lower, split="", char_level=True,
                         oov_token=oov_token)
