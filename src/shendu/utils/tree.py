"""Nested structures (lists, tuples, dicts) of leaves: :func:`flatten` and :func:`map_structure`.

A list, tuple or dict is a node; anything else is a leaf. ``None`` is a leaf by default, as in Keras's
``keras.tree`` (a layer may take ``None`` among its arguments). Data handling reads ``None`` as *absent*
instead (``(x, None, None)`` means no targets and no sample weights): pass ``none_is_leaf=False`` and
``None`` contributes no leaf to :func:`flatten` and stays ``None`` in :func:`map_structure`.

>>> flatten([1, (2, None), {"a": 3}])
[1, 2, None, 3]
>>> flatten([1, (2, None)], none_is_leaf=False)
[1, 2]
>>> map_structure(lambda v: v * 10, (1, [2], None), none_is_leaf=False)
(10, [20], None)
"""

from __future__ import annotations

from typing import Any, Callable


def flatten(structure: Any, none_is_leaf: bool = True) -> list[Any]:
    """The leaves of nested lists/tuples/dicts, in order (dicts in their insertion order)."""
    if isinstance(structure, (list, tuple)):
        return [leaf for s in structure for leaf in flatten(s, none_is_leaf)]
    if isinstance(structure, dict):
        return [leaf for v in structure.values() for leaf in flatten(v, none_is_leaf)]
    if structure is None and not none_is_leaf:
        return []
    return [structure]


def map_structure(fn: Callable[[Any], Any], structure: Any, none_is_leaf: bool = True) -> Any:
    """The same nesting with ``fn`` applied to every leaf (lists stay lists, tuples tuples, dicts dicts)."""
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, s, none_is_leaf) for s in structure)
    if isinstance(structure, dict):
        return {k: map_structure(fn, v, none_is_leaf) for k, v in structure.items()}
    if structure is None and not none_is_leaf:
        return None
    return fn(structure)
