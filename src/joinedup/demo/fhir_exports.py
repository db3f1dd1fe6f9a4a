"""FHIR R4 JSON bundles for the NHS organisations: acute trust EPR, mental health, community, GPs.

Resources carry no ``meta.security``: the feed mapping labels them at ingest.
Patients carry the NHS number (UK Core system) and the organisation's local
record number; the Patient ``id`` is that local number, which is also the
source record id in ``ground_truth.csv``. Bundles hold up to
:data:`PATIENTS_PER_BUNDLE` patients and everything about them, one entry per
line so a reader can stream them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from joinedup.demo.area import ODS_ORGANISATION_SYSTEM, PRACTITIONER_ID_SYSTEM, Practitioner
from joinedup.demo.clinical import (
    ALLERGENS,
    ATTENDANCE_REASONS,
    CONDITIONS,
    MEDICINES,
    MEDICINES_FOR,
    SEALED_KEYS,
    SNOMED,
    Code,
)
from joinedup.demo.context import ExportContext, activity_date, random_datetime
from joinedup.demo.output import BadRow, GroundTruthRow, SensitiveRecord
from joinedup.demo.population import REFERENCE_DATE, Person
from joinedup.demo.quality import SourceRecord
from joinedup.labels import DataCategory
from joinedup.nhs_number import NHS_NUMBER_SYSTEM

PATIENTS_PER_BUNDLE = 250
RECORD_TYPE = "fhir-patient"
ETHNIC_EXTENSION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
ETHNIC_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
LOCAL_CODES = "https://fhir.wessex.example/CodeSystem"

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AcuteEncounter:
    """One hospital attendance, shared by the EPR bundles and the PAS ADT messages."""

    id: str
    source_id: str
    person_id: str
    inpatient: bool
    start: datetime
    end: datetime
    reason: Code
    ward: str
    transfer_ward: str | None
    clinician: Practitioner


def plan_acute_encounters(ctx: ExportContext) -> dict[str, list[AcuteEncounter]]:
    """Source id -> the hospital's attendances for that record, oldest first."""
    rng = ctx.rng("RWX-encounters")
    ed_staff = [p for p in ctx.staff("RWX-ED") if p.role.value == "clinician"]
    amu_staff = [p for p in ctx.staff("RWX-AMU") if p.role.value == "clinician"]
    plan: dict[str, list[AcuteEncounter]] = {}
    for r in ctx.records["RWX"]:
        person = ctx.population[r.person_id]
        age = person.age()
        encounters = []
        count = 1
        while count < 6 and rng.random() < (0.35 + 0.2 * (age >= 75) + 0.2 * person.homeless):
            count += 1
        for n in range(count):
            reason = _attendance_reason(rng, person)
            inpatient = reason.key in {"hip_fracture", "pneumonia"} or rng.random() < (
                0.1 + 0.35 * (age >= 70)
            )
            start = random_datetime(rng, activity_date(rng))
            if inpatient:
                end = start + timedelta(days=rng.randint(1, 14), hours=rng.randint(1, 20))
            else:
                end = start + timedelta(hours=rng.randint(1, 11), minutes=rng.randrange(60))
            end = min(end, datetime.combine(REFERENCE_DATE, datetime.min.time()))
            ward = rng.choice(("AMU", "WARD7", "WARD9", "ORTHO")) if inpatient else "ED"
            encounters.append(
                AcuteEncounter(
                    id=f"{r.source_id}-enc-{n + 1}",
                    source_id=r.source_id,
                    person_id=r.person_id,
                    inpatient=inpatient,
                    start=start,
                    end=end,
                    reason=reason,
                    ward=ward,
                    transfer_ward=("WARD12" if inpatient and rng.random() < 0.3 else None),
                    clinician=rng.choice(amu_staff if inpatient else ed_staff),
                )
            )
        encounters.sort(key=lambda e: e.start)
        plan[r.source_id] = encounters
    return plan


def _attendance_reason(rng: random.Random, person: Person) -> Code:
    age = person.age()
    weights = {
        "chest_pain": 3 + (age > 45) * 4,
        "pneumonia": 1 + (age > 70) * 4,
        "uti": 1 + (age > 70) * 3,
        "cellulitis": 2,
        "abdominal_pain": 4,
        "head_injury": 2 + (age < 16) * 3,
        "ankle_sprain": 3 * (age < 60),
        "fall": 1 + (age > 70) * 8,
        "hip_fracture": (age > 70) * 2,
        "overdose": (age >= 14) * (1 + 10 * bool({"drug_misuse", "depression"} & set(
            person.conditions))),
        "self_harm": (age >= 12) * (1 + 6 * ("depression" in person.conditions)),
    }
    keys = sorted(weights)
    key = rng.choices(keys, [weights[k] for k in keys])[0]
    return ATTENDANCE_REASONS[key]


# --- resource builders ------------------------------------------------------------------------


def _coding(code: Code) -> Resource:
    return {"coding": [{"system": SNOMED, "code": code.code, "display": code.display}]}


def _ref(resource_type: str, rid: str) -> Resource:
    return {"reference": f"{resource_type}/{rid}"}


def _org_ref(code: str) -> Resource:
    return {"identifier": {"system": ODS_ORGANISATION_SYSTEM, "value": code}}


def _practitioner_ref(p: Practitioner) -> Resource:
    return {
        "identifier": {"system": PRACTITIONER_ID_SYSTEM, "value": p.id},
        "display": p.display_name,
    }


def patient(
    ctx: ExportContext, r: SourceRecord, local_system: str, *, gp: str | None
) -> Resource:
    person = ctx.population[r.person_id]
    identifiers = []
    if r.nhs_number:
        identifiers.append({"system": NHS_NUMBER_SYSTEM, "value": r.nhs_number})
    identifiers.append({"system": local_system, "value": r.source_id})
    given = [r.given_name] + ([r.middle_name] if r.middle_name else [])
    res: Resource = {
        "resourceType": "Patient",
        "id": r.source_id,
        "extension": [
            {
                "url": ETHNIC_EXTENSION,
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": ETHNIC_SYSTEM,
                            "code": person.ethnic_category,
                        }
                    ]
                },
            }
        ],
        "identifier": identifiers,
        "name": [{"use": "official", "family": r.family_name, "given": given}],
    }
    if r.phone:
        use = "home" if r.phone.startswith("01") else "mobile"
        res["telecom"] = [{"system": "phone", "value": r.phone, "use": use}]
    if r.sex is not None:
        res["gender"] = r.sex.value
    if r.birth_date is not None:
        res["birthDate"] = r.birth_date.isoformat()
    if r.address is not None:
        lines = [x for x in (r.address.line1, r.address.line2) if x]
        res["address"] = [
            {"use": "home", "line": lines, "city": r.address.town, "postalCode": r.postcode_text}
        ]
    if gp:
        res["generalPractitioner"] = [_org_ref(gp)]
    return res


def condition(
    rid: str, patient_id: str, code: Code, *, onset: date, category: str,
    encounter_id: str | None = None, active: bool = True,
) -> Resource:
    res: Resource = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {
            "coding": [{"system": CONDITION_CLINICAL, "code": "active" if active else "resolved"}]
        },
        "verificationStatus": {"coding": [{"system": CONDITION_VERIFICATION, "code": "confirmed"}]},
        "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": category}]}],
        "code": _coding(code),
        "subject": _ref("Patient", patient_id),
        "onsetDateTime": onset.isoformat(),
        "recordedDate": onset.isoformat(),
    }
    if encounter_id:
        res["encounter"] = _ref("Encounter", encounter_id)
    return res


def medication_statement(rid: str, patient_id: str, medicine: Code, start: date) -> Resource:
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": "active",
        "medicationCodeableConcept": _coding(medicine),
        "subject": _ref("Patient", patient_id),
        "effectivePeriod": {"start": start.isoformat()},
        "dateAsserted": start.isoformat(),
        "dosage": [{"text": "As directed"}],
    }


def allergy(rid: str, patient_id: str, allergen: Code, recorded: date) -> Resource:
    category = {"penicillin": "medication", "sulfonamide": "medication", "peanut": "food",
                "egg": "food"}.get(allergen.key, "environment")
    return {
        "resourceType": "AllergyIntolerance",
        "id": rid,
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": "confirmed"}]},
        "type": "allergy",
        "category": [category],
        "code": _coding(allergen),
        "patient": _ref("Patient", patient_id),
        "recordedDate": recorded.isoformat(),
    }


def encounter(
    rid: str, patient_id: str, *, klass: str, klass_display: str, type_code: Code,
    start: datetime, end: datetime | None, org: str, who: Practitioner,
    reason: Code | None = None, episode_id: str | None = None,
) -> Resource:
    period: Resource = {"start": _ts(start)}
    if end is not None:
        period["end"] = _ts(end)
    res: Resource = {
        "resourceType": "Encounter",
        "id": rid,
        "status": "finished" if end is not None else "in-progress",
        "class": {"system": ACT_CODE, "code": klass, "display": klass_display},
        "type": [_coding(type_code)],
        "subject": _ref("Patient", patient_id),
        "participant": [{"individual": _practitioner_ref(who)}],
        "period": period,
        "serviceProvider": _org_ref(org),
    }
    if reason is not None:
        res["reasonCode"] = [_coding(reason)]
    if episode_id is not None:
        res["episodeOfCare"] = [_ref("EpisodeOfCare", episode_id)]
    return res


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:00+00:00")


def _team_type(name: str) -> Resource:
    return {"coding": [{"system": f"{LOCAL_CODES}/team-type", "code": name}], "text": name}


def episode_of_care(
    rid: str, patient_id: str, *, team_name: str, org: str, start: date, end: date | None,
    manager: Practitioner, care_team_id: str,
) -> Resource:
    period: Resource = {"start": start.isoformat()}
    if end is not None:
        period["end"] = end.isoformat()
    return {
        "resourceType": "EpisodeOfCare",
        "id": rid,
        "status": "finished" if end is not None else "active",
        "type": [_team_type(team_name)],
        "patient": _ref("Patient", patient_id),
        "managingOrganization": _org_ref(org),
        "period": period,
        "careManager": _practitioner_ref(manager),
        "team": [_ref("CareTeam", care_team_id)],
    }


def care_team(
    rid: str, patient_id: str, *, team_code: str, team_name: str, org: str,
    members: list[tuple[Practitioner, str]], start: date,
) -> Resource:
    return {
        "resourceType": "CareTeam",
        "id": rid,
        "identifier": [{"system": f"{LOCAL_CODES}/team", "value": team_code}],
        "status": "active",
        "name": team_name,
        "subject": _ref("Patient", patient_id),
        "period": {"start": start.isoformat()},
        "participant": [
            {"role": [{"text": role}], "member": _practitioner_ref(p)} for p, role in members
        ],
        "managingOrganization": [_org_ref(org)],
    }


def care_plan(rid: str, patient_id: str, title: str, start: date, author: Practitioner) -> Resource:
    return {
        "resourceType": "CarePlan",
        "id": rid,
        "status": "active",
        "intent": "plan",
        "category": [
            {"coding": [{"system": SNOMED, "code": "734163000", "display": "Care plan"}]}
        ],
        "title": title,
        "subject": _ref("Patient", patient_id),
        "period": {"start": start.isoformat()},
        "author": _practitioner_ref(author),
    }


def flag(rid: str, patient_id: str, text: str, code: str, start: date, author: Resource) -> Resource:
    return {
        "resourceType": "Flag",
        "id": rid,
        "status": "active",
        "code": {"coding": [{"system": f"{LOCAL_CODES}/flag", "code": code}], "text": text},
        "subject": _ref("Patient", patient_id),
        "period": {"start": start.isoformat()},
        "author": author,
    }


def observation_smoking(rid: str, patient_id: str, status: str, when: date) -> Resource:
    value = {
        "current": ("77176002", "Smoker"),
        "ex": ("8517006", "Ex-smoker"),
        "never": ("266919005", "Never smoked tobacco"),
    }[status]
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "social-history"}]}],
        "code": {"coding": [{"system": LOINC, "code": "72166-2",
                             "display": "Tobacco smoking status"}]},
        "subject": _ref("Patient", patient_id),
        "effectiveDateTime": when.isoformat(),
        "valueCodeableConcept": {
            "coding": [{"system": SNOMED, "code": value[0], "display": value[1]}]
        },
    }


def observation_bmi(rid: str, patient_id: str, bmi: float, when: date) -> Resource:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "39156-5", "display": "Body mass index"}]},
        "subject": _ref("Patient", patient_id),
        "effectiveDateTime": when.isoformat(),
        "valueQuantity": {"value": round(bmi, 1), "unit": "kg/m2", "system": UCUM,
                          "code": "kg/m2"},
    }


def observation_bp(rid: str, patient_id: str, systolic: int, diastolic: int, when: date) -> Resource:
    def component(code: str, display: str, value: int) -> Resource:
        return {
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        }

    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "85354-9",
                             "display": "Blood pressure panel"}]},
        "subject": _ref("Patient", patient_id),
        "effectiveDateTime": when.isoformat(),
        "component": [
            component("8480-6", "Systolic blood pressure", systolic),
            component("8462-4", "Diastolic blood pressure", diastolic),
        ],
    }


# --- per-organisation content -----------------------------------------------------------------

CONSULTATION = Code("consultation", "11429006", "Consultation")
HOME_VISIT = Code("home_visit", "439708006", "Home visit")
ED_ATTENDANCE = Code("ed", "50849002", "Emergency room admission")
ADMISSION = Code("admission", "32485007", "Hospital admission")


def _acute_resources(
    ctx: ExportContext, r: SourceRecord, rng: random.Random, plan: dict[str, list[AcuteEncounter]]
) -> list[Resource]:
    person = ctx.population[r.person_id]
    pid = r.source_id
    out: list[Resource] = []
    for enc in plan[pid]:
        out.append(
            encounter(
                enc.id, pid, klass="IMP" if enc.inpatient else "EMER",
                klass_display="inpatient encounter" if enc.inpatient else "emergency",
                type_code=ADMISSION if enc.inpatient else ED_ATTENDANCE,
                start=enc.start, end=enc.end, org="RWX", who=enc.clinician, reason=enc.reason,
            )
        )
        out.append(
            condition(f"{enc.id}-dx", pid, enc.reason, onset=enc.start.date(),
                      category="encounter-diagnosis", encounter_id=enc.id, active=False)
        )
    first = plan[pid][0].start.date()
    known = [k for k in person.conditions if k not in SEALED_KEYS and rng.random() < 0.7]
    out.extend(_problems_and_medicines(pid, known, first, rng))
    out.extend(_allergies(pid, person, first, rng, 0.9))
    return out


def _problems_and_medicines(
    pid: str, keys: list[str], recorded: date, rng: random.Random
) -> Iterator[Resource]:
    for n, key in enumerate(keys, start=1):
        onset = recorded - timedelta(days=rng.randrange(0, 3650))
        yield condition(f"{pid}-cond-{n}", pid, CONDITIONS[key], onset=onset,
                        category="problem-list-item")
    meds = sorted({m for k in keys for m in MEDICINES_FOR.get(k, ())})
    for n, med in enumerate(meds, start=1):
        start = recorded - timedelta(days=rng.randrange(0, 2000))
        yield medication_statement(f"{pid}-med-{n}", pid, MEDICINES[med], start)


def _allergies(
    pid: str, person: Person, recorded: date, rng: random.Random, chance: float
) -> Iterator[Resource]:
    for n, key in enumerate(person.allergies, start=1):
        if rng.random() < chance:
            yield allergy(f"{pid}-alg-{n}", pid, ALLERGENS[key], recorded)


def _mental_health_resources(
    ctx: ExportContext, r: SourceRecord, rng: random.Random
) -> list[Resource]:
    person = ctx.population[r.person_id]
    pid = r.source_id
    team_code = "RWM-CRHT" if rng.random() < 0.15 else "RWM-CMHT"
    team = ctx.area.org("RWM").team(team_code)
    staff = ctx.staff(team_code)
    coordinator = next((p for p in staff if p.role.value == "care-coordinator"), staff[0])
    doctor = next(p for p in staff if p.role.value == "clinician")
    start = activity_date(rng) - timedelta(days=rng.randrange(0, 900))
    end = None if rng.random() < 0.7 else start + timedelta(days=rng.randrange(60, 400))
    if end is not None and end >= REFERENCE_DATE:
        end = None
    out: list[Resource] = [
        care_team(f"{pid}-ct-1", pid, team_code=team.code, team_name=team.name, org="RWM",
                  members=[(coordinator, "Care coordinator"), (doctor, "Consultant psychiatrist")],
                  start=start),
        episode_of_care(f"{pid}-eoc-1", pid, team_name=team.name, org="RWM", start=start,
                        end=end, manager=coordinator, care_team_id=f"{pid}-ct-1"),
    ]
    last = end or REFERENCE_DATE
    for n in range(rng.randint(1, 5)):
        when = random_datetime(rng, start + timedelta(days=rng.randrange(max((last - start).days,
                                                                              1))))
        home = rng.random() < 0.3
        out.append(
            encounter(f"{pid}-enc-{n + 1}", pid, klass="HH" if home else "AMB",
                      klass_display="home health" if home else "ambulatory",
                      type_code=HOME_VISIT if home else CONSULTATION, start=when,
                      end=when + timedelta(hours=1), org="RWM", who=rng.choice(staff),
                      episode_id=f"{pid}-eoc-1")
        )
    relevant = {"depression", "anxiety", "schizophrenia", "bipolar", "ptsd",
                "alcohol_dependence", "drug_misuse", "dementia", "adhd", "autism"}
    keys = [k for k in person.conditions if k in relevant] or ["anxiety"]
    out.extend(_problems_and_medicines(pid, keys, start, rng))
    out.extend(_allergies(pid, person, start, rng, 0.6))
    if {"schizophrenia", "bipolar"}.intersection(keys) or rng.random() < 0.3:
        out.append(care_plan(f"{pid}-cp-1", pid, "Care Programme Approach care plan", start,
                             coordinator))
    if rng.random() < 0.2:
        text, code = rng.choice((("Risk of self-harm", "risk-self-harm"),
                                 ("Risk to others", "risk-to-others"),
                                 ("Lone working risk: visit in pairs", "lone-working")))
        out.append(flag(f"{pid}-flag-1", pid, text, code, start, _practitioner_ref(doctor)))
    return out


def _community_resources(
    ctx: ExportContext, r: SourceRecord, rng: random.Random
) -> list[Resource]:
    person = ctx.population[r.person_id]
    pid = r.source_id
    fall = bool({"fall", "hip_fracture"}.intersection(person.conditions))
    team_code = "RWC-REHAB" if fall or rng.random() < 0.3 else "RWC-DN"
    team = ctx.area.org("RWC").team(team_code)
    staff = ctx.staff(team_code)
    lead = staff[0]
    start = activity_date(rng)
    end = None if rng.random() < 0.6 else start + timedelta(days=rng.randrange(14, 200))
    if end is not None and end >= REFERENCE_DATE:
        end = None
    out: list[Resource] = [
        care_team(f"{pid}-ct-1", pid, team_code=team.code, team_name=team.name, org="RWC",
                  members=[(lead, "Key worker")], start=start),
        episode_of_care(f"{pid}-eoc-1", pid, team_name=team.name, org="RWC", start=start,
                        end=end, manager=lead, care_team_id=f"{pid}-ct-1"),
    ]
    last = end or REFERENCE_DATE
    for n in range(rng.randint(1, 6)):
        day = start + timedelta(days=rng.randrange(max((last - start).days, 1)))
        when = random_datetime(rng, day)
        out.append(
            encounter(f"{pid}-enc-{n + 1}", pid, klass="HH", klass_display="home health",
                      type_code=HOME_VISIT, start=when, end=when + timedelta(minutes=45),
                      org="RWC", who=rng.choice(staff), episode_id=f"{pid}-eoc-1")
        )
        systolic = rng.randint(105, 170)
        out.append(observation_bp(f"{pid}-obs-{n + 1}", pid, systolic,
                                  rng.randint(60, min(systolic - 25, 100)), day))
    keys = [k for k in person.conditions if k not in SEALED_KEYS and CONDITIONS[k].sensitive
            is None]
    out.extend(_problems_and_medicines(pid, keys, start, rng))
    out.extend(_allergies(pid, person, start, rng, 0.5))
    title = "Falls prevention plan" if fall else rng.choice(
        ("Wound care plan", "Continence care plan", "Long-term conditions care plan"))
    out.append(care_plan(f"{pid}-cp-1", pid, title, start, lead))
    return out


def _gp_resources(
    ctx: ExportContext, org: str, r: SourceRecord, rng: random.Random
) -> list[Resource]:
    person = ctx.population[r.person_id]
    pid = r.source_id
    staff = ctx.staff(f"{org}-CLIN")
    clinicians = [p for p in staff if p.role.value in ("clinician", "nurse")]
    out: list[Resource] = []
    registered = REFERENCE_DATE - timedelta(days=rng.randrange(30, 365 * 30))
    registered = max(registered, person.birth_date + timedelta(days=14))
    for n, key in enumerate(person.conditions, start=1):
        code = CONDITIONS[key]
        onset = registered + timedelta(days=rng.randrange(max((REFERENCE_DATE - registered).days,
                                                              1)))
        out.append(condition(f"{pid}-cond-{n}", pid, code, onset=onset,
                             category="problem-list-item", active=key not in {"fall", "chlamydia"}))
    meds = sorted({m for k in person.conditions for m in MEDICINES_FOR.get(k, ())})
    for n, med in enumerate(meds, start=1):
        start = registered + timedelta(days=rng.randrange(max((REFERENCE_DATE - registered).days,
                                                              1)))
        out.append(medication_statement(f"{pid}-med-{n}", pid, MEDICINES[med], start))
    out.extend(_allergies(pid, person, registered, rng, 1.0))
    if person.age() >= 16:
        out.append(observation_smoking(f"{pid}-obs-1", pid, person.smoking,
                                       activity_date(rng)))
        if rng.random() < 0.6:
            out.append(observation_bmi(f"{pid}-obs-2", pid, rng.gauss(27.5, 5.0),
                                       activity_date(rng)))
    for n in range(rng.choice((0, 1, 1, 2, 3, 4))):
        when = random_datetime(rng, activity_date(rng))
        out.append(
            encounter(f"{pid}-enc-{n + 1}", pid, klass="AMB", klass_display="ambulatory",
                      type_code=CONSULTATION, start=when, end=when + timedelta(minutes=10),
                      org=org, who=rng.choice(clinicians))
        )
    author = _org_ref(org)
    if ctx.contacts["WCCCS"].roles.get(person.id) == "child-cp":
        out.append(flag(f"{pid}-flag-1", pid, "Subject of a child protection plan",
                        CHILD_PROTECTION_FLAG, activity_date(rng), author))
    if person.id in ctx.carer_of:
        out.append(flag(f"{pid}-flag-2", pid, "Is a carer", "is-a-carer", registered, author))
    return out


CHILD_PROTECTION_FLAG = "child-protection-plan"


def sensitive_category(res: Resource) -> DataCategory | None:
    """The category of a resource access control must protect beyond plain clinical data."""
    if res["resourceType"] == "Condition":
        code = res["code"]["coding"][0]["code"]
        for c in CONDITIONS.values():
            if c.code == code and c.sensitive in (
                DataCategory.SEXUAL_HEALTH, DataCategory.GENDER_IDENTITY
            ):
                return c.sensitive
    if res["resourceType"] == "Flag" and res["code"]["coding"][0]["code"] == CHILD_PROTECTION_FLAG:
        return DataCategory.SAFEGUARDING
    return None


# --- bundles ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FhirFeed:
    org_code: str
    bundle_type: str
    content: Callable[[ExportContext, SourceRecord, random.Random], list[Resource]]
    about: str


def export_fhir(ctx: ExportContext, feed: FhirFeed) -> None:
    org = feed.org_code
    rng = ctx.rng(f"{org}-fhir")
    records = ctx.records[org]
    local = ctx.area.org(org).system.patient_id_system
    base = f"https://fhir.wessex.example/{org.lower()}/R4"
    is_gp = ctx.area.org(org).kind.value == "gp-practice"
    for chunk_no, start in enumerate(range(0, len(records), PATIENTS_PER_BUNDLE), start=1):
        rel = f"{org}/fhir/{org.lower()}-bundle-{chunk_no:03d}.json"
        entries: list[Resource] = []
        for r in records[start : start + PATIENTS_PER_BUNDLE]:
            person = ctx.population[r.person_id]
            gp = org if is_gp else person.gp_practice
            resources = [patient(ctx, r, local, gp=gp), *feed.content(ctx, r, rng)]
            for res in resources:
                category = sensitive_category(res)
                if category is not None:
                    ctx.out.sensitive.append(
                        SensitiveRecord(org, rel, res["resourceType"], res["id"], category.value)
                    )
                entry: Resource = {
                    "fullUrl": f"{base}/{res['resourceType']}/{res['id']}",
                    "resource": res,
                }
                if feed.bundle_type == "transaction":
                    entry["request"] = {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}
                entries.append(entry)
            ctx.out.truth.append(GroundTruthRow(org, RECORD_TYPE, r.source_id, r.person_id))
        _bad_fhir_entries(ctx, org, rel, entries, chunk_no)
        ctx.out.write_bytes(
            rel, _bundle_bytes(org, chunk_no, feed.bundle_type, entries), org=org,
            fmt="fhir-r4-bundle", encoding="utf-8", count=len(entries), about=feed.about,
        )


def _bad_fhir_entries(
    ctx: ExportContext, org: str, rel: str, entries: list[Resource], chunk_no: int
) -> None:
    """J81002: one Patient with a wrong NHS check digit; RWM: one born in the future."""
    if chunk_no != 1:
        return
    patients = [(i, e) for i, e in enumerate(entries) if e["resource"]["resourceType"] == "Patient"]
    if org == "J81002":
        for i, entry in patients[len(patients) // 2 :]:
            ids = entry["resource"]["identifier"]
            if ids[0]["system"] == NHS_NUMBER_SYSTEM:
                good = ids[0]["value"]
                ids[0]["value"] = good[:9] + str((int(good[9]) + 3) % 10)
                _record_bad(ctx, rel, i, entry, "invalid-nhs-number",
                            "Patient.identifier NHS number fails the Modulus 11 check")
                return
    if org == "RWM" and patients:
        i, entry = patients[len(patients) // 3]
        entry["resource"]["birthDate"] = date(REFERENCE_DATE.year + 6, 5, 17).isoformat()
        _record_bad(ctx, rel, i, entry, "dob-in-future", "Patient.birthDate is in the future")


def _record_bad(
    ctx: ExportContext, rel: str, index: int, entry: Resource, problem: str, detail: str
) -> None:
    source_id = entry["resource"]["id"]
    person_id = next(r.person_id for r in ctx.records[rel.split("/")[0]] if r.source_id == source_id)
    ctx.out.bad_rows.append(BadRow(rel, index + 1, problem, detail, source_id, person_id))


def _bundle_bytes(org: str, number: int, bundle_type: str, entries: list[Resource]) -> bytes:
    head = orjson.dumps(
        {
            "resourceType": "Bundle",
            "id": f"{org.lower()}-export-{number:03d}",
            "type": bundle_type,
            "timestamp": f"{REFERENCE_DATE.isoformat()}T02:00:00+00:00",
        }
    )
    body = b",\n".join(orjson.dumps(e) for e in entries)
    return head[:-1] + b',"entry":[\n' + body + b"\n]}\n"


def acute_feed(plan: dict[str, list[AcuteEncounter]]) -> FhirFeed:
    """The hospital EPR feed; its attendances are the ones the PAS sends as ADT messages."""
    return FhirFeed(
        "RWX", "transaction", lambda ctx, r, rng: _acute_resources(ctx, r, rng, plan),
        "Hospital EPR: patients, attendances, diagnoses, medicines, allergies",
    )


OTHER_FEEDS = (
    FhirFeed("RWM", "collection", _mental_health_resources,
             "Mental health record: episodes, care teams, contacts, diagnoses, care plans, risks"),
    FhirFeed("RWC", "collection", _community_resources,
             "Community services: episodes, home visits, observations, care plans"),
    FhirFeed("J81001", "transaction",
             lambda ctx, r, rng: _gp_resources(ctx, "J81001", r, rng),
             "GP record: problems, medicines, allergies, observations, consultations, flags"),
    FhirFeed("J81002", "transaction",
             lambda ctx, r, rng: _gp_resources(ctx, "J81002", r, rng),
             "GP record: problems, medicines, allergies, observations, consultations, flags"),
)
