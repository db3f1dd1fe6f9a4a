"""CSV exports of the council, the charities and the police, each in its own dialect.

Column names, codes, date styles and encodings differ between organisations on
purpose: issue 3's mapping files have to reconcile them. The deliberate bad
rows (see :mod:`joinedup.demo.bad_rows`) are tagged here, at the row they sit on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

from joinedup.demo.context import (
    ExportContext,
    activity_date,
    d_m_yy,
    d_mon_yyyy,
    dmy,
    iso,
    random_date,
    random_datetime,
)
from joinedup.demo.output import CsvTable, GroundTruthRow, SensitiveRecord, Tag
from joinedup.demo.population import REFERENCE_DATE, Sex
from joinedup.demo.quality import SourceRecord
from joinedup.labels import DataCategory

RECORD_TYPE = "csv-person"

ASC_ETHNICITY = {
    "A": "10", "B": "11", "C": "19", "D": "21", "E": "22", "F": "23", "G": "29", "H": "31",
    "J": "32", "K": "33", "L": "39", "M": "41", "N": "42", "P": "49", "R": "51", "S": "59",
    "Z": "99",
}
"""Adult social care's local numeric ethnicity codes (NHS DD letter -> local)."""

DFE_ETHNICITY = {
    "A": "WBRI", "B": "WIRI", "C": "WOTH", "D": "MWBC", "E": "MWBA", "F": "MWAS", "G": "MOTH",
    "H": "AIND", "J": "APKN", "K": "ABAN", "L": "AOTH", "M": "BCRB", "N": "BAFR", "P": "BOTH",
    "R": "CHNE", "S": "OOTH", "Z": "REFU",
}
"""Children's services use the DfE census ethnicity codes."""

POLICE_SDE = {
    "A": "W1", "B": "W2", "C": "W9", "D": "M1", "E": "M2", "F": "M3", "G": "M9", "H": "A1",
    "J": "A2", "K": "A3", "L": "A9", "M": "B2", "N": "B1", "P": "B9", "R": "A4", "S": "O9",
    "Z": "NS",
}
"""Police self-defined ethnicity (18+1) codes."""

CHARITY_ETHNICITY = {
    "A": ("White British", "white british", "British", "White"),
    "B": ("Irish", "White Irish"),
    "C": ("White other", "Polish", "European"),
    "D": ("Mixed",), "E": ("Mixed",), "F": ("Mixed", "Mixed - White and Asian"), "G": ("Mixed",),
    "H": ("Indian", "Asian British"), "J": ("Pakistani", "Asian"), "K": ("Bangladeshi", "Asian"),
    "L": ("Asian",), "M": ("Black Caribbean", "Black British"), "N": ("Black African", "African"),
    "P": ("Black",), "R": ("Chinese",), "S": ("Other",), "Z": ("Prefer not to say", ""),
}
"""Free text typed by charity staff for each NHS DD category."""


def _spaced_nhs(nhs: str | None) -> str:
    return "" if nhs is None else f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"


def _free_text_sex(rng: random.Random, sex: Sex | None) -> str:
    if sex is None:
        return rng.choice(("", "Prefer not to say", "unknown"))
    options = {
        Sex.FEMALE: ("Female", "female", "F", "Woman", "f"),
        Sex.MALE: ("Male", "male", "M", "Man", "m"),
    }[sex]
    return rng.choice(options)


def _truth(ctx: ExportContext, records: list[SourceRecord]) -> None:
    ctx.out.truth.extend(
        GroundTruthRow(r.org_code, RECORD_TYPE, r.source_id, r.person_id) for r in records
    )


def _by_record(
    rng: random.Random, by_person: dict[str, list[SourceRecord]], person_id: str
) -> SourceRecord:
    """Which of a person's records an activity was filed against (duplicates split them)."""
    return rng.choice(by_person[person_id])


# --- Wessex County Council Adult Social Care -------------------------------------------------

ASC_SERVICES = (
    ("HC", "Home care", "Wessex Homecare Ltd"),
    ("RES", "Residential care", "Froom Valley Care Home"),
    ("NUR", "Nursing care", "Egdon Heath Nursing Home"),
    ("DP", "Direct payment", ""),
    ("DAY", "Day opportunities", "Casterbridge Day Centre"),
    ("REAB", "Reablement", "WCC Reablement Service"),
    ("EQUIP", "Equipment", "Wessex Community Equipment"),
    ("TCARE", "Telecare", "Wessex Careline"),
)


def export_asc(ctx: ExportContext) -> None:
    org = "WCCASC"
    rng = ctx.rng(org)
    records = ctx.records[org]
    caseload = ctx.contacts[org]
    people = CsvTable(
        [
            "PERSON_ID", "NHS_NO", "FORENAME", "SURNAME", "DOB", "GENDER", "ETHNICITY",
            "ADDRESS_LINE_1", "ADDRESS_LINE_2", "TOWN", "POSTCODE", "PHONE",
            "CLIENT_TYPE", "PRIMARY_SUPPORT_REASON", "LAST_UPDATED",
        ]
    )
    reasons = (
        "Physical Support: Personal Care Support",
        "Physical Support: Access & Mobility Only",
        "Support with Memory & Cognition",
        "Learning Disability Support",
        "Mental Health Support",
        "Social Support: Support for Isolation/Other",
    )
    for r in records:
        person = ctx.population[r.person_id]
        role = caseload.roles[r.person_id]
        if role == "carer":
            reason = ""
        elif "learning_disability" in person.conditions:
            reason = reasons[3]
        elif "dementia" in person.conditions:
            reason = reasons[2]
        elif {"schizophrenia", "bipolar", "ptsd"}.intersection(person.conditions):
            reason = reasons[4]
        else:
            reason = rng.choice((reasons[0], reasons[0], reasons[1], reasons[5]))
        forename = r.given_name
        if r.middle_name and rng.random() < 0.1:
            forename = f"{r.given_name} {r.middle_name}"
        address = r.address
        people.add(
            [
                r.source_id,
                _spaced_nhs(r.nhs_number),
                forename,
                r.family_name,
                dmy(r.birth_date),
                {Sex.FEMALE: "F", Sex.MALE: "M", None: "U"}[r.sex],
                "" if rng.random() < 0.08 else ASC_ETHNICITY[person.ethnic_category],
                address.line1 if address else "NO FIXED ABODE",
                address.line2 if address else "",
                address.town if address else "",
                r.postcode_text,
                r.phone,
                "Carer" if role == "carer" else "Service User",
                reason,
                dmy(activity_date(rng)),
            ]
        )
    _truth(ctx, records)

    assessments = CsvTable(
        [
            "ASSESSMENT_ID", "PERSON_ID", "ASSESSMENT_TYPE", "START_DATE", "END_DATE",
            "OUTCOME", "TEAM_CODE", "WORKER_ID",
        ]
    )
    services = CsvTable(
        [
            "SERVICE_ID", "PERSON_ID", "SERVICE_TYPE", "PROVIDER", "START_DATE", "END_DATE",
            "PLANNED_HOURS_PER_WEEK", "WEEKLY_COST",
        ]
    )
    by_person = ctx.records_by_person(org)
    counter = iter(range(1, 10**7))
    service_counter = iter(range(1, 10**7))
    for person_id in caseload.person_ids:
        role = caseload.roles[person_id]
        for _ in range(rng.choice((1, 1, 2, 3))):
            r = _by_record(rng, by_person, person_id)
            team = rng.choice(("WCCASC-HSW", "WCCASC-LOC", "WCCASC-REAB"))
            start = activity_date(rng)
            end = start + timedelta(days=rng.randrange(5, 60))
            open_ = end >= REFERENCE_DATE or rng.random() < 0.1
            kind = "CARER" if role == "carer" else rng.choice(("CA", "CA", "REV", "OTA"))
            outcome = "" if open_ else rng.choice(("LTS", "LTS", "STS", "NFA", "UNIV"))
            assessments.add(
                [
                    f"A{next(counter):07d}", r.source_id, kind, dmy(start),
                    "" if open_ else dmy(end), outcome, team, rng.choice(ctx.staff(team)).id,
                ]
            )
        if role == "carer":
            continue
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            r = _by_record(rng, by_person, person_id)
            code, _label, provider = rng.choice(ASC_SERVICES)
            start = activity_date(rng)
            end = start + timedelta(days=rng.randrange(14, 700))
            hours = {"HC": rng.choice(("7", "10.5", "14", "21")), "DAY": "12"}.get(code, "")
            cost = f"{rng.uniform(40, 1400):.2f}" if code != "EQUIP" else ""
            services.add(
                [
                    f"S{next(service_counter):07d}", r.source_id, code, provider, dmy(start),
                    "" if end >= REFERENCE_DATE else dmy(end), hours, cost,
                ]
            )
    _asc_bad_rows(rng, people, ctx)
    ctx.out.write_csv(
        f"{org}/persons.csv", people, org=org,
        about="Adult social care people (service users and carers), one row per person record",
    )
    ctx.out.write_csv(
        f"{org}/assessments.csv", assessments, org=org,
        about="Care Act, review, carer's and OT assessments",
    )
    ctx.out.write_csv(
        f"{org}/services.csv", services, org=org, about="Services and care packages provided",
    )


def _asc_bad_rows(rng: random.Random, table: CsvTable, ctx: ExportContext) -> None:
    """Invalid NHS check digit, DOB in the future, and a repeated PERSON_ID."""
    ids = table.column("PERSON_ID")
    nhs_col = table.column("NHS_NO")
    dob_col = table.column("DOB")
    with_nhs = [i for i, row in enumerate(table.rows) if row[nhs_col]]
    if not with_nhs or len(table.rows) < 3:
        return
    i = with_nhs[len(with_nhs) // 4]
    good = table.rows[i][nhs_col].replace(" ", "")
    bad = good[:9] + str((int(good[9]) + 1) % 10)
    table.rows[i][nhs_col] = f"{bad[:3]} {bad[3:6]} {bad[6:]}"
    table.tags[i].append(
        Tag("invalid-nhs-number", "NHS_NO fails the Modulus 11 check",
            table.rows[i][ids], _person_of(ctx, "WCCASC", table.rows[i][ids]))
    )
    j = len(table.rows) // 2
    future = date(2031 + rng.randrange(5), rng.randint(1, 12), rng.randint(1, 28))
    table.rows[j][dob_col] = dmy(future)
    table.tags[j].append(
        Tag("dob-in-future", f"DOB {dmy(future)} is after the export date",
            table.rows[j][ids], _person_of(ctx, "WCCASC", table.rows[j][ids]))
    )
    k = (3 * len(table.rows)) // 4
    repeat = list(table.rows[k])
    repeat[table.column("PHONE")] = "07700 900000"
    repeat[table.column("LAST_UPDATED")] = dmy(REFERENCE_DATE - timedelta(days=1))
    table.insert(
        k + 1,
        repeat,
        Tag("duplicate-source-id", f"PERSON_ID {repeat[ids]} appears twice (row before it)",
            repeat[ids], _person_of(ctx, "WCCASC", repeat[ids])),
    )


def _person_of(ctx: ExportContext, org: str, source_id: str) -> str:
    for r in ctx.records[org]:
        if r.source_id == source_id:
            return r.person_id
    raise KeyError(source_id)


# --- Wessex County Council Children's Services -----------------------------------------------

CIN_NEED = ("N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8")
REFERRAL_SOURCES = ("1A", "1B", "2A", "3A", "3B", "3E", "5A", "6", "8", "9")
CP_CATEGORIES = ("NEG", "EMO", "PHY", "SAB", "MUL")


def export_childrens(ctx: ExportContext) -> None:
    org = "WCCCS"
    rng = ctx.rng(org)
    records = ctx.records[org]
    caseload = ctx.contacts[org]
    by_person = ctx.records_by_person(org)
    children_of: dict[str, list[str]] = {}
    for child_id in caseload.person_ids:
        for parent_id in ctx.population[child_id].parent_ids:
            children_of.setdefault(parent_id, []).append(child_id)
    people = CsvTable(
        [
            "ChildID", "Role", "NHSNumber", "GivenName", "FamilyName", "DateOfBirth", "Gender",
            "EthnicityCode", "Address", "PostCode", "LinkedChildID", "RelationshipToChild",
        ]
    )
    for r in records:
        person = ctx.population[r.person_id]
        role = caseload.roles[r.person_id]
        linked, relationship = "", ""
        if role == "parent":
            children = [c for c in children_of.get(r.person_id, []) if c in by_person]
            if children:
                linked = by_person[children[0]][0].source_id
            relationship = "Mother" if person.sex is Sex.FEMALE else "Father"
        address = r.address
        people.add(
            [
                r.source_id,
                "Parent" if role == "parent" else "Child",
                r.nhs_number or "",
                r.given_name,
                r.family_name.upper() if rng.random() < 0.7 else r.family_name,
                "" if r.birth_date is None else f"{dmy(r.birth_date)} 00:00",
                {Sex.MALE: "1", Sex.FEMALE: "2", None: "9"}[r.sex],
                DFE_ETHNICITY[person.ethnic_category],
                address.one_line() if address else "",
                r.postcode_text,
                linked,
                relationship,
            ]
        )
    _truth(ctx, records)

    episodes = CsvTable(
        [
            "EpisodeRef", "ChildID", "ReferralDate", "ReferralSource", "CINStartDate",
            "PrimaryNeedCode", "CINClosureDate", "ReasonForClosure", "TeamCode", "WorkerID",
        ]
    )
    plans = CsvTable(
        [
            "CPPlanID", "ChildID", "PlanStartDate", "InitialCategory", "LatestCategory",
            "PlanEndDate", "WorkerID",
        ]
    )
    numbers = iter(range(1, 10**7))
    for person_id in caseload.person_ids:
        role = caseload.roles[person_id]
        if not role.startswith("child"):
            continue
        r = _by_record(rng, by_person, person_id)
        referral = activity_date(rng)
        start = referral + timedelta(days=rng.randrange(0, 10))
        closed = start + timedelta(days=rng.randrange(30, 500))
        is_open = closed >= REFERENCE_DATE or role == "child-cp"
        worker = rng.choice(ctx.staff("WCCCS-CIN"))
        team = "WCCCS-MASH" if rng.random() < 0.2 else "WCCCS-CIN"
        need = "N1" if role == "child-cp" else rng.choice(CIN_NEED)
        episodes.add(
            [
                f"EP{next(numbers):06d}", r.source_id, dmy(referral), rng.choice(REFERRAL_SOURCES),
                dmy(start), need, "" if is_open else dmy(closed),
                "" if is_open else f"RC{rng.randint(1, 8)}", team, worker.id,
            ]
        )
        if role == "child-cp":
            plan_start = start + timedelta(days=rng.randrange(10, 60))
            plan_start = min(plan_start, REFERENCE_DATE - timedelta(days=1))
            initial = rng.choice(CP_CATEGORIES)
            plan_id = f"CPP{next(numbers):06d}"
            plans.add(
                [
                    plan_id, r.source_id, dmy(plan_start), initial,
                    initial if rng.random() < 0.8 else rng.choice(CP_CATEGORIES), "", worker.id,
                ]
            )
            ctx.out.sensitive.append(
                SensitiveRecord(org, f"{org}/child_protection.csv", "csv-row", plan_id,
                                DataCategory.SAFEGUARDING.value)
            )
    _childrens_bad_rows(people, ctx)
    ctx.out.write_csv(
        f"{org}/people.csv", people, org=org,
        about="Children known to children's social care and their parents",
    )
    ctx.out.write_csv(
        f"{org}/episodes.csv", episodes, org=org, about="Referrals and children-in-need episodes",
    )
    ctx.out.write_csv(
        f"{org}/child_protection.csv", plans, org=org, about="Child protection plans (flags)",
    )


def _childrens_bad_rows(table: CsvTable, ctx: ExportContext) -> None:
    """A date of birth that is not a date (31 February)."""
    dob = table.column("DateOfBirth")
    ids = table.column("ChildID")
    if not table.rows:
        return
    i = len(table.rows) // 3
    value = f"31/02/{REFERENCE_DATE.year - 9} 00:00"
    table.rows[i][dob] = value
    table.tags[i].append(
        Tag("unparseable-date", f"DateOfBirth {value!r} is not a calendar date",
            table.rows[i][ids], _person_of(ctx, "WCCCS", table.rows[i][ids]))
    )


# --- Wessex Police ---------------------------------------------------------------------------

CONCERNS = {
    "child-concern": ("CHILD_CONCERN", "WCCCS"),
    "domestic-abuse": ("DOMESTIC_ABUSE", "WCCCS"),
    "adult-at-risk": ("ADULT_AT_RISK", "WCCASC"),
    "missing-person": ("MISSING_PERSON", "WCCASC"),
    "mental-health": ("MENTAL_HEALTH", "RWM"),
}


def export_police(ctx: ExportContext) -> None:
    org = "WPOLICE"
    rng = ctx.rng(org)
    records = ctx.records[org]
    caseload = ctx.contacts[org]
    nominals = CsvTable(
        [
            "NOMINAL_REF", "SURNAME", "FORENAMES", "DOB", "SEX", "SDE", "NHS_NUMBER",
            "LAST_KNOWN_ADDRESS", "POSTCODE", "CREATED",
        ]
    )
    for r in records:
        person = ctx.population[r.person_id]
        forenames = f"{r.given_name} {r.middle_name}".strip() if rng.random() < 0.5 else (
            r.given_name
        )
        nominals.add(
            [
                r.source_id,
                r.family_name.upper(),
                forenames,
                iso(r.birth_date),
                {Sex.FEMALE: "F", Sex.MALE: "M", None: "U"}[r.sex],
                POLICE_SDE[person.ethnic_category],
                r.nhs_number or "",
                r.address.one_line() if r.address else "NFA",
                r.postcode_text,
                iso(activity_date(rng)),
            ]
        )
    _truth(ctx, records)
    referrals = CsvTable(
        [
            "REFERRAL_REF", "NOMINAL_REF", "REFERRAL_DATE", "CONCERN_TYPE", "RISK_LEVEL",
            "REFERRED_TO", "OFFICER_ID",
        ]
    )
    by_person = ctx.records_by_person(org)
    numbers = iter(range(1, 10**7))
    for person_id in caseload.person_ids:
        concern, referred_to = CONCERNS[caseload.roles[person_id]]
        for _ in range(rng.choice((1, 1, 2))):
            r = _by_record(rng, by_person, person_id)
            when = random_datetime(rng, activity_date(rng))
            referrals.add(
                [
                    f"SGR{next(numbers):07d}", r.source_id, when.isoformat(timespec="seconds"),
                    concern, rng.choice(("STANDARD", "STANDARD", "MEDIUM", "HIGH")),
                    referred_to, rng.choice(ctx.staff("WPOLICE-PPU")).id,
                ]
            )
    # A nominal whose reference was lost on export: a real person, but no id to key it by.
    if nominals.rows:
        source = rng.choice(records)
        row = list(nominals.rows[nominals.find("NOMINAL_REF", source.source_id)])
        row[nominals.column("NOMINAL_REF")] = ""
        nominals.insert(
            len(nominals.rows) // 2,
            row,
            Tag("missing-source-id", "NOMINAL_REF is empty", "", source.person_id),
        )
    ctx.out.write_csv(
        f"{org}/nominals.csv", nominals, org=org, encoding="utf-8-sig",
        about="People in police safeguarding records (nominals); UTF-8 with a byte order mark",
    )
    ctx.out.file_problem(
        f"{org}/nominals.csv", "utf-8-bom", "file starts with a UTF-8 byte order mark"
    )
    ctx.out.write_csv(
        f"{org}/safeguarding_referrals.csv", referrals, org=org,
        about="Safeguarding referrals made by the public protection unit",
    )


# --- Wessex Carers Support (charity) ---------------------------------------------------------

CARER_CONTACTS = (
    "Phone call", "Home visit", "Support group", "Respite break arranged", "Carer's grant",
    "Benefits advice", "Carer's assessment referral",
)


def export_carers(ctx: ExportContext) -> None:
    org = "WCARERS"
    rng = ctx.rng(org)
    records = ctx.records[org]
    cared_for = ctx.carer_of
    clients = CsvTable(
        [
            "Client Ref", "Full Name", "Date of Birth", "Gender", "NHS Number", "Address",
            "Post Code", "Telephone", "Cared-for Name", "Cared-for DOB", "Relationship",
            "Registered",
        ]
    )
    first_child: dict[str, str] = {}
    for p in ctx.population.people:
        for parent_id in p.parent_ids:
            first_child.setdefault(parent_id, p.id)
    for r in records:
        carer = ctx.population[r.person_id]
        other_id = cared_for.get(r.person_id) or first_child.get(r.person_id)
        cared_name, cared_dob, relationship = "", "", ""
        if other_id is not None:
            other = ctx.population[other_id]
            cared_name = f"{other.given_name} {other.family_name}"
            cared_dob = d_mon_yyyy(other.birth_date) if rng.random() < 0.7 else ""
            relationship = _relationship(carer.id, other.parent_ids, other.age() - carer.age())
        name = f"{r.family_name}, {r.given_name}"
        if r.middle_name and rng.random() < 0.2:
            name = f"{name} {r.middle_name}"
        clients.add(
            [
                r.source_id,
                name,
                d_mon_yyyy(r.birth_date),
                _free_text_sex(rng, r.sex),
                _spaced_nhs(r.nhs_number) if rng.random() < 0.5 else (r.nhs_number or ""),
                r.address.one_line() if r.address else "",
                r.postcode_text,
                r.phone,
                cared_name,
                cared_dob,
                relationship,
                d_mon_yyyy(activity_date(rng)),
            ]
        )
    _truth(ctx, records)
    _ensure_non_ascii(clients, rng, ctx)
    contacts = CsvTable(["Contact Ref", "Client Ref", "Contact Date", "Contact Type", "Staff ID"])
    numbers = iter(range(1, 10**6))
    for r in records:
        for _ in range(rng.randint(1, 4)):
            contacts.add(
                [
                    f"CT{next(numbers):06d}", r.source_id, d_mon_yyyy(activity_date(rng)),
                    rng.choice(CARER_CONTACTS), rng.choice(ctx.staff("WCARERS-SUP")).id,
                ]
            )
    ctx.out.write_csv(
        f"{org}/clients.csv", clients, org=org, encoding="cp1252",
        about="Registered carers; exported from a Windows spreadsheet in Windows-1252",
    )
    ctx.out.write_csv(
        f"{org}/contacts.csv", contacts, org=org, about="Support contacts with carers",
    )


def _relationship(carer_id: str, cared_parents: tuple[str, ...], age_gap: int) -> str:
    if carer_id in cared_parents:
        return "Parent"
    if age_gap > 15:
        return "Son/Daughter"
    return "Partner"


def _ensure_non_ascii(table: CsvTable, rng: random.Random, ctx: ExportContext) -> None:
    """The Windows-1252 file must contain a non-ASCII name so a wrong decode shows."""
    name_col = table.column("Full Name")
    ids = table.column("Client Ref")
    if not table.rows:
        return
    found = [i for i, row in enumerate(table.rows) if not row[name_col].isascii()]
    accentable = [
        i for i, row in enumerate(table.rows)
        if row[name_col].partition(", ")[2].split(" ")[0] in _ACCENTED
    ]
    if found:
        i, detail = found[0], "name contains non-ASCII letters encoded in Windows-1252"
    else:
        i = accentable[0] if accentable else rng.randrange(len(table.rows))
        family, _, given = table.rows[i][name_col].partition(", ")
        first, _, rest = given.partition(" ")
        accented = _ACCENTED.get(first) or _accented(first)
        table.rows[i][name_col] = f"{family}, {accented} {rest}".rstrip()
        detail = f"given name typed with an accent ({accented}) the other records lack"
    table.tags[i].append(
        Tag("windows-1252-non-ascii", detail, table.rows[i][ids],
            _person_of(ctx, "WCARERS", table.rows[i][ids]))
    )


_ACCENTED = {
    "Zoe": "Zoë", "Chloe": "Chloë", "Sean": "Seán", "Siobhan": "Siobhán", "Ciaran": "Ciarán",
    "Renee": "Renée", "Noel": "Noël", "Sinead": "Sinéad", "Jose": "José", "Andre": "André",
    "Rene": "René", "Ines": "Inês", "Joao": "João", "Zara": "Zára", "Elena": "Eléna",
}
"""Plain names with a common accented spelling, preferred when an accent must be added."""


def _accented(name: str) -> str:
    for plain, accented in (("e", "ë"), ("a", "á"), ("o", "ó"), ("i", "í"), ("u", "ú")):
        if plain in name:
            return name.replace(plain, accented, 1)
    return name + "é"


# --- Homeless Help Wessex (charity) ----------------------------------------------------------

SITUATIONS = ("Rough sleeping", "Hostel", "Sofa surfing", "Temporary accommodation")
SESSIONS = (
    "outreach", "hostel key work", "benefits advice", "GP registration support",
    "referral to mental health", "housing application",
)


def export_homeless(ctx: ExportContext) -> None:
    org = "WHOMEHELP"
    rng = ctx.rng(org)
    records = ctx.records[org]
    practices = {o.code: o.name for o in ctx.area.organisations}
    clients = CsvTable(
        [
            "id", "first_name", "last_name", "dob", "gender", "nhs_no", "ethnicity",
            "current_situation", "current_address", "last_settled_postcode", "registered_gp",
            "referral_date",
        ]
    )
    for r in records:
        person = ctx.population[r.person_id]
        if person.homeless:
            situation = "Hostel" if person.address else rng.choice(SITUATIONS[::2])
            settled = person.previous_addresses[0].postcode if person.previous_addresses else ""
        else:
            situation = "At risk of homelessness"
            settled = r.postcode_text
        given, family = r.given_name, r.family_name
        if rng.random() < 0.15:
            given, family = given.lower(), family.lower()
        gp = practices.get(person.gp_practice or "", "none")
        clients.add(
            [
                r.source_id,
                given,
                family,
                d_m_yy(r.birth_date),
                _free_text_sex(rng, r.sex),
                r.nhs_number or "",
                rng.choice(CHARITY_ETHNICITY[person.ethnic_category]),
                situation,
                r.address.one_line() if r.address else "NFA",
                settled if rng.random() < 0.8 else settled.replace(" ", "").lower(),
                gp if rng.random() < 0.8 else gp.split()[0].lower(),
                d_m_yy(activity_date(rng)),
            ]
        )
    _truth(ctx, records)
    if clients.rows:
        i = (2 * len(clients.rows)) // 3
        dob = clients.column("dob")
        value = f"12/13/{rng.randint(60, 99)}"
        clients.rows[i][dob] = value
        ids = clients.column("id")
        clients.tags[i].append(
            Tag("unparseable-date", f"dob {value!r} has month 13 in a d/m/yy column",
                clients.rows[i][ids], _person_of(ctx, org, clients.rows[i][ids]))
        )
    sessions = CsvTable(["session_id", "client_id", "date", "session_type", "worker_id"])
    numbers = iter(range(1, 10**6))
    for r in records:
        for _ in range(rng.randint(1, 6)):
            sessions.add(
                [
                    f"S{next(numbers):05d}", r.source_id,
                    d_m_yy(random_date(rng, REFERENCE_DATE - timedelta(days=540), REFERENCE_DATE)),
                    rng.choice(SESSIONS), rng.choice(ctx.staff("WHOMEHELP-OUT")).id,
                ]
            )
    ctx.out.write_csv(
        f"{org}/clients.csv", clients, org=org,
        about="People supported by the homelessness charity",
    )
    ctx.out.write_csv(
        f"{org}/support_sessions.csv", sessions, org=org, about="Outreach and key work sessions",
    )


EXPORTERS: tuple[Callable[[ExportContext], None], ...] = (
    export_asc, export_childrens, export_police, export_carers, export_homeless,
)
