"""editions.py: each variant readers fall into is rendered and encoded once, and each reader's
message is the one of their variant (the parts their cells match, and no other)."""

from __future__ import annotations

from collections import Counter
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from conftest import write_issue
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.compose.editions import Editions, count_variants
from newsletter_mailer.compose.envelope import MessageTemplate
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import RenderedIssue, render_issue
from newsletter_mailer.config import Settings

BODY = (
    'Dear {{ subscriber.name }},\n\n## North branch\n{only: branch == "North"}\n\nNorthmeet on Tuesday.\n\n'
    "## Students\n{only: student}\n\nStudentcall for helpers.\n\n## Everyone\n\nEveryonetext.\n"
)


def _editions(tmp_path: Path, settings: Settings, body: str = BODY) -> tuple[Editions, list[RenderedIssue]]:
    rendered = render_issue(read_issue(write_issue(tmp_path, "subject: S\nhighlights: auto", body)), settings)
    signer = signer_for(settings)
    made: list[RenderedIssue] = []

    def make(r: RenderedIssue) -> MessageTemplate:
        made.append(r)
        return MessageTemplate(r, settings, signer)

    return Editions(rendered, settings, make), made


def _text(data: bytes) -> str:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _reader(n: int, branch: str, student: str = "") -> Subscriber:
    return Subscriber(f"r{n}@example.org", f"Reader {n}", (("branch", branch), ("student", student)))


def test_each_reader_gets_the_parts_their_cells_match(tmp_path: Path, settings: Settings) -> None:
    editions, _ = _editions(tmp_path, settings)
    north_student = _text(editions.envelope(_reader(1, "North", "yes")).data)
    south = _text(editions.envelope(_reader(2, "South")).data)
    assert "Northmeet" in north_student and "Studentcall" in north_student and "Everyonetext" in north_student
    assert "Northmeet" not in south and "NORTH BRANCH" not in south and "Studentcall" not in south
    assert "Everyonetext" in south and "Dear Reader 2" in south
    assert "North branch" not in south  # nor its line in the highlights box


def test_a_variant_is_rendered_and_encoded_once_however_many_readers(tmp_path: Path, settings: Settings) -> None:
    editions, made = _editions(tmp_path, settings)
    readers = [_reader(i, ["North", "South", "East", "West"][i % 4]) for i in range(200)]
    for reader in readers:
        editions.envelope(reader)
    assert len(made) == 2  # North, and everyone else (South, East, West see the same parts)
    tally = count_variants(editions.segmenter, readers)
    assert sorted(tally.values()) == [50, 150]
    counts = editions.counts(tally)
    assert [c.readers for c in counts] == [150, 50]
    assert "North branch" in counts[1].shows and counts[0].shows == "without any conditional part"
    assert counts[1].html_bytes > counts[0].html_bytes
    assert len(made) == 2  # counting sizes built nothing again


def test_an_issue_without_conditions_is_not_rendered_again(tmp_path: Path, settings: Settings) -> None:
    editions, made = _editions(tmp_path, settings, "## A\n\nText.\n")
    for i in range(5):
        editions.envelope(_reader(i, "North"))
    assert len(made) == 1 and made[0] is editions.full
    assert editions.counts(Counter()) == []


def test_a_condition_on_the_name_or_first_name_is_decided_per_name(tmp_path: Path, settings: Settings) -> None:
    body = '## For Ada\n{only: first_name == "Ada"}\n\nAdatext.\n\n## All\n\nx\n'
    editions, _ = _editions(tmp_path, settings, body)
    ada, bob = Subscriber("a@example.org", "Ada Lovelace"), Subscriber("b@example.org", "Bob Smith")
    assert "Adatext" in _text(editions.envelope(ada).data)
    assert "Adatext" not in _text(editions.envelope(bob).data)  # same (empty) fields, another name


def test_a_button_with_a_condition_reaches_only_its_readers(tmp_path: Path, settings: Settings) -> None:
    body = BODY + '\n[Join the North branch](https://example.org/join){.button only: branch == "North"}\n'
    editions, _ = _editions(tmp_path, settings, body)
    north = editions.envelope(_reader(1, "North")).data
    south = editions.envelope(_reader(2, "South")).data
    assert "Join the North branch" in _text(north) and "https://example.org/join" in _text(north)
    assert b"Join the North branch" not in south and b"example.org/join" not in south
