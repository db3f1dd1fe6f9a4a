"""The HL7 v2 adapter: ADT messages to Patient and Encounter, one outcome per message.

Events: A01 admit, A02 transfer, A03 discharge, A04 register, A08 update
(Patient + Encounter), A28 / A31 person add / update (Patient only). PID-3
identifiers are read by assigning authority (the feed config names which
authority is the NHS number and which keys the Patient); PV1 gives the
Encounter's class, ward, visit number and admit / discharge times, and the
event gives its status. The source id of a message is its control id
(MSH-10): the same control id twice in a file is a duplicate.

Every problem in a message is collected and located as
``message 3 (line 17), PID-7``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from joinedup import nhs_number
from joinedup.errors import Problem
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.sources.adapters.base import Reading, Source, open_binary
from joinedup.sources.adapters.checks import check_patient
from joinedup.sources.adapters.er7 import (
    RawMessage,
    Segment,
    Separators,
    components,
    parse_segments,
    repetitions,
    split_messages,
)
from joinedup.sources.adapters.seen import SeenIds
from joinedup.sources.contract import Accepted, Outcome, Rejected, Warning_
from joinedup.sources.mapping.ids import stable_id
from joinedup.sources.mapping.spec import FeedFormat, Hl7v2FeedConfig, OnInvalid
from joinedup.sources.mapping.targets import UK_CORE_ETHNICITY_EXTENSION

ETHNIC_CATEGORY_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"
"""NHS Data Dictionary ethnic category codes, as UK Core publishes them."""
ENCOUNTER_STATUS = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "arrived",
    "A08": None,  # from PV1: finished once discharged, else in-progress
}
PERSON_EVENTS = frozenset({"A28", "A31"})
EVENTS = frozenset(ENCOUNTER_STATUS) | PERSON_EVENTS
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PATIENT_CLASS = {
    "E": ("EMER", "emergency"),
    "I": ("IMP", "inpatient encounter"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"),
    "B": ("IMP", "inpatient encounter"),
}
SEX = {"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")


class Hl7v2Adapter:
    format = FeedFormat.HL7V2

    def __init__(self, config: Hl7v2FeedConfig, today: date | None = None) -> None:
        self.spec = config
        self._zone = ZoneInfo(config.timezone)
        self._today = today or date.today()
        self._namespace = config.id_namespace or config.feed

    def read(self, source: Source) -> Reading:
        return Reading(lambda reading: self._outcomes(source))

    def reprocess(self, raw: str, unit: int, extra: Mapping[str, Any]) -> Outcome:
        data = raw.encode(self.spec.encoding, "backslashreplace")
        for message in split_messages(io.BytesIO(data), self.spec.encoding):
            message.index = unit
            return self._message(message, SeenIds())
        return Rejected(unit, raw, (Problem("the quarantined message is empty", f"message {unit}"),))

    def _outcomes(self, source: Source) -> Iterator[Outcome]:
        seen = SeenIds()
        with open_binary(source) as handle:
            for message in split_messages(handle, self.spec.encoding):
                yield self._message(message, seen)

    # -- one message -------------------------------------------------------------------

    def _message(self, message: RawMessage, seen: SeenIds) -> Outcome:
        at = f"message {message.index}"
        problems: list[Problem] = [
            Problem(error, f"{at} (line {line})") for line, error in message.decode_errors
        ]
        seps, segments, errors = parse_segments(message)
        problems.extend(Problem(e.message, f"{at} (line {e.line})") for e in errors)
        extra = {"line": message.first_line}
        if not segments:
            return Rejected(message.index, message.text, tuple(problems), None, extra)
        msh = segments[0]
        loc = _Locator(at, segments)
        control_id = msh.get(10).strip()
        if not control_id:
            problems.append(loc("MSH", 10, "the message control id is empty"))
        kind = components(msh.get(9), seps)
        event = kind[1] if len(kind) > 1 else ""
        if kind[0] != "ADT" or event not in EVENTS:
            problems.append(
                loc("MSH", 9, f"message type {'^'.join(kind[:2])!r} is not supported"
                    f" (ADT {', '.join(sorted(EVENTS))})")
            )
        warnings: list[Warning_] = []
        version = msh.get(12)
        if version and not version.startswith("2."):
            warnings.append(Warning_(f"HL7 version {version!r} is not 2.x", loc.where("MSH", 12), "version"))
        for name in ("MSH", "EVN", "PID", "PV1"):
            count = sum(1 for seg in segments if seg.name == name)
            if count > 1:
                problems.append(
                    Problem(f"{name} appears {count} times (segments of a message without its MSH"
                            " may have run on into this one)", at)
                )
        pid = loc.first("PID")
        pv1 = loc.first("PV1")
        if pid is None:
            problems.append(Problem("the message has no PID segment", at))
        wants_encounter = event in ENCOUNTER_STATUS
        if wants_encounter and pv1 is None:
            problems.append(Problem(f"an {event} message needs a PV1 segment", at))
        patient = None
        if pid is not None:
            patient = self._patient(pid, seps, loc, problems, warnings)
        encounter = None
        if patient is not None and pv1 is not None and wants_encounter:
            encounter = self._encounter(pv1, event, patient["id"], seps, loc, problems)
        if control_id and not problems:
            earlier = seen.add(control_id, message.index)
            if earlier is not None:
                problems.append(
                    loc("MSH", 10, f"duplicate message control id: also message {earlier}")
                )
        if problems or patient is None:
            return Rejected(message.index, message.text, tuple(problems), control_id or None, extra)
        resources = (patient,) if encounter is None else (patient, encounter)
        return Accepted(message.index, control_id, resources, tuple(warnings))

    def _patient(
        self, pid: Segment, seps: Separators, loc: _Locator, problems: list[Problem], warnings: list[Warning_]
    ) -> dict[str, Any] | None:
        config = self.spec
        identifiers = []
        key = None
        for rep in repetitions(pid.get(3), seps):
            parts = components(rep, seps, first_subcomponent=True)
            value = parts[0].strip()
            authority = parts[3] if len(parts) > 3 else ""
            id_type = parts[4] if len(parts) > 4 else ""
            if not value:
                continue
            system = config.authorities.get(authority)
            if system is None and id_type == "NH":
                system = NHS_NUMBER_SYSTEM
            if system is None:
                warnings.append(
                    Warning_(f"identifier from unknown assigning authority {authority!r} left out",
                             loc.where("PID", 3), "identifier")
                )
                continue
            if system == NHS_NUMBER_SYSTEM:
                try:
                    value = nhs_number.validate(value)
                except ValueError as exc:
                    if config.invalid_nhs_number is OnInvalid.WARN:
                        warnings.append(Warning_(f"{exc}; NHS number left out", loc.where("PID", 3), "invalid-value"))
                        continue
                    problems.append(loc("PID", 3, str(exc)))
                    continue
            identifiers.append({"system": system, "value": value})
            if authority == config.patient_authority and key is None:
                key = value
        if key is None:
            problems.append(loc("PID", 3, f"no identifier from assigning authority {config.patient_authority!r}"))
            return None
        patient: dict[str, Any] = {
            "resourceType": "Patient",
            "id": stable_id(config.organisation, self._namespace, "Patient", key),
            "meta": {"security": config.patient_label.security()},
            "identifier": identifiers,
        }
        names = []
        for rep in repetitions(pid.get(5), seps):
            parts = components(rep, seps, first_subcomponent=True)
            name: dict[str, Any] = {}
            if parts[0]:
                name["family"] = parts[0]
            given = [g for g in parts[1:3] if g]
            if given:
                name["given"] = given
            if len(parts) > 4 and parts[4]:
                name["prefix"] = [parts[4]]
            if len(parts) > 6 and parts[6] == "L":
                name["use"] = "official"
            if name:
                names.append(name)
        if names:
            patient["name"] = names
        birth = pid.get(7)
        if birth:
            try:
                moment = self._timestamp(birth)
                patient["birthDate"] = (moment.date() if isinstance(moment, datetime) else moment).isoformat()
            except ValueError as exc:
                problems.append(loc("PID", 7, f"date of birth: {exc}"))
        sex = pid.get(8)
        if sex:
            if sex in SEX:
                patient["gender"] = SEX[sex]
            else:
                problems.append(loc("PID", 8, f"administrative sex {sex!r} is not one of {', '.join(SEX)}"))
        addresses = []
        for rep in repetitions(pid.get(11), seps):
            parts = components(rep, seps) + [""] * 7
            address: dict[str, Any] = {}
            lines = [p for p in parts[:2] if p]
            if lines:
                address["line"] = lines
            if parts[2]:
                address["city"] = parts[2]
            if parts[3]:
                address["district"] = parts[3]
            if parts[4]:
                address["postalCode"] = parts[4].upper()
            if parts[5]:
                address["country"] = parts[5]
            if address:
                addresses.append(address)
        if addresses:
            patient["address"] = addresses
        phones = [components(r, seps)[0] for r in repetitions(pid.get(13), seps)]
        if any(phones):
            patient["telecom"] = [{"system": "phone", "value": p} for p in phones if p]
        died = pid.get(29)
        if died:
            try:
                patient["deceasedDateTime"] = _iso(self._timestamp(died))
            except ValueError as exc:
                problems.append(loc("PID", 29, f"date of death: {exc}"))
        elif pid.get(30) == "Y":
            patient["deceasedBoolean"] = True
        ethnicity = components(pid.get(22), seps)
        if ethnicity[0] and len(ethnicity) > 2 and ethnicity[2] == "NHSETH":
            patient["extension"] = [
                {
                    "url": UK_CORE_ETHNICITY_EXTENSION,
                    "valueCodeableConcept": {
                        "coding": [{"system": ETHNIC_CATEGORY_SYSTEM, "code": ethnicity[0]}]
                    },
                }
            ]
        meaning, doubts = check_patient(patient, self._today, drop_invalid_nhs=True)
        problems.extend(loc("PID", 7, m) for m in meaning)
        warnings.extend(Warning_(d, loc.where("PID", 7), "patient") for d in doubts)
        return patient

    def _encounter(
        self, pv1: Segment, event: str, patient_id: str, seps: Separators, loc: _Locator, problems: list[Problem]
    ) -> dict[str, Any] | None:
        config = self.spec
        patient_class = pv1.get(2)
        if patient_class not in PATIENT_CLASS:
            problems.append(loc("PV1", 2, f"patient class {patient_class!r} is not one of {', '.join(PATIENT_CLASS)}"))
            return None
        code, display = PATIENT_CLASS[patient_class]
        times: dict[str, str] = {}
        for n, name in ((44, "start"), (45, "end")):
            if pv1.get(n):
                try:
                    times[name] = _iso(self._timestamp(pv1.get(n)))
                except ValueError as exc:
                    problems.append(loc("PV1", n, f"{'admit' if n == 44 else 'discharge'} time: {exc}"))
        visit = components(pv1.get(19), seps)[0]
        key = visit or (f"admit-{times['start']}" if "start" in times else "")
        if not key:
            problems.append(loc("PV1", 19, "no visit number (nor an admit time, PV1-44) to identify the encounter"))
            return None
        status = ENCOUNTER_STATUS[event] or ("finished" if "end" in times else "in-progress")
        encounter: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": stable_id(config.organisation, self._namespace, "Encounter", key),
            "meta": {"security": config.encounter_label.security()},
            "status": status,
            "class": {"system": ACT_CODE_SYSTEM, "code": code, "display": display},
            "subject": {"reference": f"Patient/{patient_id}"},
        }
        if visit and config.visit_system:
            encounter["identifier"] = [{"system": config.visit_system, "value": visit}]
        if times:
            encounter["period"] = times
        locations = []
        for n, state in ((3, "completed" if status == "finished" else "active"), (6, "completed")):
            place = components(pv1.get(n), seps)
            if place[0] and not (n == 6 and event != "A02"):
                where: dict[str, Any] = {"display": "/".join(p for p in place[:3] if p)}
                if config.location_system:
                    where["identifier"] = {"system": config.location_system, "value": place[0]}
                locations.append({"location": where, "status": state})
        if locations:
            encounter["location"] = locations
        doctor = components(pv1.get(7), seps)
        if doctor[0] and config.practitioner_system:
            encounter["participant"] = [
                {
                    "individual": {
                        "identifier": {"system": config.practitioner_system, "value": doctor[0]},
                        "display": " ".join(p for p in doctor[2:0:-1] if p),
                    }
                }
            ]
        return encounter

    def _timestamp(self, value: str) -> date | datetime:
        match = _TS.match(value.strip())
        if not match:
            raise ValueError("not an HL7 timestamp (YYYYMMDD[HHMM[SS]])")
        year, month, day, hour, minute, second, offset = match.groups()
        try:
            if hour is None:
                return date(int(year), int(month or 1), int(day or 1))
            moment = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a real date or time ({exc})") from None
        if offset:
            sign = 1 if offset[0] == "+" else -1
            from datetime import timedelta, timezone

            zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
            return moment.replace(tzinfo=zone)
        return moment.replace(tzinfo=self._zone)


def _iso(value: date | datetime) -> str:
    return value.isoformat()


class _Locator:
    """Locations like ``message 3 (line 17), PID-7``."""

    def __init__(self, at: str, segments: list[Segment]) -> None:
        self._at = at
        self._segments = segments

    def first(self, name: str) -> Segment | None:
        return next((s for s in self._segments if s.name == name), None)

    def where(self, name: str, n: int) -> str:
        segment = self.first(name)
        line = f" (line {segment.line})" if segment else ""
        return f"{self._at}{line}, {name}-{n}"

    def __call__(self, name: str, n: int, message: str) -> Problem:
        return Problem(message, self.where(name, n))
