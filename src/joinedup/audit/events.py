"""Audit events: immutable values, their canonical serialisation, and the chain hash.

An event is what happened (``action``), who did it (``actor``), why
(``purpose``), to whom (``persons``: the person index's ids, never names or
NHS numbers), to what (``resources``), how it came out (``outcome``,
``reasons``, ``obligations``), under which request, and whether the glass was
broken. The log gives it a ``seq`` when it is committed.

The canonical form is JSON with sorted keys, no whitespace, UTF-8, every field
present (``null`` when empty) and times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.
The chain hash of event N is ``SHA-256(hash(N-1) || canonical(N))`` over the
raw 32-byte previous digest; the first event follows ``GENESIS_HASH``.
Verification hashes the stored bytes, so it never depends on re-serialising.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from joinedup.access.purposes import Purpose
from joinedup.nhs_number import is_valid as is_nhs_number

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the very first event of a log."""

_MAX_ID = 80
_MAX_REF = 200
_MAX_TEXT = 1000
_SPACE = re.compile(r"\s").search
"""Finds the characters ``str.isspace`` calls whitespace (one C scan, not a loop)."""
_NHS_LIKE = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")


class AuditAction(StrEnum):
    """Stable action codes: they are stored in hashed events, so never renamed."""

    ACCESS_DECISION = "access.decision"
    RECORD_READ = "record.read"
    RECORD_SEARCH = "record.search"
    RECORD_WRITE = "record.write"
    DOCUMENT_READ = "document.read"
    DOCUMENT_PUBLISH = "document.publish"
    DOCUMENT_UPDATE = "document.update"
    """A document's status changed (deprecated, entered-in-error), with the reason's version."""
    BREAK_GLASS = "break-glass"
    """One per emergency request, permitted or not; each needs an IG review."""
    RELATIONSHIP_DECLARE = "relationship.declare"
    INGEST_BATCH = "ingest.batch"
    AGREEMENT_CHANGE = "agreement.change"
    CONSENT_CHANGE = "consent.change"
    PERSON_LINK = "person.link"
    PERSON_MERGE = "person.merge"
    PERSON_UNMERGE = "person.unmerge"
    ORG_CHANGE = "org.change"
    KEY_CHANGE = "key.change"
    AUDIT_ARCHIVE = "audit.archive"
    AUDIT_REVIEW = "audit.review"
    """An IG lead's review of a break-glass event (``detail.reviewed_seq``)."""
    AUDIT_QUERY = "audit.query"
    """Someone read the audit log itself (reports, searches, access reports)."""
    ACCESS_EXPLAIN = "access.explain"
    """Someone asked what a requester may see of a person (``joinedup access explain``)."""


READ_ACTIONS = frozenset(
    {AuditAction.RECORD_READ, AuditAction.RECORD_SEARCH, AuditAction.DOCUMENT_READ}
)
"""Reads served: what the person's access report and the volume report count."""


class Outcome(StrEnum):
    PERMIT = "permit"
    DENY = "deny"
    SUCCESS = "success"
    FAILURE = "failure"


class ReviewOutcome(StrEnum):
    """An IG lead's finding on a break-glass event."""

    APPROPRIATE = "appropriate"
    INAPPROPRIATE = "inappropriate"
    REFERRED = "referred"
    """Passed on (e.g. to the Caldicott Guardian or HR) for follow-up."""


SELF_DECLARED_REASON = "self-declared-relationship"
"""The access decision reason code that marks a permit on a self-declared
relationship (``joinedup.access.decisions.ReasonCode.SELF_DECLARED_RELATIONSHIP``)."""


def format_time(value: datetime) -> str:
    """The canonical UTC time text (fixed width, microseconds, ``Z``)."""
    if value.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def contains_nhs_number(text: str) -> bool:
    """True if ``text`` holds something that passes the NHS number check."""
    return any(is_nhs_number(m.group()) for m in _NHS_LIKE.finditer(text))


def _frozen_json(
    value: Mapping[str, Any] | None, name: str, problems: list[str]
) -> tuple[dict[str, Any], bytes]:
    """A detached, JSON-only copy (orjson round trip) and its JSON text, or a problem noted."""
    if value is None or not value:
        return {}, b""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        problems.append(f"{name}: not JSON ({exc})")
        return {}, b""
    copy = orjson.loads(text)
    if not isinstance(copy, dict):
        problems.append(f"{name}: must be a JSON object")
        return {}, b""
    return copy, text


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: the organisation, its client system, and the practitioner and
    role from the verified token. Ids only; names are looked up when shown."""

    org: str | None
    client_id: str | None = None
    practitioner: str | None = None
    role: str | None = None

    def problems(self) -> list[str]:
        found = []
        if not (self.org or self.client_id):
            found.append("actor: names neither an organisation nor a client system")
        for name in ("org", "client_id", "practitioner", "role"):
            value = getattr(self, name)
            if value is not None and (not value.strip() or len(value) > _MAX_ID):
                found.append(f"actor.{name}: must be 1 to {_MAX_ID} characters")
        return found

    def as_dict(self) -> dict[str, str | None]:
        return {
            "org": self.org,
            "client_id": self.client_id,
            "practitioner": self.practitioner,
            "role": self.role,
        }


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened, before the log gives it a seq.

    Validated on construction (every problem reported at once, as ValueError:
    a bad event is a bug in the caller, not a user error). ``persons`` are
    stored sorted and de-duplicated; ``reasons`` keep their order (the first
    decided).
    """

    action: AuditAction
    actor: Actor
    outcome: Outcome
    purpose: Purpose | None = None
    persons: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    obligations: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    break_glass: bool = False
    break_glass_reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    """Action-specific ids and counts (agreement id and version, batch id, the
    reviewed seq, ...). Never personal data."""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    _prefix: bytes = field(init=False, repr=False, compare=False)
    _suffix: bytes = field(init=False, repr=False, compare=False)
    columns: tuple[Any, ...] = field(init=False, repr=False, compare=False)
    """The filter columns the store writes beside the body, computed once:
    (time text, action, outcome, org, client_id, practitioner, role, purpose,
    break_glass, subject_seq)."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        set_ = object.__setattr__
        try:
            set_(self, "action", AuditAction(self.action))
        except ValueError:
            problems.append(f"action: unknown code {self.action!r}")
        try:
            set_(self, "outcome", Outcome(self.outcome))
        except ValueError:
            problems.append(f"outcome: unknown code {self.outcome!r}")
        if self.purpose is not None:
            try:
                set_(self, "purpose", Purpose(self.purpose))
            except ValueError:
                problems.append(f"purpose: unknown code {self.purpose!r}")
        if not isinstance(self.actor, Actor):
            problems.append("actor: must be an Actor")
        else:
            problems += self.actor.problems()
        if not isinstance(self.time, datetime) or self.time.tzinfo is None:
            problems.append("time: must be a timezone-aware datetime")
        else:
            set_(self, "time", self.time.astimezone(UTC))
        persons = tuple(sorted(set(self.persons)))
        for p in persons:
            if not isinstance(p, str) or not p or len(p) > 64 or _SPACE(p):
                problems.append(f"persons: {p!r} is not a person index id")
        set_(self, "persons", persons)
        set_(self, "resources", tuple(self.resources))
        for r in self.resources:
            if not isinstance(r, str) or "/" not in r or len(r) > _MAX_REF:
                problems.append(f"resources: {r!r} is not a Type/id reference")
        set_(self, "reasons", tuple(self.reasons))
        for reason in self.reasons:
            if not isinstance(reason, str) or not reason or len(reason) > _MAX_TEXT:
                problems.append(f"reasons: {reason!r} must be 1 to {_MAX_TEXT} characters")
        obligations, obligations_json = _frozen_json(self.obligations, "obligations", problems)
        detail, detail_json = _frozen_json(self.detail, "detail", problems)
        set_(self, "obligations", obligations)
        set_(self, "detail", detail)
        if self.request_id is not None and not (0 < len(self.request_id) <= _MAX_ID):
            problems.append(f"request_id: must be 1 to {_MAX_ID} characters")
        problems += self._break_glass_problems()
        if self.action == AuditAction.AUDIT_REVIEW:
            problems += _review_problems(self.detail)
        if not problems:
            problems += self._personal_data_problems(detail_json + b" " + obligations_json)
        if problems:
            raise ValueError("invalid audit event: " + "; ".join(problems))
        prefix, suffix = _template(self)
        set_(self, "_prefix", prefix)
        set_(self, "_suffix", suffix)
        actor = self.actor
        set_(self, "columns", (
            format_time(self.time), self.action.value, self.outcome.value, actor.org,
            actor.client_id, actor.practitioner, actor.role,
            None if self.purpose is None else self.purpose.value, self.break_glass,
            self.subject_seq,
        ))

    def _break_glass_problems(self) -> list[str]:
        reason = self.break_glass_reason
        if self.action == AuditAction.BREAK_GLASS and not self.break_glass:
            return ["break_glass: a break-glass event must set break_glass=True"]
        if self.break_glass and not (reason and reason.strip()):
            return ["break_glass_reason: breaking the glass needs a reason"]
        if not self.break_glass and reason is not None:
            return ["break_glass_reason: given without break_glass"]
        if reason is not None and len(reason) > _MAX_TEXT:
            return [f"break_glass_reason: longer than {_MAX_TEXT} characters"]
        return []

    def _personal_data_problems(self, json_text: bytes) -> list[str]:
        # Free text and person ids only: resource and request ids are system ids.
        text = "\n".join(
            [*self.persons, *self.reasons, self.break_glass_reason or "", json_text.decode()]
        )
        if contains_nhs_number(text):
            return ["an NHS number appears in the event: use the person index id instead"]
        return []

    @property
    def subject_seq(self) -> int | None:
        """For a review, the seq of the break-glass event it reviews."""
        if self.action != AuditAction.AUDIT_REVIEW:
            return None
        value = self.detail.get("reviewed_seq")
        return value if isinstance(value, int) else None

    def body(self, seq: int) -> dict[str, Any]:
        """The canonical content as a dict (what ``canonical`` serialises)."""
        return {
            "action": self.action.value,
            "actor": self.actor.as_dict(),
            "break_glass": {"reason": self.break_glass_reason} if self.break_glass else None,
            "detail": dict(self.detail),
            "obligations": dict(self.obligations),
            "outcome": self.outcome.value,
            "persons": list(self.persons),
            "purpose": None if self.purpose is None else self.purpose.value,
            "reasons": list(self.reasons),
            "request_id": self.request_id,
            "resources": list(self.resources),
            "seq": seq,
            "time": format_time(self.time),
            "v": FORMAT_VERSION,
        }

    def canonical(self, seq: int) -> bytes:
        """The bytes that are stored and hashed for this event at ``seq``.

        Spliced from a template made at construction, so the writer's critical
        section does no JSON work; equal to ``canonical_json(self.body(seq))``
        (a property test holds the two together).
        """
        return self._prefix + str(seq).encode() + self._suffix

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AuditEvent:
        """Rebuild an event from its canonical content (as read back from the log)."""
        actor = body["actor"]
        bg = body.get("break_glass")
        return cls(
            action=AuditAction(body["action"]),
            actor=Actor(actor["org"], actor["client_id"], actor["practitioner"], actor["role"]),
            outcome=Outcome(body["outcome"]),
            purpose=None if body["purpose"] is None else Purpose(body["purpose"]),
            persons=tuple(body["persons"]),
            resources=tuple(body["resources"]),
            reasons=tuple(body["reasons"]),
            obligations=body["obligations"],
            request_id=body["request_id"],
            break_glass=bg is not None,
            break_glass_reason=None if bg is None else bg["reason"],
            detail=body["detail"],
            time=parse_time(body["time"]),
        )


def _review_problems(detail: Mapping[str, Any]) -> list[str]:
    found = []
    seq = detail.get("reviewed_seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        found.append("detail.reviewed_seq: a review names the seq it reviews")
    if detail.get("outcome") not in ReviewOutcome._value2member_map_:
        found.append(
            "detail.outcome: must be one of " + ", ".join(o.value for o in ReviewOutcome)
        )
    return found


_SEQ_MARK = b',"seq":0,"time":'


def _template(event: AuditEvent) -> tuple[bytes, bytes]:
    whole = canonical_json(event.body(0))
    at = whole.rfind(_SEQ_MARK)  # the top-level key: the last one, as "time" and "v" follow
    assert at >= 0
    cut = at + len(b',"seq":')
    return whole[:cut], whole[cut + 1 :]


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the canonical serialisation."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def chain_digest(prev_digest: bytes, body: bytes) -> bytes:
    """SHA-256 over the previous event's raw digest and this event's canonical bytes."""
    return hashlib.sha256(prev_digest + body).digest()


def chain_hash(prev_hash: str, body: bytes) -> str:
    """``chain_digest`` on hex strings, as they are stored."""
    return chain_digest(bytes.fromhex(prev_hash), body).hex()


@dataclass(frozen=True, slots=True)
class Review:
    """The review recorded for a break-glass event (itself an ``audit.review`` event)."""

    outcome: ReviewOutcome
    reviewer: str | None
    time: datetime
    review_seq: int
    note: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as committed: its seq, chain links, and (for break-glass) its review."""

    seq: int
    prev_hash: str
    hash: str
    event: AuditEvent
    review: Review | None = None

    @property
    def awaiting_review(self) -> bool:
        return self.event.action == AuditAction.BREAK_GLASS and self.review is None

    def as_dict(self) -> dict[str, Any]:
        """For the admin API and CLI: the event's content, its chain links and its review."""
        body = self.event.body(self.seq)
        del body["v"]
        review = self.review
        return {
            **body,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "review": None if review is None else {
                "outcome": review.outcome.value,
                "reviewer": review.reviewer,
                "time": format_time(review.time),
                "review_seq": review.review_seq,
                "note": review.note,
            },
        }
