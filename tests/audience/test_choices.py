"""audience/choices.py: what a posted form may choose, how long a pause lasts, and the topics
a reader has at send time (their choice over a list column; every topic without one)."""

from __future__ import annotations

import datetime as dt

import pytest

from newsletter_mailer.audience.choices import (
    Choice,
    ChoiceError,
    ReaderChoices,
    months_later,
    read_choice,
)
from newsletter_mailer.audience.segments import parse_condition
from newsletter_mailer.audience.subscribers import Subscriber

OFFERED = ("Diary", "Campaigns", "Local news")
NOW = dt.datetime(2026, 12, 4, 21, 0, tzinfo=dt.UTC).timestamp()
NONE = Choice(None)


def test_ticked_topics_are_kept_in_the_settings_order_and_none_ticked_is_a_choice() -> None:
    chosen = read_choice({"topic": ["Local news", "Diary"], "pause": ["keep"]}, OFFERED, NONE, NOW)
    assert chosen == Choice(("Diary", "Local news"), 0.0)
    assert read_choice({"pause": ["keep"]}, OFFERED, NONE, NOW) == Choice((), 0.0)


@pytest.mark.parametrize(
    "form",
    [
        {"topic": ["Sports"]},
        {"topic": ["diary"]},  # exactly as offered: the page sends it so
        {"topic": ["Diary "]},
        {"topic": ["Diary", "Diary"]},
        {"pause": ["2"]},
        {"pause": ["03"]},
        {"pause": ["３"]},
        {"pause": ["1", "3"]},
        {"pause": [""]},
        {},  # an empty body, or a multipart one read as a query: it must not wipe the topics
        {"topic": ["Diary"]},
    ],
)
def test_a_form_the_page_never_sends_is_refused(form: dict[str, list[str]]) -> None:
    with pytest.raises(ChoiceError):
        read_choice(form, OFFERED, NONE, NOW)


def test_a_pause_runs_whole_months_and_keep_and_resume_do_what_they_say() -> None:
    three = read_choice({"pause": ["3"]}, OFFERED, NONE, NOW)
    assert dt.datetime.fromtimestamp(three.paused_until, dt.UTC) == dt.datetime(2027, 3, 4, 21, 0, tzinfo=dt.UTC)
    assert read_choice({"pause": ["keep"]}, OFFERED, three, NOW).paused_until == three.paused_until
    assert read_choice({"pause": ["resume"]}, OFFERED, three, NOW).paused_until == 0.0
    over = Choice(None, NOW - 1)
    assert read_choice({"pause": ["keep"]}, OFFERED, over, NOW).paused_until == 0.0  # an ended pause is not kept
    end_of_january = dt.datetime(2027, 1, 31, tzinfo=dt.UTC).timestamp()
    assert dt.datetime.fromtimestamp(months_later(end_of_january, 1), dt.UTC).date() == dt.date(2027, 2, 28)
    assert dt.datetime.fromtimestamp(months_later(end_of_january, 6), dt.UTC).date() == dt.date(2027, 7, 31)


def test_without_topics_offered_a_form_changes_only_the_pause() -> None:
    kept = Choice(("Diary",), 0.0)
    assert read_choice({"pause": ["1"]}, (), kept, NOW).topics == ("Diary",)


def test_a_readers_topics_override_the_list_and_no_choice_means_every_topic() -> None:
    choices = ReaderChoices(
        {"ann@example.org": Choice(("Campaigns",)), "bob@example.org": Choice(None, NOW + 60)}, OFFERED, NOW
    )
    diary = parse_condition('"Diary" in topics')
    listed = Subscriber("ANN@example.org", fields=(("topics", "Diary"),))
    ann = choices.reader(listed)
    assert dict(ann.fields)["topics"] == "Campaigns" and not diary(ann.merge_values())
    bob = choices.reader(Subscriber("bob@example.org"))
    assert dict(bob.fields)["topics"] == "Diary, Campaigns, Local news" and diary(bob.merge_values())
    carol = choices.reader(Subscriber("carol@example.org", fields=(("topics", "Local news"),)))
    assert dict(carol.fields)["topics"] == "Local news"  # the list's cell stands for a reader who never chose
    assert choices.paused("BOB@example.org") and not choices.paused("ann@example.org")
    assert not ReaderChoices({"bob@example.org": Choice(None, NOW - 1)}, OFFERED, NOW).paused("bob@example.org")
