"""Which source ids a file has already had, in a few bytes per id.

Duplicate source ids within one file are rejected (the second one), so the
adapter must remember every id it has seen. A Python set of strings costs
about 100 bytes per id; this open-addressing table keeps a 64-bit BLAKE2b
fingerprint and the row number, 12 bytes a slot at most 60 % full, so a
10-million-row file needs about 200 MB at worst rather than a gigabyte, and
the memory held per row stays a small constant (no row data is kept).

Two different ids share a fingerprint with probability about n²/2⁶⁵ (3 in a
million for ten million rows); the second would be rejected as a duplicate,
quarantined with its reason, and can be reprocessed: never silently lost.
"""

from __future__ import annotations

from array import array
from hashlib import blake2b


class SeenIds:
    def __init__(self, capacity: int = 1024) -> None:
        size = 1
        while size < capacity:
            size *= 2
        self._keys = array("Q", bytes(8 * size))
        self._rows = array("I", bytes(4 * size))
        self._mask = size - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, source_id: str, row: int) -> int | None:
        """Remember ``source_id`` at ``row``; the earlier row if it was seen before, else None."""
        fingerprint = int.from_bytes(
            blake2b(source_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
        ) or 1
        keys, mask = self._keys, self._mask
        i = fingerprint & mask
        while True:
            found = keys[i]
            if found == 0:
                keys[i] = fingerprint
                self._rows[i] = row
                self._count += 1
                if self._count * 5 > (mask + 1) * 3:
                    self._grow()
                return None
            if found == fingerprint:
                return int(self._rows[i])
            i = (i + 1) & mask

    def _grow(self) -> None:
        old_keys, old_rows = self._keys, self._rows
        size = (self._mask + 1) * 2
        self._keys = keys = array("Q", bytes(8 * size))
        self._rows = rows = array("I", bytes(4 * size))
        self._mask = mask = size - 1
        for key, row in zip(old_keys, old_rows, strict=True):
            if key:
                i = key & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = key
                rows[i] = row
