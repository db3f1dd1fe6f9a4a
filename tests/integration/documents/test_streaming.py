"""Uploads and downloads stream: memory stays flat whatever the document size.

Measured with tracemalloc (Python allocations, including the bytes the
cipher and hashes produce) on 64 MiB through the local store with the
production chunk size. The 1 GB figure is in benchmarks/documents.py. The S3
store is not measured here: moto's server runs in this process and keeps
every part in memory, which tracemalloc would count; its client holds one
part (``part_size``) at most.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from joinedup.documents.chunks import DEFAULT_CHUNK_SIZE
from joinedup.documents.content import ContentStore
from joinedup.documents.keyring import Keyring, create_master_key
from joinedup.documents.local import LocalBlobStore

MIB = 1024 * 1024
SIZE = 64 * MIB
FLAT = 12 * MIB  # a few chunks in flight, nowhere near the document's size


def _blocks(block: bytes, total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = block[: total - sent]
        sent += len(piece)
        yield piece


def test_stage_and_read_64_mib_in_flat_memory(tmp_path: Path) -> None:
    store = ContentStore(
        LocalBlobStore(tmp_path / "docs"),
        Keyring.of(create_master_key(tmp_path / "keys")),
        chunk_size=DEFAULT_CHUNK_SIZE,
    )
    block = os.urandom(MIB)
    tracemalloc.start()
    try:
        info = store.put(_blocks(block, SIZE))
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        with store.open(info.content_id) as reader:
            for chunk in reader:
                total += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with store.open(info.content_id, 20 * MIB + 3, 40 * MIB) as reader:
            ranged = sum(len(chunk) for chunk in reader)
        _, range_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total == SIZE
    assert ranged == 20 * MIB - 3
    assert write_peak < FLAT, f"staging peaked at {write_peak / MIB:.1f} MiB"
    assert read_peak < FLAT, f"reading peaked at {read_peak / MIB:.1f} MiB"
    assert range_peak < FLAT, f"range read peaked at {range_peak / MIB:.1f} MiB"
