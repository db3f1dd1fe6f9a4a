"""Hashing beside the cipher: each hash on its own thread, fed the same blocks.

SHA-1 (like any SHA) costs several times what AES-GCM does per byte, and
``hashlib`` releases the GIL while it hashes a large block, so hashing on
worker threads lets it overlap encryption, decryption and disk I/O on the
calling thread. Queues are bounded (``depth`` blocks), so memory stays flat:
a slow hash makes the producer wait rather than buffer. Blocks must be
immutable ``bytes`` (a caller's bytearray could change under the hash).
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


_STOP = object()
INLINE_HASH_BYTES = 4 * 1024 * 1024
"""How much to hash on the calling thread before starting a hash thread: for a small
document starting one costs more than it saves."""


class ParallelDigests:
    """Feed ``update`` blocks to every hash; ``digests`` waits and returns them in order.

    The first ``inline_bytes`` are hashed on the calling thread and the threads start
    only after them: a small document never pays for starting one. Those first blocks
    are hashed when needed (``digests``, or when the threads start), so the caller can
    start its disk work first (they are immutable ``bytes``, kept by reference)."""

    def __init__(
        self, *hashes: Hash, depth: int = 4, inline_bytes: int = 0, defer: bool = True
    ) -> None:
        self._hashes = hashes
        self._depth = depth
        self._inline = inline_bytes
        self._defer = defer
        """Hold the inline blocks until needed (a writer overlapping them with its fsync);
        False hashes them at once (a reader overlapping them with the disk's read-ahead)."""
        self._queues: list[queue.Queue[Any]] = []
        self._threads: list[threading.Thread] = []
        self._held: list[bytes] = []
        self._open = True
        if inline_bytes <= 0:
            self._start()

    def _hash_held(self) -> None:
        for block in self._held:
            for hash_ in self._hashes:
                hash_.update(block)
        self._held = []

    def _start(self) -> None:
        self._hash_held()
        self._queues = [queue.Queue(maxsize=self._depth) for _ in self._hashes]
        self._threads = [
            threading.Thread(target=self._run, args=(h, q), name="joinedup-digest", daemon=True)
            for h, q in zip(self._hashes, self._queues, strict=True)
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _run(hash_: Hash, blocks: queue.Queue[Any]) -> None:
        while (block := blocks.get()) is not _STOP:
            hash_.update(block)

    def update(self, block: bytes) -> None:
        if not self._open:
            raise RuntimeError("digests already finished")
        if not self._threads:
            if self._inline > 0:
                self._inline -= len(block)
                if self._defer:
                    self._held.append(block)
                else:
                    for hash_ in self._hashes:
                        hash_.update(block)
                return
            self._start()
        for blocks in self._queues:
            blocks.put(block)

    def digests(self) -> list[bytes]:
        self.close()
        self._hash_held()
        return [h.digest() for h in self._hashes]

    def close(self) -> None:
        """Stop the threads (after they finish what was queued). Safe to call twice."""
        if not self._open:
            return
        self._open = False
        for blocks in self._queues:
            blocks.put(_STOP)
        for thread in self._threads:
            thread.join()
