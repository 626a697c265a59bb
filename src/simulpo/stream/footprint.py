"""Bytes an episode holds: how the memory tests and the long-stream benchmark see growth.

Process RSS is a poor measure of what one stream keeps (allocators keep freed pages, other
threads allocate, tensors live outside Python's allocator, which ``tracemalloc`` does
not see). :func:`held_bytes` counts instead what is reachable from the objects given:
every Python object once (``sys.getsizeof``, which includes a NumPy array's own data; a
view leads to the array it views), and every tensor's storage once (its ``nbytes``,
shared by views). It is deterministic,
so a test can bound the growth per turn exactly.
"""

from __future__ import annotations

import gc
import sys
import types
from typing import Any

import numpy as np
import torch

#: objects that are code or shared machinery, not data an episode holds: not entered
_SKIPPED = (type, types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType,
            types.CodeType, types.FrameType, torch.nn.Module)  # fmt: skip


def held_bytes(*roots: Any) -> int:
    """Bytes reachable from ``roots``: Python objects and tensor storages, each counted
    once; classes, modules, functions and ``nn.Module``s (a model) are not entered."""
    seen: set[int] = set()
    storages: set[int] = set()
    total = 0
    todo = list(roots)
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, _SKIPPED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in storages:
                storages.add(storage.data_ptr())
                total += storage.nbytes()
            continue
        if isinstance(obj, np.ndarray):  # not tracked by gc: its referent is its base
            if obj.base is not None:
                todo.append(obj.base)
            continue
        todo.extend(gc.get_referents(obj))
    return total


__all__ = ["held_bytes"]
