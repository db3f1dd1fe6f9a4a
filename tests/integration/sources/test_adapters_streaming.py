"""Adapters stream: peak memory does not grow with the number of rows or entries.

Files are generated on the fly by a raw stream (nothing on disk), read
through the adapter, and the outcomes dropped as they come, as the batch
loader does in chunks. Peak traced memory at 10x the rows must stay within
what the duplicate-id table needs (12 bytes a slot, see adapters/seen.py),
far below what keeping rows would cost (each row's resources are ~1 kB).
10k vs 100k CSV rows and 1k vs 10k FHIR entries keep the run to about a minute.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from joinedup.sources.adapters import FhirAdapter, adapter_for
from joinedup.sources.contract import Accepted
from joinedup.sources.mapping import FeedSpec, FhirFeedConfig, bundled_mapping
from tests.unit.sources.support import TODAY

pytestmark = pytest.mark.slow


class GeneratedFile(io.RawIOBase):
    """A read-only binary stream whose bytes come from a generator of chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _csv_rows(count: int) -> Iterator[bytes]:
    yield (
        b"PERSON_ID,NHS_NO,FORENAME,SURNAME,DOB,GENDER,ETHNICITY,ADDRESS_LINE_1,ADDRESS_LINE_2,"
        b"TOWN,POSTCODE,PHONE,CLIENT_TYPE,PRIMARY_SUPPORT_REASON,LAST_UPDATED\r\n"
    )
    for i in range(count):
        yield (
            f"{1000000 + i},,Margaret Ann,Smith-Jones,{1 + i % 28:02d}/0{1 + i % 9}/19{30 + i % 60},F,10,"
            f"{i % 90 + 1} Mellstock Drive,,Casterbridge,WX{1 + i % 12} {i % 9}HL,01632 960{i % 1000:03d},"
            "Service User,Physical Support: Personal Care Support,01/02/2026\r\n"
        ).encode()


def _ndjson(count: int) -> Iterator[bytes]:
    for i in range(count):
        yield json.dumps({
            "resourceType": "Patient", "id": f"RWX{i:07d}",
            "identifier": [{"system": "https://fhir.wessex.example/Id/rwx-mrn", "value": f"RWX{i:07d}"}],
            "name": [{"family": "Smith", "given": ["Margaret", "Ann"]}],
            "gender": "female", "birthDate": "1950-02-03",
            "address": [{"line": ["1 High Street"], "city": "Casterbridge", "postalCode": "WX1 5QW"}],
        }).encode() + b"\n"


def _peak(spec: FeedSpec, make: Callable[[int], Iterator[bytes]], count: int) -> int:
    adapter = (
        FhirAdapter(spec, TODAY, read_chunk=1 << 16)  # a small buffer, so both sizes fill it
        if isinstance(spec, FhirFeedConfig)
        else adapter_for(spec.format, spec, today=TODAY)
    )
    stream = io.BufferedReader(GeneratedFile(make(count)), buffer_size=1 << 16)
    tracemalloc.start()
    try:
        seen = 0
        for outcome in adapter.read(stream):
            assert isinstance(outcome, Accepted)
            seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    return peak


def test_csv_memory_is_flat_in_the_number_of_rows() -> None:
    spec = bundled_mapping("WCCASC", "wccasc-persons")
    _peak(spec, _csv_rows, 200)  # warm caches (models, compiled regexes) outside the measure
    small, large = _peak(spec, _csv_rows, 10_000), _peak(spec, _csv_rows, 100_000)
    growth_per_row = (large - small) / 90_000
    assert growth_per_row < 64, (small, large)


def test_fhir_memory_is_flat_in_the_number_of_entries() -> None:
    spec = bundled_mapping("RWX", "rwx-fhir")
    _peak(spec, _ndjson, 50)
    small, large = _peak(spec, _ndjson, 1_000), _peak(spec, _ndjson, 10_000)
    growth_per_entry = (large - small) / 9_000
    assert growth_per_entry < 64, (small, large)
