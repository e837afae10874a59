"""The data pipeline: datasets, a batching DataLoader, splitting, padding and tokenizers.

``to_categorical`` lives in :mod:`shendu.utils`, as in Keras, and is re-exported here.
"""

from shendu.data.collate import default_collate
from shendu.data.dataset import Dataset, Subset, TensorDataset, random_split
from shendu.data.loader import DataLoader
from shendu.data.sequence import pad_sequences
from shendu.data.text import CharTokenizer, Tokenizer, text_to_word_sequence
from shendu.utils import to_categorical

__all__ = ["CharTokenizer", "DataLoader", "Dataset", "Subset", "TensorDataset", "Tokenizer", "default_collate",
           "pad_sequences", "random_split", "text_to_word_sequence", "to_categorical"]
