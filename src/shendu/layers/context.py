"""The state of the layer call in progress, per thread: the training flag, the nesting depth and which
top-level call this is.

``Layer.__call__`` reads and sets it so that a nested ``training=None`` inherits the enclosing call's flag,
and so that losses added with ``add_loss`` belong to one forward pass. The state is thread-local (as grad
mode is, :mod:`shendu.autograd.grad_mode`): a model that trains in one thread never switches Dropout on in a
``predict`` running in another, and each thread's forward passes get their own loss records. Call ids come
from one process-wide counter, so ids from two threads never coincide.

>>> ctx = call_context()
>>> ctx.depth, ctx.training
(0, None)
"""

from __future__ import annotations

import itertools
import threading

_CALL_IDS = itertools.count(1)  # next() on a count is atomic in CPython: ids are unique across threads


class CallContext(threading.local):
    """What an outer ``__call__`` tells the nested ones, in the current thread."""

    training: bool | None = None  # the enclosing call's training flag (None outside any call)
    depth = 0  # how many layer calls are in progress
    call_id = 0  # the id of the latest top-level call in this thread


_CONTEXT = CallContext()


def call_context() -> CallContext:
    """The current thread's call state."""
    return _CONTEXT


def next_call_id() -> int:
    """A new id for a top-level call, unique in the process."""
    return next(_CALL_IDS)
