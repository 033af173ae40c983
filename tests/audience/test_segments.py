"""segments.py: the condition language, each operator, every way a condition can be wrong, and
(hypothesis) that no text makes the parser raise anything but our ConditionError or reach
anything outside the grammar."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter_mailer.audience.segments import MAX_CONDITION_CHARS, column_key, parse_condition
from newsletter_mailer.errors import ConditionError, UserInputError

NORTH = {"branch": "North", "phone": "", "topics": "Diary; Local news", "age": "30"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('branch == "North"', True),
        ('branch == "north "', True),  # case and surrounding space do not count
        ("branch == 'South'", False),
        ('branch != "South"', True),
        ('branch in ["North", "East"]', True),
        ('branch not in ["North", "East"]', False),
        ('"Diary" in topics', True),
        ('"local news" in topics', True),
        ('"Campaigns" in topics', False),
        ('"Campaigns" not in topics', True),
        ("phone", False),
        ("not phone", True),
        ("age == 30", True),
        ("age == 30.0", True),
        ("age != 31", True),
        ("branch == 30", False),  # a number never equals text that is not one
        ('branch == "North" and not phone', True),
        ('branch == "South" or phone', False),
        ('not (branch == "South" or phone) and "Diary" in topics', True),
        ('NOT branch == "South" AND Branch == "North"', True),  # keywords and names in any case
        ("missing_column", False),  # a column the row lacks reads as empty
        ("branch in []", False),
    ],
)
def test_each_operator_on_one_reader(source: str, expected: bool) -> None:
    assert parse_condition(source)(NORTH) is expected


def test_and_binds_tighter_than_or() -> None:
    condition = parse_condition('branch == "South" and phone or age == 30')
    assert condition(NORTH) is True
    assert parse_condition('branch == "South" and (phone or age == 30)')(NORTH) is False


def test_columns_are_the_keys_merge_fields_use() -> None:
    condition = parse_condition('Branch == "North" or "x" in Topics or not phone')
    assert condition.columns == {"branch", "topics", "phone"}
    assert column_key(" Home Town ") == "home_town"


def test_quotes_inside_text() -> None:
    assert parse_condition(r'name == "Sam \"the\" Man"')({"name": 'Sam "the" Man'})
    assert parse_condition(r"name == 'O\'Brien'")({"name": "O'Brien"})


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("", "empty"),
        ("branch ==", "found the end"),
        ('"North"', "after a value"),
        ("branch.upper", "cannot read '.upper'"),
        ("len(branch) == 1", "found '('"),
        ('branch == "North', "cannot read"),
        ("(branch", "')'"),
        ("branch in 3", "a list like"),
        ("{{ subscriber.name }}", "cannot read '{{"),
        ("{% if x %}", "cannot read"),
        ("branch == North or", "found the end"),
        ('branch in ["a",]', "found ']'"),
        ('branch in ["a" "b"]', "',' or ']'"),
        ("branch = 'x'", "at character 8"),
        ("not", "found the end"),
        ("a b", "found 'b'"),
        ("__class__ == 1 or x[0]", "found '['"),
        ("(" * 40 + "a" + ")" * 40, "nested"),
        ("not " * 40 + "a", "nested"),
        ("a" * (MAX_CONDITION_CHARS + 1), "at most"),
    ],
)
def test_every_mistake_is_a_condition_error(source: str, said: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(source)
    assert said in str(caught.value)
    assert isinstance(caught.value, UserInputError)  # a user's mistake: one line, exit 2


_PIECES = st.sampled_from(
    ["branch", "topics", "and", "or", "not", "in", "==", "!=", "(", ")", "[", "]", ",", '"North"', "'x'", "3",
     "-2.5", "__import__", ".", "{{", "%}", "\\", '"', "'", "\n", "()", "lambda", "1e9", "**"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=14).map(" ".join)), st.dictionaries(
    st.sampled_from(["branch", "topics", "phone"]), st.text(max_size=10)))  # fmt: skip
def test_any_text_parses_or_is_refused_with_our_error(source: str, row: dict[str, str]) -> None:
    try:
        condition = parse_condition(source)
    except ConditionError:
        return
    assert condition(row) in (True, False)  # evaluating never raises either
    assert condition.columns <= {column_key(w) for w in re.findall(r"\w+", source)}  # only names written in it


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20))
def test_equality_with_any_text_is_a_plain_comparison(value: str) -> None:
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if "\n" in value:
        with pytest.raises(ConditionError):
            parse_condition(f"branch == {quoted}")
        return
    condition = parse_condition(f"branch == {quoted}")
    assert condition({"branch": value}) is (value.strip().casefold() == value.strip().casefold())
    assert condition({"branch": value + "x"}) is ((value + "x").strip().casefold() == value.strip().casefold())
