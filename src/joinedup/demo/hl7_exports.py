"""HL7 v2.5 ADT messages from the hospital's patient administration system (PAS).

ER7 encoding: segments end with ``\\r``; each message is followed by ``\\n`` so
the files read one message per line in a terminal (``hl7.split_file`` and
most engines ignore it). One file per calendar month, messages in time order.
PID-3 repeats the NHS number (assigning authority ``NHS``, type ``NH``) and
the hospital number (``RWX``, ``MR``); the hospital number is the source
record id, the same one the EPR's FHIR Patient uses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta

from joinedup.demo.context import HL7_START, ExportContext
from joinedup.demo.fhir_exports import AcuteEncounter
from joinedup.demo.output import BadRow, GroundTruthRow
from joinedup.demo.population import REFERENCE_DATE
from joinedup.demo.quality import SourceRecord

RECORD_TYPE = "hl7v2-patient"

STRUCTURE = {
    "A01": "ADT_A01", "A02": "ADT_A02", "A03": "ADT_A03", "A04": "ADT_A01", "A08": "ADT_A01",
    "A28": "ADT_A05", "A31": "ADT_A05",
}


@dataclass(frozen=True, slots=True)
class _Event:
    moment: datetime
    trigger: str
    record: SourceRecord
    encounter: AcuteEncounter | None
    phone: str | None = None
    """For A08/A31: the updated value carried."""


def escape(text: str) -> str:
    """HL7 v2 escaping of the delimiters in a data value."""
    return (
        text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
        .replace("&", "\\T\\").replace("~", "\\R\\")
    )


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M")


def _pid(r: SourceRecord, ethnic: str, nhs_override: str | None = None) -> str:
    ids = []
    nhs = nhs_override or r.nhs_number
    if nhs:
        ids.append(f"{nhs}^^^NHS^NH")
    ids.append(f"{r.source_id}^^^RWX^MR")
    fields = [""] * 23
    fields[0] = "PID"
    fields[1] = "1"
    fields[3] = "~".join(ids)
    fields[5] = "^".join(escape(x) for x in (r.family_name, r.given_name, r.middle_name)).rstrip("^")
    fields[7] = r.birth_date.strftime("%Y%m%d") if r.birth_date else ""
    fields[8] = {"female": "F", "male": "M"}.get(r.sex.value if r.sex else "", "U")
    if r.address:
        parts = (r.address.line1, r.address.line2, r.address.town, "", r.postcode_text, "GBR", "H")
        fields[11] = "^".join(escape(p) for p in parts)
    fields[13] = escape(r.phone)
    fields[22] = f"{ethnic}^^NHSETH"
    return "|".join(fields).rstrip("|")


def _pv1(event: _Event) -> str:
    enc = event.encounter
    fields = [""] * 46
    fields[0] = "PV1"
    fields[1] = "1"
    if enc is None:
        fields[2] = "N"
        return "|".join(fields).rstrip("|")
    fields[2] = "I" if enc.inpatient else "E"
    ward = enc.transfer_ward if event.trigger in ("A02", "A03") and enc.transfer_ward else enc.ward
    fields[3] = f"{ward}^^^RWX"
    fields[4] = "E"
    if event.trigger == "A02":
        fields[6] = f"{enc.ward}^^^RWX"
    c = enc.clinician
    fields[7] = f"{c.id}^{escape(c.family_name)}^{escape(c.given_name)}"
    fields[10] = "MED" if enc.inpatient else "EM"
    fields[19] = enc.id
    fields[44] = _ts(enc.start)
    if event.trigger == "A03":
        fields[45] = _ts(enc.end)
    return "|".join(fields).rstrip("|")


def _message(event: _Event, control_id: str, ethnic: str, nhs_override: str | None) -> str:
    stamp = _ts(event.moment)
    msh = (
        f"MSH|^~\\&|RWX_PAS|RWX|JOINEDUP|JHUB|{stamp}||ADT^{event.trigger}^"
        f"{STRUCTURE[event.trigger]}|{control_id}|P|2.5|||AL|NE|GBR|UNICODE UTF-8"
    )
    evn = f"EVN|{event.trigger}|{stamp}"
    segments = [msh, evn, _pid(event.record, ethnic, nhs_override), _pv1(event)]
    return "\r".join(segments) + "\r\n"


def export_hl7(ctx: ExportContext, plan: dict[str, list[AcuteEncounter]]) -> None:
    rng = ctx.rng("RWX-hl7")
    events = _events(ctx, plan, rng)
    by_month: dict[str, list[_Event]] = {}
    for e in events:
        by_month.setdefault(e.moment.strftime("%Y-%m"), []).append(e)
    months = sorted(by_month)
    bad_month = months[len(months) // 2] if months else ""
    control = iter(range(1, 10**8))
    seen: set[str] = set()
    for month in months:
        rel = f"RWX/hl7/adt-{month}.hl7"
        messages = []
        bad_done = month != bad_month
        for number, event in enumerate(by_month[month], start=1):
            ethnic = ctx.population[event.record.person_id].ethnic_category
            override = None
            if not bad_done and event.record.nhs_number:
                good = event.record.nhs_number
                override = good[:9] + str((int(good[9]) + 5) % 10)
                ctx.out.bad_rows.append(
                    BadRow(rel, number, "invalid-nhs-number",
                           "PID-3 NHS number fails the Modulus 11 check",
                           event.record.source_id, event.record.person_id)
                )
                bad_done = True
            messages.append(_message(event, f"RWX{next(control):08d}", ethnic, override))
            if event.record.source_id not in seen:
                seen.add(event.record.source_id)
                ctx.out.truth.append(
                    GroundTruthRow("RWX", RECORD_TYPE, event.record.source_id,
                                   event.record.person_id)
                )
        ctx.out.write_bytes(
            rel, "".join(messages).encode("utf-8"), org="RWX", fmt="hl7v2-er7",
            encoding="utf-8", count=len(messages),
            about=f"PAS ADT messages for {month} (A01/A02/A03/A04/A08/A28/A31)",
        )


def _events(
    ctx: ExportContext, plan: dict[str, list[AcuteEncounter]], rng: random.Random
) -> list[_Event]:
    end_of_feed = datetime.combine(REFERENCE_DATE, time())
    events: list[_Event] = []
    for r in ctx.records["RWX"]:
        person = ctx.population[r.person_id]
        recent = [e for e in plan[r.source_id] if e.start.date() >= HL7_START]
        for enc in recent:
            if enc.inpatient:
                events.append(_Event(enc.start, "A01", r, enc))
                if enc.transfer_ward:
                    events.append(_Event(enc.start + (enc.end - enc.start) / 2, "A02", r, enc))
            else:
                events.append(_Event(enc.start, "A04", r, enc))
            if rng.random() < 0.1:
                events.append(_Event(enc.start + timedelta(minutes=30), "A08", r, enc))
            if enc.end < end_of_feed:
                events.append(_Event(enc.end, "A03", r, enc))
        if not recent and rng.random() < 0.05:
            day = HL7_START + timedelta(days=rng.randrange((REFERENCE_DATE - HL7_START).days))
            events.append(_Event(datetime.combine(day, time(9, rng.randrange(60))), "A28", r,
                                 None))
        if person.moved_on and person.moved_on >= HL7_START and person.address:
            moved = datetime.combine(person.moved_on, time(14, rng.randrange(60)))
            updated = replace(r, address=person.address, postcode_text=person.address.postcode)
            events.append(_Event(moved, "A31", updated, None))
    events.sort(key=lambda e: (e.moment, e.record.source_id, e.trigger))
    return events
