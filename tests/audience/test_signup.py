"""signup.py: the rules of the form (values, limits) and the mailbox an address counts as."""

from __future__ import annotations

import pytest

from newsletter_mailer.audience.signup import MAX_VALUE, FormError, form_html, mailbox_key, read_form


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("victim@example.net", "victim@example.net"),
        ("Victim+7@Example.NET", "victim@example.net"),
        ("victim+a+b@example.net", "victim@example.net"),
        ("+tag@example.net", "+tag@example.net"),
        ("vi.c.tim@example.net", "vi.c.tim@example.net"),  # dots matter at most providers
        ("Vi.C.Tim+x@gmail.com", "victim@gmail.com"),
        ("v.ictim@googlemail.com", "victim@gmail.com"),
        ("Hélène+news@example.fr", "hélène@example.fr"),
    ],
)
def test_mailbox_key_folds_sub_addresses_and_ignored_dots(address: str, key: str) -> None:
    assert mailbox_key(address) == key


def test_the_form_keeps_the_address_as_typed() -> None:
    form = read_form({"email": ["Vi.Ctim+0@gmail.com"], "name": ["Vic"]}, ())
    assert form.subscriber.email == "Vi.Ctim+0@gmail.com" and not form.bot


@pytest.mark.parametrize("key", ["email", "name", "home_town", "anything"])
def test_a_value_longer_than_the_form_allows_is_refused(key: str) -> None:
    values = {"email": ["a@example.org"], key: ["x" * (MAX_VALUE + 1)]}
    if key == "email":
        values["email"] = ["a" * MAX_VALUE + "@example.org"]
    with pytest.raises(FormError, match=f"at most {MAX_VALUE} characters"):
        read_form(values, ["Home town"])
    values[key] = ["x" * MAX_VALUE] if key != "email" else ["a@example.org"]
    assert read_form(values, ["Home town"]).subscriber.email == "a@example.org"


def test_the_topics_offered_are_kept_as_ticked_and_any_other_is_refused() -> None:
    offered = ("Diary", "Campaigns")
    form = read_form({"email": ["a@example.org"], "topic": ["Campaigns"]}, (), topics=offered)
    assert dict(form.subscriber.fields) == {"topics": "Campaigns"}
    assert dict(read_form({"email": ["a@example.org"]}, (), topics=offered).subscriber.fields) == {"topics": ""}
    assert read_form({"email": ["a@example.org"], "topic": ["Diary"]}, ()).subscriber.fields == ()  # none offered
    with pytest.raises(FormError, match="not one this newsletter offers"):
        read_form({"email": ["a@example.org"], "topic": ["<b>Sports</b>"]}, (), topics=offered)
    with pytest.raises(FormError, match="chosen once"):
        read_form({"email": ["a@example.org"], "topic": ["Diary", "Diary"]}, (), topics=offered)
    page = form_html("/subscribe", (), topics=("Diary", '"><script>'))
    assert 'name="topic" value="Diary" checked' in page and "<script>" not in page
    assert page.count('type="checkbox"') == 2 and "<legend>Topics you receive</legend>" in page
