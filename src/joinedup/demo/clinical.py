"""Clinical code tables for the demo: conditions, reasons for attendance, medicines, allergies.

Codes are SNOMED CT concept ids (substances for medicines and allergens)
chosen to look like real UK records; they are demo data, not a clinical
reference. ``sensitive`` names the data category a code puts a record in when
that is more than plain ``conditions`` (mental health, sexual health, ...):
the feed mappings of issue 3 label resources from it, and the manifest lists
the sensitive records so access tests know what must be protected.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from joinedup.labels import DataCategory

SNOMED = "http://snomed.info/sct"


@dataclass(frozen=True, slots=True)
class Code:
    key: str
    code: str
    display: str
    sensitive: DataCategory | None = None


_MH = DataCategory.MENTAL_HEALTH
_SUB = DataCategory.SUBSTANCE_MISUSE
_SEX = DataCategory.SEXUAL_HEALTH
_GEN = DataCategory.GENDER_IDENTITY

CONDITIONS = MappingProxyType(
    {
        c.key: c
        for c in (
            Code("hypertension", "38341003", "Hypertensive disorder, systemic arterial"),
            Code("diabetes_t2", "44054006", "Diabetes mellitus type 2"),
            Code("asthma", "195967001", "Asthma"),
            Code("copd", "13645005", "Chronic obstructive lung disease"),
            Code("atrial_fibrillation", "49436004", "Atrial fibrillation"),
            Code("heart_failure", "84114007", "Heart failure"),
            Code("dementia", "52448006", "Dementia"),
            Code("ckd", "709044004", "Chronic kidney disease"),
            Code("osteoarthritis", "396275006", "Osteoarthritis"),
            Code("hypothyroidism", "40930008", "Hypothyroidism"),
            Code("stroke", "230690007", "Cerebrovascular accident"),
            Code("breast_cancer", "254837009", "Malignant neoplasm of breast"),
            Code("colon_cancer", "363406005", "Malignant neoplasm of colon"),
            Code("epilepsy", "84757009", "Epilepsy"),
            Code("fall", "1912002", "Fall"),
            Code("hip_fracture", "5913000", "Fracture of neck of femur"),
            Code("learning_disability", "110359009", "Intellectual disability"),
            Code("autism", "408856003", "Autistic disorder"),
            Code("adhd", "406506008", "Attention deficit hyperactivity disorder"),
            Code("depression", "35489007", "Depressive disorder", _MH),
            Code("anxiety", "197480006", "Anxiety disorder", _MH),
            Code("schizophrenia", "58214004", "Schizophrenia", _MH),
            Code("bipolar", "13746004", "Bipolar disorder", _MH),
            Code("ptsd", "47505003", "Posttraumatic stress disorder", _MH),
            Code("alcohol_dependence", "7200002", "Alcoholism", _SUB),
            Code("drug_misuse", "66214007", "Substance abuse", _SUB),
            Code("chlamydia", "105629000", "Chlamydial infection", _SEX),
            Code("hiv", "86406008", "Human immunodeficiency virus infection", _SEX),
            Code("gender_dysphoria", "93461009", "Gender dysphoria", _GEN),
        )
    }
)

MENTAL_HEALTH_KEYS = frozenset(k for k, c in CONDITIONS.items() if c.sensitive is _MH)
SEALED_KEYS = frozenset(k for k, c in CONDITIONS.items() if c.sensitive in (_SEX, _GEN))
"""Conditions only the GP records and only the GP may see by default."""

ATTENDANCE_REASONS = MappingProxyType(
    {
        c.key: c
        for c in (
            Code("chest_pain", "29857009", "Chest pain"),
            Code("pneumonia", "233604007", "Pneumonia"),
            Code("uti", "68566005", "Urinary tract infectious disease"),
            Code("cellulitis", "128045006", "Cellulitis"),
            Code("abdominal_pain", "21522001", "Abdominal pain"),
            Code("head_injury", "82271004", "Injury of head"),
            Code("ankle_sprain", "44465007", "Sprain of ankle"),
            Code("fall", "1912002", "Fall"),
            Code("hip_fracture", "5913000", "Fracture of neck of femur"),
            Code("overdose", "55680006", "Drug overdose", _MH),
            Code("self_harm", "248062006", "Self-injurious behavior", _MH),
        )
    }
)

MEDICINES = MappingProxyType(
    {
        c.key: c
        for c in (
            Code("amlodipine", "386864001", "Amlodipine"),
            Code("ramipril", "386872004", "Ramipril"),
            Code("metformin", "372567009", "Metformin"),
            Code("salbutamol", "372897005", "Salbutamol"),
            Code("apixaban", "698090000", "Apixaban"),
            Code("furosemide", "387475002", "Furosemide"),
            Code("paracetamol", "387517004", "Paracetamol"),
            Code("levothyroxine", "710809001", "Levothyroxine"),
            Code("aspirin", "387458008", "Aspirin"),
            Code("atorvastatin", "373444002", "Atorvastatin"),
            Code("omeprazole", "387137007", "Omeprazole"),
            Code("sertraline", "372594008", "Sertraline", _MH),
            Code("fluoxetine", "372767007", "Fluoxetine", _MH),
            Code("olanzapine", "386849001", "Olanzapine", _MH),
            Code("risperidone", "386840002", "Risperidone", _MH),
            Code("carbamazepine", "387222003", "Carbamazepine"),
            Code("methylphenidate", "373337007", "Methylphenidate"),
        )
    }
)

MEDICINES_FOR = MappingProxyType(
    {
        "hypertension": ("amlodipine", "ramipril"),
        "diabetes_t2": ("metformin",),
        "asthma": ("salbutamol",),
        "copd": ("salbutamol",),
        "atrial_fibrillation": ("apixaban",),
        "heart_failure": ("furosemide", "ramipril"),
        "osteoarthritis": ("paracetamol",),
        "hypothyroidism": ("levothyroxine",),
        "stroke": ("aspirin", "atorvastatin", "omeprazole"),
        "depression": ("sertraline",),
        "anxiety": ("fluoxetine",),
        "schizophrenia": ("olanzapine",),
        "bipolar": ("risperidone",),
        "epilepsy": ("carbamazepine",),
        "adhd": ("methylphenidate",),
    }
)
"""What a person with a condition is typically prescribed (first choice first)."""

ALLERGENS = MappingProxyType(
    {
        c.key: c
        for c in (
            Code("penicillin", "764146007", "Penicillin"),
            Code("peanut", "762952008", "Peanut"),
            Code("latex", "111088007", "Latex"),
            Code("sulfonamide", "387406002", "Sulfonamide"),
            Code("egg", "102263004", "Eggs"),
            Code("pollen", "256259004", "Pollen"),
        )
    }
)


def condition_prevalence(age: int, sex: str, homeless: bool) -> list[tuple[str, float]]:
    """(condition key, chance a person has it) for one person; rough UK orders of magnitude."""
    over = _over(age)
    adult = 1.0 if age >= 18 else 0.0
    female = sex == "female"
    chances = [
        ("hypertension", 0.05 + 0.45 * over(40, 60)),
        ("diabetes_t2", 0.02 * adult + 0.13 * over(40, 40)),
        ("asthma", 0.08),
        ("copd", 0.07 * over(45, 40) + 0.15 * homeless),
        ("atrial_fibrillation", 0.12 * over(60, 35)),
        ("heart_failure", 0.08 * over(65, 30)),
        ("dementia", 0.3 * over(72, 25)),
        ("ckd", 0.15 * over(55, 40)),
        ("osteoarthritis", 0.3 * over(45, 45)),
        ("hypothyroidism", (0.06 if female else 0.01) * adult),
        ("stroke", 0.08 * over(60, 35)),
        ("breast_cancer", 0.04 * over(45, 40) if female else 0.0),
        ("colon_cancer", 0.02 * over(55, 40)),
        ("epilepsy", 0.008),
        ("fall", 0.25 * over(70, 25)),
        ("hip_fracture", 0.06 * over(75, 20)),
        ("learning_disability", 0.006),
        ("autism", 0.012),
        ("adhd", 0.04 if 6 <= age <= 30 else 0.0),
        ("depression", (0.11 + 0.3 * homeless) * (age >= 14)),
        ("anxiety", (0.08 + 0.2 * homeless) * (age >= 10)),
        ("schizophrenia", (0.007 + 0.1 * homeless) * adult),
        ("bipolar", 0.01 * adult),
        ("ptsd", (0.02 + 0.15 * homeless) * adult),
        ("alcohol_dependence", (0.015 + 0.35 * homeless) * adult),
        ("drug_misuse", (0.01 + 0.4 * homeless) * (age >= 15)),
        ("chlamydia", 0.02 if 16 <= age <= 30 else 0.0),
        ("hiv", 0.003 * adult),
        ("gender_dysphoria", 0.004 if 14 <= age <= 40 else 0.0),
    ]
    return [(key, min(chance, 0.95)) for key, chance in chances]


def allergy_prevalence(age: int) -> list[tuple[str, float]]:
    return [
        ("penicillin", 0.07),
        ("peanut", 0.02 if age < 40 else 0.005),
        ("latex", 0.005),
        ("sulfonamide", 0.01),
        ("egg", 0.02 if age < 10 else 0.002),
        ("pollen", 0.04),
    ]


def _over(age: int) -> _Ramp:
    return _Ramp(age)


class _Ramp:
    """0 below ``start``, rising linearly to 1 over ``span`` years."""

    def __init__(self, age: int) -> None:
        self.age = age

    def __call__(self, start: int, span: int) -> float:
        return min(1.0, max(0.0, (self.age - start) / span))
