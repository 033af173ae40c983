"""config.py: newsletter.toml, environment overrides, and errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter_mailer.config import load_settings, new_settings_text
from newsletter_mailer.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(text)
    return path


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(workspace=tmp_path, env={})
    assert not settings.found
    assert settings.smtp.host == "" and settings.smtp.concurrency == 4
    assert settings.newsletter.language == "en"


def test_example_settings_load(tmp_path: Path) -> None:
    write(
        tmp_path,
        '[newsletter]\nname = "N"\nfrom = "n@example.org"\ntest_recipients = ["e@example.org"]\n'
        '[smtp]\nhost = "smtp.example.org"\nsecurity = "tls"\nrate = 5\n',
    )
    settings = load_settings(workspace=tmp_path, env={})
    assert settings.found and settings.smtp.effective_port == 465
    assert settings.smtp.rate == 5.0
    assert settings.newsletter.test_recipients == ("e@example.org",)
    assert settings.newsletter.list_id_value == "n.example.org"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[newsletter]\nname = "N"\ncolour = "red"\n', 3, "unknown key [newsletter] colour"),
        ("[mail]\nx = 1\n", 1, "unknown section [mail]"),
        ('[smtp]\nsecurity = "ssl"\n', 2, "security must be one of"),
        ('[smtp]\nport = "twenty"\n', 2, "[smtp] port must be a whole number"),
        ('[smtp]\npassword = "hunter2"\n', 2, "NEWSLETTER_SMTP_PASSWORD"),
        ("[smtp]\nconcurrency = 0\n", 2, "concurrency must be at least 1"),
        ('[newsletter]\nbase_url = "example.org"\n', 2, "base_url must be an absolute"),
        ("[newsletter\nname = 1\n", 1, "not valid TOML"),
        ('[newsletter]\nname = "N"\ntimezone = "Europe/Lundun"\n', 3, "IANA time zone"),
        ('[newsletter]\ntimezone = "../../etc/passwd"\n', 2, "IANA time zone"),
        ('[publish]\nbase_url = "/archive"\n', 2, "[publish] base_url must be an absolute"),
        ('[publish]\nenabled = "sometimes"\n', 2, "[publish] enabled must be true or false"),
        ('[publish]\nreader = "friend"\n', 2, "[publish] reader must be a table"),
        ('[preferences]\ntopics = ["Diary", ""]\n', 2, "[preferences] topics: '' is empty"),
        ('[preferences]\ntopics = ["Diary", "diary"]\n', 2, "'diary' is there twice"),
        ('[preferences]\ntopics = ["News; views"]\n', 2, 'holds "," or ";"'),
        ('[preferences]\ntopics = ["' + "x" * 41 + '"]\n', 2, "longer than 40 characters"),
        ('[preferences]\ntopics = [" Diary"]\n', 2, "starts or ends with a space"),
        ("[preferences]\ntopics = [1, 2]\n", 2, "[preferences] topics must be a list of strings"),
        ('[preferences]\ntopic = ["Diary"]\n', 2, "unknown key [preferences] topic; allowed: topics"),
        ('[preferences]\ntopics = ["Di\\nary"]\n', 2, "[preferences] topics must be one line"),
    ],
)
def test_invalid_settings_name_the_key_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(workspace=tmp_path, env={})
    assert fragment in caught.value.message
    assert caught.value.line == line
    assert "hunter2" not in str(caught.value)


def test_environment_overrides_every_smtp_key_and_supplies_the_password(tmp_path: Path) -> None:
    write(tmp_path, '[smtp]\nhost = "file.example.org"\nport = 25\n')
    env = {
        "NEWSLETTER_SMTP_HOST": "env.example.org",
        "NEWSLETTER_SMTP_PORT": "2525",
        "NEWSLETTER_SMTP_SECURITY": "none",
        "NEWSLETTER_SMTP_USERNAME": "u",
        "NEWSLETTER_SMTP_CONCURRENCY": "8",
        "NEWSLETTER_SMTP_RATE": "2.5",
        "NEWSLETTER_SMTP_VERIFY_CERTIFICATES": "false",
        "NEWSLETTER_SMTP_PASSWORD": "s3cret",
    }
    smtp = load_settings(workspace=tmp_path, env=env).smtp
    assert (smtp.host, smtp.port, smtp.security, smtp.username) == ("env.example.org", 2525, "none", "u")
    assert (smtp.concurrency, smtp.rate, smtp.verify_certificates) == (8, 2.5, False)
    assert smtp.password == "s3cret"
    assert "s3cret" not in repr(smtp)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(workspace=tmp_path, env={"NEWSLETTER_SMTP_PORT": "abc"})
    assert str(caught.value).startswith("NEWSLETTER_SMTP_PORT:")


def test_explicit_config_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "other.toml", env={})


def test_bounces_section_password_from_the_environment_only(tmp_path: Path) -> None:
    write(tmp_path, '[bounces]\naddress = "bounces@news.example.org"\nhost = "imap.example.org"\nsoft_threshold = 2\n')
    settings = load_settings(workspace=tmp_path, env={"NEWSLETTER_BOUNCES_PASSWORD": "s3cret"})
    assert settings.bounces.password == "s3cret" and settings.bounces.effective_port == 993
    assert settings.bounces.soft_threshold == 2 and "s3cret" not in repr(settings)
    write(tmp_path, '[bounces]\npassword = "oops"\n')
    with pytest.raises(ConfigError, match="NEWSLETTER_BOUNCES_PASSWORD") as caught:
        load_settings(workspace=tmp_path, env={})
    assert caught.value.line == 2


@pytest.mark.parametrize(
    "line",
    ['address = "bounces+tag@news.example.org"', 'address = "no-at-sign"', "soft_threshold = 0"],
)
def test_bad_bounces_settings_name_the_key(tmp_path: Path, line: str) -> None:
    write(tmp_path, f"[bounces]\n{line}\n")
    with pytest.raises(ConfigError, match=r"\[bounces\]") as caught:
        load_settings(workspace=tmp_path, env={})
    assert caught.value.line == 2


def test_the_store_url_from_the_file_or_the_environment(tmp_path: Path) -> None:
    write(tmp_path, '[store]\nurl = "postgresql://news@db.internal/newsletter"\n')
    settings = load_settings(workspace=tmp_path, env={"NEWSLETTER_STORE_PASSWORD": "s3cret"})
    assert settings.store.url == "postgresql://news@db.internal/newsletter"
    assert settings.store.password == "s3cret" and "s3cret" not in repr(settings)
    url = "postgresql://news:pw@127.0.0.1:5433/other"  # a password may come with a URL from the environment
    assert load_settings(workspace=tmp_path, env={"NEWSLETTER_STORE_URL": url}).store.url == url
    assert load_settings(workspace=tmp_path / "none", env={}).store.url == ""  # the SQLite file


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[store]\nurl = "postgresql://news:hunter2@db/n"\n', "must not hold a password in the file"),
        ('[store]\nurl = "postgresql://news@db/n?sslmode=require&password=hunter2"\n', "must not hold a password"),
        ('[store]\nurl = "postgresql://news@db/n?%70assword=hunter2"\n', "must not hold a password"),
        ('[store]\npassword = "hunter2"\n', "set the environment variable NEWSLETTER_STORE_PASSWORD"),
        ('[store]\nurl = "mysql://news@db/n"\n', "must be a postgresql://user@host/database URL"),
        ('[store]\nhost = "db"\n', "unknown key [store] host; allowed: url, lease"),
        ("[store]\nlease = 0.5\n", "[store] lease must be at least 1 second"),
        ('[store]\nlease = "soon"\n', "[store] lease must be a number"),
        ("[store]\nlease = nan\n", "[store] lease must be a finite number"),
        ("[store]\nlease = inf\n", "[store] lease must be a finite number"),
        ('[store]\nlease = "1e400"\n', "[store] lease must be a finite number"),
    ],
)
def test_bad_store_settings_name_the_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, "# shared state\n" + text)
    with pytest.raises(ConfigError) as caught:
        load_settings(workspace=tmp_path, env={})
    assert f"{path}:3: " in str(caught.value) and fragment in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_lease_from_the_file_or_the_environment(tmp_path: Path) -> None:
    write(tmp_path, "[store]\nlease = 15\n")
    assert load_settings(workspace=tmp_path, env={}).store.lease == 15.0
    assert load_settings(workspace=tmp_path, env={"NEWSLETTER_STORE_LEASE": "5"}).store.lease == 5.0
    with pytest.raises(ConfigError, match=r"^NEWSLETTER_STORE_LEASE: \[store\] lease must be at least 1"):
        load_settings(workspace=tmp_path, env={"NEWSLETTER_STORE_LEASE": "0"})
    with pytest.raises(ConfigError, match=r"^NEWSLETTER_STORE_LEASE: \[store\] lease must be a finite number"):
        load_settings(workspace=tmp_path, env={"NEWSLETTER_STORE_LEASE": "nan"})


def test_a_bad_store_url_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^NEWSLETTER_STORE_URL: .*postgresql://"):
        load_settings(workspace=tmp_path, env={"NEWSLETTER_STORE_URL": "sqlite:///x.db"})


def test_publish_settings_default_to_the_newsletter_and_read_the_public_reader(tmp_path: Path) -> None:
    write(tmp_path, '[newsletter]\nbase_url = "https://n.example.org/"\n')
    plain = load_settings(workspace=tmp_path, env={})
    assert plain.publish.base_url == "https://n.example.org" and plain.publish.enabled
    assert dict(plain.publish.reader) == {"name": "friend"} and plain.newsletter.timezone == ""
    write(
        tmp_path,
        '[newsletter]\ntimezone = "Europe/London"\n[publish]\nbase_url = "https://archive.example.org/news/"\n'
        '[publish.reader]\nname = "neighbour"\ncity = "Riverton"\n',
    )
    settings = load_settings(workspace=tmp_path, env={})
    assert settings.publish.base_url == "https://archive.example.org/news"
    assert dict(settings.publish.reader) == {"city": "Riverton", "name": "neighbour"}
    assert settings.newsletter.timezone == "Europe/London"
    write(tmp_path, '[publish.reader]\nname = "a\\nb"\n')
    with pytest.raises(ConfigError, match="one line"):
        load_settings(workspace=tmp_path, env={})


def test_from_and_reply_to_take_a_name_and_an_address(tmp_path: Path) -> None:
    write(
        tmp_path,
        '[newsletter]\nname = "Kent News"\nfrom = "Kent Network <news@kent.example.org>"\n'
        'reply_to = "\\"Help, Desk\\" <help@kent.example.org>"\n',
    )
    news = load_settings(workspace=tmp_path, env={}).newsletter
    assert (news.from_, news.from_name, news.from_display_name) == (
        "news@kent.example.org",
        "Kent Network",
        "Kent Network",
    )
    assert (news.reply_to, news.reply_to_name) == ("help@kent.example.org", "Help, Desk")
    assert news.from_domain == "kent.example.org" and news.list_id_value == "kent-news.kent.example.org"
    write(tmp_path, '[newsletter]\nname = "Kent News"\nfrom = "news@kent.example.org"\n')
    news = load_settings(workspace=tmp_path, env={}).newsletter
    assert (news.from_, news.from_name, news.from_display_name) == ("news@kent.example.org", "", "Kent News")


@pytest.mark.parametrize("key", ["from", "reply_to"])
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("Kent Network <Kent Network <news@kent.example.org>>", "invalid address"),
        ("a@example.org, b@example.org", "2 addresses, not one"),
        ("Team: a@example.org, b@example.org;", "a group"),
        ("Kent Network", "not one|no domain|cannot be read"),
        ("=?utf-8?q?Kent=0D=0ABcc:_x@evil.example?= <news@example.org>", "CR or LF|line break"),
        ("Hélène <hélène@example.fr>", "non-ASCII"),
        ("news@kent.example.org>", "cannot be read|invalid|not one"),
    ],
)
def test_a_from_or_reply_to_that_is_not_one_mailbox_names_the_key(
    tmp_path: Path, key: str, value: str, fragment: str
) -> None:
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    write(tmp_path, f'[newsletter]\nname = "N"\n{key} = "{quoted}"\n')
    with pytest.raises(ConfigError, match=rf"\[newsletter\] {key} must be one address") as caught:
        load_settings(workspace=tmp_path, env={})
    assert caught.value.line == 3 and str(caught.value.file).endswith("newsletter.toml")
    assert re.search(fragment, str(caught.value)), str(caught.value)


def test_from_and_reply_to_names_are_not_keys_of_the_file(tmp_path: Path) -> None:
    write(tmp_path, '[newsletter]\nfrom_name = "X"\n')
    with pytest.raises(ConfigError, match=r"unknown key \[newsletter\] from_name"):
        load_settings(workspace=tmp_path, env={})


def test_a_new_workspace_takes_a_named_from(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text(
        new_settings_text("Kent News", "Kent Network <news@kent.example.org>", "https://news.kent.example.org")
    )
    news = load_settings(workspace=tmp_path, env={}).newsletter
    assert (news.from_name, news.from_) == ("Kent Network", "news@kent.example.org")
    assert news.test_recipients == ("news@kent.example.org",)
    for bad in ("Kent <Kent <news@kent.example.org>>", "not an address", "a@example.org, b@example.org"):
        with pytest.raises(ConfigError, match="the From address must be an email address"):
            new_settings_text("Kent News", bad, "https://news.kent.example.org")


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('list_id = "news.example.org>, <evil.example"', "list_id"),
        ('list_id = "news"', "list_id"),
        ('list_id = "Zoë.example.org"', "list_id"),
        ('unsubscribe_mailto = "u@example.org?subject=x>, <https://evil.example/"', "unsubscribe_mailto"),
        ('unsubscribe_mailto = "Name <u@example.org>"', "unsubscribe_mailto"),
        ('unsubscribe_mailto = "zoë@example.org"', "unsubscribe_mailto"),
    ],
)
def test_list_headers_take_only_what_fits_between_angle_brackets(tmp_path: Path, line: str, key: str) -> None:
    write(tmp_path, f"[newsletter]\n{line}\n")
    with pytest.raises(ConfigError, match=rf"\[newsletter\] {key} must be") as caught:
        load_settings(workspace=tmp_path, env={})
    assert caught.value.line == 2
    write(tmp_path, '[newsletter]\nlist_id = "news.example.org"\nunsubscribe_mailto = "u+x@example.org"\n')
    assert load_settings(workspace=tmp_path, env={}).newsletter.list_id_value == "news.example.org"


def test_a_preferences_table_turns_the_page_on_and_offers_its_topics(tmp_path: Path) -> None:
    assert not load_settings(workspace=tmp_path, env={}).preferences.enabled
    write(tmp_path, '[preferences]\ntopics = ["Diary", "Local news"]\n')
    preferences = load_settings(workspace=tmp_path, env={}).preferences
    assert preferences.enabled and preferences.topics == ("Diary", "Local news")
    write(tmp_path, "[preferences]\n")  # an empty table: the page offers only a pause
    preferences = load_settings(workspace=tmp_path, env={}).preferences
    assert preferences.enabled and preferences.topics == ()
