"""Saving nested state dicts (optimisers, schedulers, modules) to one ``.npz`` without pickle.

:func:`save` writes every NumPy array of a nested structure of dicts, lists,
tuples, ``collections.Counter``, arrays, NumPy scalars, and Python scalars and
strings as its own ``.npz`` entry, and the structure around them as tagged
JSON (one more entry, ``__state__``); :func:`load` rebuilds it, loaded with
``allow_pickle=False`` so that reading a file never runs code. It is the
format of :meth:`fastconv.optim.Optimizer.save` and of the schedulers'
``save``; ``save({"model": m.state_dict(), "optimizer": opt.state_dict()},
path)`` keeps a whole training checkpoint in one file.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import numpy as np

__all__ = ["STATE_KEY", "load", "save"]

# The entry holding the structure (a file without it is not in this format).
STATE_KEY = "__state__"


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> list:
    """``[tag, payload]``; each array goes into ``arrays`` under a fresh key."""
    if isinstance(value, np.ndarray):
        key = f"array{len(arrays)}"
        arrays[key] = value
        return ["ndarray", key]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return ["value", value]
    if isinstance(value, (tuple, list)):
        return [type(value).__name__, [_encode(v, arrays) for v in value]]
    if isinstance(value, dict):
        tag = "Counter" if isinstance(value, Counter) else "dict"
        return [tag, [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]]
    raise TypeError(
        f"save: cannot store a value of type {type(value).__name__} "
        "(dicts, lists, tuples, NumPy arrays, numbers, strings and None only)"
    )


def _decode(item: list, arrays: Any) -> Any:
    tag, payload = item
    if tag == "value":
        return payload
    if tag == "ndarray":
        return arrays[payload]
    if tag in ("tuple", "list"):
        return {"tuple": tuple, "list": list}[tag](_decode(v, arrays) for v in payload)
    if tag in ("dict", "Counter"):
        pairs = ((_decode(k, arrays), _decode(v, arrays)) for k, v in payload)
        return Counter(dict(pairs)) if tag == "Counter" else dict(pairs)
    raise ValueError(f"load: unknown entry {tag!r} in the saved state")


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write a nested state (e.g. an optimiser's ``state_dict()``) to an ``.npz`` file.

    Raises
    ------
    TypeError
        For a value that is not a dict, list, tuple, array, number, string or None.
    """
    arrays: dict[str, np.ndarray] = {}
    text = json.dumps(_encode(obj, arrays))
    np.savez(path, **{STATE_KEY: np.array(text)}, **arrays)


def load(path: str | os.PathLike) -> Any:
    """Read a state written by :func:`save` (``.npz`` appended to ``path`` if missing).

    Arrays come back as they were saved (dtype and shape); tuples, ``Counter``
    and integer dict keys are restored.
    """
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".npz"):
        path += ".npz"
    with np.load(path, allow_pickle=False) as f:
        if STATE_KEY not in f.files:
            raise ValueError(f"load: {path} was not written by fastconv.optim's save")
        arrays = {k: f[k] for k in f.files if k != STATE_KEY}
        return _decode(json.loads(str(f[STATE_KEY])), arrays)
