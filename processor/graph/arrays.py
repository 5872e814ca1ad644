"""Compact containers for the whole-graph index: growable numpy arrays, a hash table from 64-bit keys
to node numbers, and a string store. Tens of bytes per action instead of hundreds for Python objects."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt

EMPTY = np.uint64(0)


def key64(text: str) -> int:
    """A stable 64-bit key (the same in every process, so it can be checkpointed); never 0."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") or 1


class Growable:
    """A numpy array with amortized O(1) append."""

    def __init__(self, dtype: npt.DTypeLike, capacity: int = 1024) -> None:
        self._data = np.zeros(capacity, dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, value: Any) -> int:
        if self._size == len(self._data):
            self._data = np.resize(self._data, max(1024, 2 * len(self._data)))
        self._data[self._size] = value
        self._size += 1
        return self._size - 1

    def __getitem__(self, index: int) -> Any:
        return self._data[index]

    def view(self) -> npt.NDArray[Any]:
        return self._data[: self._size]

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    @classmethod
    def of(cls, values: npt.NDArray[Any]) -> Growable:
        g = cls(values.dtype, max(1024, len(values)))
        g._data[: len(values)] = values
        g._size = len(values)
        return g


class HashIndex:
    """uint64 key -> int32 value, open addressing with linear probing, kept at most half full."""

    def __init__(self, capacity: int = 1024) -> None:
        self.keys = np.zeros(capacity, dtype=np.uint64)
        self.values = np.full(capacity, -1, dtype=np.int32)
        self.size = 0

    def _slot(self, key: int) -> int:
        mask = len(self.keys) - 1
        slot = key & mask
        keys = self.keys
        while keys[slot] != EMPTY and keys[slot] != key:
            slot = (slot + 1) & mask
        return slot

    def get(self, key: int) -> int:
        return int(self.values[self._slot(key)])

    def put(self, key: int, value: int) -> None:
        if 2 * (self.size + 1) > len(self.keys):
            self._grow()
        slot = self._slot(key)
        if self.keys[slot] == EMPTY:
            self.keys[slot] = key
            self.size += 1
        self.values[slot] = value

    def _grow(self) -> None:
        old_keys, old_values = self.keys[self.keys != EMPTY], self.values[self.keys != EMPTY]
        self.keys = np.zeros(2 * len(self.keys), dtype=np.uint64)
        self.values = np.full(len(self.keys), -1, dtype=np.int32)
        self.size = 0
        for k, v in zip(old_keys.tolist(), old_values.tolist(), strict=True):
            self.put(k, v)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.values.nbytes)

    @classmethod
    def of(cls, keys: npt.NDArray[np.uint64], values: npt.NDArray[np.int32]) -> HashIndex:
        table = cls(len(keys))
        table.keys, table.values = keys.copy(), values.copy()
        table.size = int(np.count_nonzero(keys))
        return table


class StringStore:
    """Strings packed in one byte buffer with offsets: ~8 bytes of overhead per string."""

    def __init__(self) -> None:
        self._blob = bytearray()
        self._ends = Growable(np.int64)

    def __len__(self) -> int:
        return len(self._ends)

    def append(self, text: str) -> int:
        self._blob += text.encode()
        return self._ends.append(len(self._blob))

    def __getitem__(self, index: int) -> str:
        start = int(self._ends[index - 1]) if index else 0
        return self._blob[start : int(self._ends[index])].decode()

    @property
    def nbytes(self) -> int:
        return len(self._blob) + self._ends.nbytes

    def arrays(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        return np.frombuffer(bytes(self._blob), dtype=np.uint8), self._ends.view().copy()

    @classmethod
    def of(cls, blob: npt.NDArray[np.uint8], ends: npt.NDArray[np.int64]) -> StringStore:
        s = cls()
        s._blob = bytearray(blob.tobytes())
        s._ends = Growable.of(ends)
        return s
