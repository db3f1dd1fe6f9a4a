from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from joinedup.demo.names import are_nicknames, load_name_lists, nickname_groups, nicknames


def test_well_known_nicknames_are_there() -> None:
    table = nicknames()
    assert {"bob", "rob", "bobby"} <= table["robert"]
    assert {"liz", "beth"} <= table["elizabeth"]
    assert {"bill", "will"} <= table["william"]
    assert {"maggie", "peggy"} <= table["margaret"]
    assert are_nicknames("Peggy", "MARGARET")
    assert not are_nicknames("Peggy", "Robert")


@given(st.sampled_from(sorted(nicknames())), st.data())
def test_nickname_relation_is_symmetric(name: str, data: st.DataObject) -> None:
    other = data.draw(st.sampled_from(sorted(nicknames()[name])))
    assert name in nicknames()[other]
    assert name not in nicknames()[name]


def test_groups_and_lists_are_windows_1252_safe() -> None:
    # One charity exports in Windows-1252: every name the generator can use must encode.
    lists = load_name_lists()
    names = [n for g in nickname_groups() for n in g]
    names += [n for cohorts in lists.general_first.values() for ns in cohorts.values() for n in ns]
    names += [n for sexes in lists.group_first.values() for ns in sexes.values() for n in ns]
    names += list(lists.general_surnames) + list(lists.long_tail_surnames)
    names += [n for ns in lists.group_surnames.values() for n in ns]
    for name in names:
        name.encode("cp1252")
    assert any(not n.isascii() for n in names)
