"""meta.source, meta.security labels and the content hash."""

from __future__ import annotations

from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM, DataCategory, Sensitivity
from joinedup.records.provenance import (
    Labels,
    SourceRef,
    content_hash,
    is_withdrawn,
    read_labels,
    withdrawn,
)


def test_source_uri_round_trip() -> None:
    ref = SourceRef("WCCASC", "wccasc-persons", "b20261122T101500-3f2a9c", 17)
    assert ref.uri == "urn:joinedup:source:WCCASC/wccasc-persons/b20261122T101500-3f2a9c#17"
    assert SourceRef.parse(ref.uri) == ref


def _with(*codings: dict[str, str]) -> dict[str, object]:
    return {"resourceType": "Patient", "meta": {"security": list(codings)}}


def test_labels_are_read_and_checked() -> None:
    cat = {"system": CATEGORY_SYSTEM, "code": "mental-health"}
    conf = {"system": CONFIDENTIALITY_SYSTEM, "code": "R"}
    assert read_labels(_with(cat, conf)) == (
        Labels(DataCategory.MENTAL_HEALTH, Sensitivity.RESTRICTED),
        [],
    )
    assert read_labels(_with(cat))[0] == Labels(DataCategory.MENTAL_HEALTH, Sensitivity.NORMAL)
    _, problems = read_labels(_with(conf, {"system": CONFIDENTIALITY_SYSTEM, "code": "X"}))
    assert [p.message for p in problems] == [
        "needs exactly one data category label, has 0",
        "has more than one sensitivity label",
    ]
    _, problems = read_labels(_with({"system": CATEGORY_SYSTEM, "code": "gossip"}))
    assert problems[0].message == "unknown data category 'gossip'"


def test_labels_in_the_adapters_order_read_as_in_any_other() -> None:
    # category then sensitivity is read by a shortcut; the result must not depend on it
    cat = {"system": CATEGORY_SYSTEM, "code": "carers"}
    conf = {"system": CONFIDENTIALITY_SYSTEM, "code": "V"}
    other = {"system": "https://example.org/tags", "code": "x"}
    expected = (Labels(DataCategory.CARERS, Sensitivity.VERY_RESTRICTED), [])
    assert read_labels(_with(cat, conf)) == expected
    assert read_labels(_with(conf, cat)) == expected
    assert read_labels(_with(cat, other, conf)) == expected
    _, problems = read_labels(_with({**cat, "code": "gossip"}, conf))
    assert [p.message for p in problems] == ["unknown data category 'gossip'"]
    _, problems = read_labels(_with(cat, {**conf, "code": "Q"}))
    assert [p.message for p in problems] == ["unknown sensitivity 'Q' (N, R or V)"]
    _, problems = read_labels(_with(cat, cat))
    assert [p.message for p in problems] == ["needs exactly one data category label, has 2"]


def test_content_hash_ignores_what_the_store_sets() -> None:
    a = {"resourceType": "Patient", "id": "p1", "gender": "female", "meta": {"security": []}}
    b = {
        "gender": "female",
        "id": "p1",
        "resourceType": "Patient",
        "meta": {
            "security": [],
            "versionId": "3",
            "lastUpdated": "2026-01-01T00:00:00Z",
            "source": "x",
        },
    }
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash({**a, "gender": "male"})


def test_withdrawn_versions_are_tagged_and_inactive() -> None:
    p = {"resourceType": "Patient", "id": "p1", "active": True, "meta": {}}
    w = withdrawn(p)
    assert is_withdrawn(w)
    assert w["active"] is False
    assert not is_withdrawn(p)
    assert content_hash(w) != content_hash(p)
    c = withdrawn({"resourceType": "Condition", "id": "c1"})
    assert "active" not in c
    assert withdrawn(w)["meta"]["tag"] == w["meta"]["tag"]  # not tagged twice
