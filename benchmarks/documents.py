"""Document content store throughput and memory, beside the raw disk in the same run.

    python benchmarks/documents.py                # 1 MB x 100, 100 MB x 3, 1 GB memory check
    python benchmarks/documents.py --quick        # 1 MB x 20, 100 MB x 1, 256 MB memory check
    python benchmarks/documents.py --large-mb 20 --memory-mb 0 --rounds 1
    python benchmarks/documents.py --dir /srv/joinedup/bench   # measure another disk

Publish is stage + commit (SHA-1 over the plaintext, AES-256-GCM in 1 MiB
chunks, data key wrapped by a master key, all in one file on the local store:
envelope header + chunks; fsync, atomic rename, folder fsync);
retrieve is a whole-document read (every chunk's tag and the SHA-1 checked).
"Raw" writes the same bytes to a new file in the same folder and makes it
durable the way a publish is (fsync the file, then its folder: without the
folder's fsync a crash can lose a new file's name), and reads them back; "raw,
file fsync only" (not crash-safe for a new file) is shown beside it.

Page-cache state, the same for both sides: every write goes to a new file (ours
through a staged file renamed into place), with nothing of it cached before.
Before the read pass every file of the round, raw and ours, is fsynced and
dropped from the page cache (posix_fadvise DONTNEED), so both reads come from
the disk, not memory; the kernel's read-ahead (the device's read_ahead_kb) is
the same for both, and ours also asks for 8 MiB ahead. What the host caches
beneath a virtual disk is not controlled, for either side. Documents are
written raw and published back to back in alternating order, and read back
likewise, so each pair meets the same disk and load.

Besides the ratio of the summed speeds, each row shows the median over document
pairs of raw time / our time (less swayed by another process's burst landing
on one side), and the CPU time per MB of each side (all threads of this
process): ours is mostly SHA-1, AES-GCM and copies, the raw read almost none,
so on a loaded machine our share of the cores, not the disk, sets our speed.
The load average is printed at the start and the end.

Peak memory is the peak RSS of a fresh process that publishes then retrieves
one document of --memory-mb, with the process's RSS after start-up shown
beside it. MB = 10^6 bytes. The figures vary with the machine and its load:
run on a quiet one, and compare each row with its own raw column.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from joinedup.documents.chunks import DEFAULT_CHUNK_SIZE, ChunkCipher
from joinedup.documents.content import ContentStore
from joinedup.documents.digests import ParallelDigests
from joinedup.documents.keyring import Keyring, create_master_key
from joinedup.documents.local import LocalBlobStore

MB = 1_000_000
BLOCK = 1024 * 1024
POOL = os.urandom(16 * BLOCK)  # the source bytes: random, and not one block repeated


def source(size: int, seed: int = 0) -> Iterator[bytes]:
    """``size`` bytes in 1 MiB blocks, drawn from the random pool (no per-byte Python work)."""
    sent = 0
    index = seed
    pool = memoryview(POOL)
    while sent < size:
        start = (index % 16) * BLOCK
        piece = pool[start : start + min(BLOCK, size - sent)]
        sent += len(piece)
        index += 1
        yield bytes(piece)


def evict(folder: Path) -> None:
    """Drop a folder's files from the page cache so the next read goes to the disk."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def raw_write(path: Path, size: int, seed: int, *, durable: bool = True) -> None:
    with path.open("wb") as file:
        for block in source(size, seed):
            file.write(block)
        file.flush()
        os.fsync(file.fileno())
    if durable:  # the new name survives a crash only once its folder is fsynced
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def raw_read(path: Path) -> int:
    total = 0
    with path.open("rb") as file:
        while block := file.read(BLOCK):
            total += len(block)
    return total


def new_store(folder: Path) -> ContentStore:
    key = create_master_key(folder / "keys")
    return ContentStore(LocalBlobStore(folder / "store"), Keyring.of(key), max_bytes=8 * 1024**3)


NAMES = ("publish", "raw_write", "retrieve", "raw_read", "raw_plain")


@dataclass
class Row:
    label: str
    publish: float
    raw_write: float
    retrieve: float
    raw_read: float
    raw_plain: float
    paired_publish: float
    """Median over documents of raw durable write time / publish time."""
    paired_retrieve: float
    """Median over documents of raw read time / retrieve time."""
    cpu: dict[str, float]
    """Process CPU milliseconds per MB, each side."""


@dataclass
class Round:
    seconds: dict[str, float]
    cpu: dict[str, float]
    each: dict[str, list[float]]
    """Seconds per document, in document order."""


def one_round(work: Path, size: int, count: int, flip: int) -> Round:
    """Seconds (wall and CPU) spent by each side on ``count`` documents of ``size`` bytes."""
    raw = work / "raw"
    raw.mkdir(parents=True)
    store = new_store(work)
    seconds = dict.fromkeys(NAMES, 0.0)
    cpu = dict.fromkeys(NAMES, 0.0)
    each: dict[str, list[float]] = {name: [] for name in NAMES}
    ids: list[str] = []

    def publish(i: int) -> None:
        ids.append(store.put(source(size, i), expected_size=size).content_id)

    def retrieve(i: int) -> None:
        with store.open(ids[i]) as reader:
            assert sum(len(chunk) for chunk in reader) == size

    def write_raw(i: int) -> None:
        raw_write(raw / f"doc-{i}", size, i)

    def write_plain(i: int) -> None:
        raw_write(raw / f"plain-{i}", size, i, durable=False)

    def read_raw(i: int) -> None:
        assert raw_read(raw / f"doc-{i}") == size

    writes = [("raw_write", write_raw), ("publish", publish), ("raw_plain", write_plain)]
    reads = [("raw_read", read_raw), ("retrieve", retrieve)]
    for pair in (writes, reads):
        if pair is reads:
            evict(work)
        for i in range(count):
            for name, action in pair if (i + flip) % 2 else reversed(pair):
                start, start_cpu = time.perf_counter(), time.process_time()
                action(i)
                spent = time.perf_counter() - start
                cpu[name] += time.process_time() - start_cpu
                seconds[name] += spent
                each[name].append(spent)
    return Round(seconds, cpu, each)


def measure(folder: Path, size: int, count: int, rounds: int) -> Row:
    """MB/s for publish, raw write, retrieve and raw read, each summed over the documents.

    Each document is written raw and published back to back (order alternating),
    and read back likewise, so both sides of a ratio meet the same disk and load.
    The median over rounds is shown.
    """
    speeds: dict[str, list[float]] = {name: [] for name in NAMES}
    cpu = dict.fromkeys(NAMES, 0.0)
    pairs: dict[str, list[float]] = {"publish": [], "retrieve": []}
    for round_no in range(rounds):
        work = folder / f"round-{size}-{round_no}"
        result = one_round(work, size, count, round_no)
        shutil.rmtree(work)
        for name, spent in result.seconds.items():
            speeds[name].append(size * count / MB / spent)
            cpu[name] += result.cpu[name]
        for ours, raw in (("publish", "raw_write"), ("retrieve", "raw_read")):
            pairs[ours] += [r / o for r, o in zip(result.each[raw], result.each[ours], strict=True)]
    megabytes = size * count * rounds / MB
    return Row(
        f"{size / MB:g} MB x {count}",
        *(statistics.median(speeds[k]) for k in NAMES),
        statistics.median(pairs["publish"]),
        statistics.median(pairs["retrieve"]),
        {name: 1000 * spent / megabytes for name, spent in cpu.items()},
    )


def cpu_ceiling(size: int) -> float:
    """MB/s of the per-byte work of publishing (SHA-1 and AES-GCM), with no disk at all."""
    cipher = ChunkCipher(os.urandom(32), os.urandom(7), "0" * 32, DEFAULT_CHUNK_SIZE)
    start = time.perf_counter()
    digests = ParallelDigests(hashlib.sha1())  # as staging does
    for i, block in enumerate(source(size)):
        digests.update(block)
        cipher.seal(i, False, block)
    digests.digests()
    return size / MB / (time.perf_counter() - start)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_child(folder: Path, size: int) -> None:
    """Run in a fresh process: publish then retrieve one document; print RSS figures."""
    store = new_store(folder)
    start_rss = max_rss_mb()
    info = store.put(source(size), expected_size=size)
    after_publish = max_rss_mb()
    with store.open(info.content_id) as reader:
        assert sum(len(chunk) for chunk in reader) == size
    print(json.dumps({"start": start_rss, "publish": after_publish, "retrieve": max_rss_mb()}))


def memory(folder: Path, size: int) -> dict[str, float]:
    work = folder / "memory"
    work.mkdir()
    out = subprocess.run(
        [sys.executable, __file__, "--child-memory", str(size), "--dir", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(work)
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller: 1 MB x 20, 100 MB x 1, 256 MB memory"
    )
    parser.add_argument("--small-count", type=int, help="how many 1 MB documents (100)")
    parser.add_argument("--large-mb", type=float, default=100, help="size of the large document")
    parser.add_argument("--large-count", type=int, help="how many large documents (3)")
    parser.add_argument("--memory-mb", type=float, help="memory check size, 0 skips (1000)")
    parser.add_argument("--rounds", type=int, help="repeats; the median is shown (3)")
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure")
    parser.add_argument("--child-memory", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_memory:
        memory_child(args.dir, args.child_memory)
        return
    defaults = (20, 1, 256, 1) if args.quick else (100, 3, 1000, 3)
    for name, default in zip(
        ("small_count", "large_count", "memory_mb", "rounds"), defaults, strict=True
    ):
        if getattr(args, name) is None:
            setattr(args, name, default)

    folder = Path(tempfile.mkdtemp(prefix="documents-bench-", dir=args.dir))
    try:
        print(
            f"joinedup document store benchmark  (folder {folder}, {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f})"
        )
        print(f"CPU ceiling of hashing + encryption alone: {cpu_ceiling(100 * MB):.0f} MB/s\n")
        rows = [
            measure(folder, MB, args.small_count, args.rounds),
            measure(folder, int(args.large_mb * MB), args.large_count, args.rounds),
        ]
        head = f"{'documents':<14}{'publish':>10}{'raw write':>11}{'ratio':>8}   {'retrieve':>10}{'raw read':>10}{'ratio':>8}"
        print(head)
        print("-" * len(head))
        for r in rows:
            print(
                f"{r.label:<14}{r.publish:>7.0f} MB/s{r.raw_write:>6.0f} MB/s{r.publish / r.raw_write:>7.0%}"
                f"   {r.retrieve:>5.0f} MB/s{r.raw_read:>5.0f} MB/s{r.retrieve / r.raw_read:>7.0%}"
            )
        print("goal: ratio >= 50% (publish vs raw write, retrieve vs raw read)")
        for r in rows:
            print(f"  {r.label}: median over document pairs: publish {r.paired_publish:.0%}, "
                  f"retrieve {r.paired_retrieve:.0%}")
        print("CPU ms per MB (all threads):")
        for r in rows:
            c = r.cpu
            print(f"  {r.label}: publish {c['publish']:.2f} (raw write {c['raw_write']:.2f}), "
                  f"retrieve {c['retrieve']:.2f} (raw read {c['raw_read']:.2f})")
        for r in rows:
            print(f"  {r.label}: raw write with the file fsync only {r.raw_plain:.0f} MB/s "
                  f"(publish is {r.publish / r.raw_plain:.0%} of it)")
        print()
        if args.memory_mb:
            size = int(args.memory_mb * MB)
            figures = memory(folder, size)
            print(f"peak RSS, one {size / MB:g} MB document (goal < 200 MB):")
            print(f"  after start-up   {figures['start']:6.0f} MB")
            print(f"  publish          {figures['publish']:6.0f} MB")
            print(f"  publish+retrieve {figures['retrieve']:6.0f} MB")
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
