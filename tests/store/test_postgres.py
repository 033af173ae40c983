"""The PostgreSQL store against a real server: schema versions and `store migrate`, the send lock
across processes, passwords kept out of messages, and `store copy` from a workspace's SQLite
(the journal, suppressions, signups and bounce reports)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from conftest import PG_PASSWORD, latency_proxy, make_workspace, use_store
from newsletter_mailer.audience.bounce_log import BounceLog
from newsletter_mailer.audience.bounces import Action
from newsletter_mailer.audience.choices import Choice
from newsletter_mailer.audience.preference_log import PreferenceLog
from newsletter_mailer.audience.signup_log import SignupLog
from newsletter_mailer.audience.subscribers import Subscriber
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.cli import main
from newsletter_mailer.errors import AlreadySending, SchemaMismatch, StoreError
from newsletter_mailer.send.transport import MemoryTransport
from newsletter_mailer.store.database import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from newsletter_mailer.store.factory import open_url
from newsletter_mailer.store.journal import Outcome
from newsletter_mailer.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresStore
from newsletter_mailer.store.sqlite import SQLiteStore

REPORTS = Path(__file__).parents[1] / "audience" / "bounce_reports"


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    with contextlib.chdir(root):  # issue files are named relative to the workspace, as an editor types them
        result = CliRunner().invoke(main, ["--config", str(root / "newsletter.toml"), *args], env=env)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_a_fresh_database_is_refused_until_migrated(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(SchemaMismatch, match=r"schema version 0, older .* run `newsletter store migrate`"):
        open_url(pg_url, PG_PASSWORD)
    root = make_workspace(tmp_path / "ws", 1, 3)
    use_store(root, pg_url)
    code, output = cli(root, "status", "issue.md")
    assert code == 1 and "run `newsletter store migrate`" in output and "Traceback" not in output
    code, output = cli(root, "store", "migrate")
    assert code == 0 and f"migrated from version 0 to schema version {SCHEMA_VERSION}" in output
    assert "postgresql://newsletter@127.0.0.1:" in output
    code, output = cli(root, "store", "migrate")
    assert code == 0 and f"already at schema version {SCHEMA_VERSION}" in output
    assert cli(root, "status", "issue.md") == (0, "issue: nothing sent yet\n")


def test_a_store_at_version_5_gets_the_signup_and_bounce_tables_from_migrate(pg_url: str, tmp_path: Path) -> None:
    assert SCHEMA_VERSION == SQLITE_SCHEMA_VERSION == 10
    with psycopg.connect(pg_url, password=PG_PASSWORD, autocommit=True) as db, db.transaction():
        db.execute(b"CREATE TABLE newsletter_schema (version integer NOT NULL, applied double precision NOT NULL)")
        for version, script in enumerate(MIGRATIONS[:5], start=1):
            db.execute(script.encode())
            db.execute("INSERT INTO newsletter_schema VALUES (%s, 0)", (version,))
        db.execute("INSERT INTO suppressions VALUES ('kept@example.org', 'manual', 'test', 0)")
    root = make_workspace(tmp_path / "ws", 1, 1)
    use_store(root, pg_url)
    code, output = cli(root, "bounces", str(REPORTS / "arf-complaint.eml"))
    assert code == 1 and "schema version 5, older" in output and "run `newsletter store migrate`" in output
    code, output = cli(root, "store", "migrate")
    assert code == 0 and "migrated from version 5 to schema version 10" in output
    with PostgresStore.open(pg_url, PG_PASSWORD) as pg:
        pending = SignupLog(pg).request(Subscriber("kept@example.org"), "192.0.2.1", "2024-06")
        assert SignupLog(pg).confirm(pending.ref, "192.0.2.1")
        assert [s.address for s in SuppressionList(pg)] == []  # the confirmation lifted it
        assert BounceLog(pg).for_issue("issue") == []


def test_a_schema_newer_than_the_code_is_refused(migrated_pg_url: str, tmp_path: Path) -> None:
    with psycopg.connect(migrated_pg_url, password=PG_PASSWORD, autocommit=True) as db:
        db.execute("INSERT INTO newsletter_schema VALUES (%s, 0)", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaMismatch, match=r"newer than this newsletter-mailer's .* upgrade newsletter-mailer"):
        open_url(migrated_pg_url, PG_PASSWORD)
    root = make_workspace(tmp_path / "ws", 1, 3)
    use_store(root, migrated_pg_url)
    code, output = cli(root, "store", "migrate")
    assert code == 1 and "upgrade newsletter-mailer" in output


def test_the_send_lock_spans_processes_and_dies_with_its_holder(migrated_pg_url: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from newsletter_mailer.store.postgres import PostgresStore\n"
            "store = PostgresStore.open(sys.argv[1], sys.argv[2])\n"
            "with store.send_lock('2026-12'):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
            migrated_pg_url,
            PG_PASSWORD,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with PostgresStore.open(migrated_pg_url, PG_PASSWORD) as store:
            refused = rf"2026-12 is running \(newsletter pid {holder.pid} on "
            with pytest.raises(AlreadySending, match=refused), store.send_lock("2026-12"):
                pass
            with store.send_lock("2027-01"):  # another issue is free
                pass
            holder.kill()
            holder.wait(timeout=30)
            # The server drops the dead holder's lock once its backend has seen the connection
            # close and ended, a few milliseconds after the kill on a busy machine.
            deadline = time.monotonic() + 30
            while True:
                try:
                    with store.send_lock("2026-12"):
                        break
                except AlreadySending:
                    assert time.monotonic() < deadline, "the dead holder's lock was never released"
                    time.sleep(0.05)
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_wrong_password_is_one_line_without_the_password(migrated_pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="password authentication failed") as caught:
        open_url(migrated_pg_url, "not-the-password")
    assert "not-the-password" not in str(caught.value)
    root = make_workspace(tmp_path / "ws", 1, 3)
    with_password = migrated_pg_url.replace("newsletter@", "newsletter:wrong-secret@")
    code, output = cli(
        root, "status", "issue.md", env={"NEWSLETTER_STORE_URL": with_password, "NEWSLETTER_STORE_PASSWORD": ""}
    )
    assert code == 1 and "cannot open the store postgresql://newsletter:***@127.0.0.1" in output
    assert "wrong-secret" not in output and "Traceback" not in output


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    from conftest import free_port

    root = make_workspace(tmp_path / "ws", 1, 3)
    use_store(root, f"postgresql://newsletter@127.0.0.1:{free_port()}/news")
    code, output = cli(root, "unsubscribe", "a@example.org")
    assert code == 1 and "cannot open the store postgresql://newsletter@127.0.0.1:" in output
    assert "Traceback" not in output


def test_copy_moves_a_workspaces_sqlite_state_and_says_what(pg_url: str, tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 6)
    settings_path = root / ".newsletter" / "newsletter.db"
    with SQLiteStore.open(settings_path) as sqlite:
        SuppressionList(sqlite).add("user5@example.org", "unsubscribed", "web page")
        SuppressionList(sqlite).add("gone@example.org", "bounced", "2026-11")
    from conftest import settings_for
    from newsletter_mailer.app.send_campaign import open_campaign

    with open_campaign(root / "issue.md", settings_for(root)) as campaign:
        summary = campaign.run(transport=MemoryTransport())
    assert summary.sent == 5
    with SQLiteStore.open(settings_path) as sqlite:
        sqlite.record_run("issue", 'branch == "North"')
    code, output = cli(root, "store", "copy", "--to", pg_url)
    assert code == 0, output
    assert f"schema migrated from version 0 to {SCHEMA_VERSION}" in output
    assert "0 bounce reports, 0 preference changes, 1 first send of an issue, 1 send run; already there" in output
    assert "6 journal rows of 1 issue(s) (issue), 2 suppressed addresses" in output
    code, output = cli(root, "store", "copy", "--to", pg_url)
    assert "0 journal rows of 1 issue(s) (issue), 0 suppressed addresses" in output
    assert "left as they were: 6 journal rows, 2 suppressed addresses" in output
    assert "0 first sends of issues, 0 send runs; already there" in output
    assert "0 bounce reports, 0 preference changes, 1 first send of an issue, 1 send run\n" in output
    with SQLiteStore.open(settings_path) as sqlite, PostgresStore.open(pg_url, PG_PASSWORD) as pg:
        # what a later run of the issue compares (its first content hash) and shows (its runs)
        assert list(pg.iter_sends()) == list(sqlite.iter_sends()) and len(list(pg.iter_sends())) == 1
        assert list(pg.iter_runs()) == list(sqlite.iter_runs()) and len(list(pg.iter_runs())) == 1
        assert pg.runs("issue")[0][1] == 'branch == "North"'
    use_store(root, pg_url)
    code, output = cli(root, "status", "issue.md")
    assert "sent 5, pending 0, failed 0, skipped as unsubscribed 1" in output
    code, output = cli(root, "suppressions", "export")
    assert "user5@example.org,unsubscribed,web page," in output and "gone@example.org,bounced,2026-11," in output
    with open_campaign(root / "issue.md", settings_for(root)) as campaign:
        assert campaign.preflight.to_send == 0 and campaign.preflight.already_sent == 5  # nobody mailed again


def hard_report(address: str) -> bytes:
    text = (REPORTS / "postfix-user-unknown.eml").read_text()
    return text.replace("gone@example.org", address).encode()


def test_copy_moves_signups_bounce_reports_and_removals_and_says_what(pg_url: str, tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 3)
    with SQLiteStore.open(root / ".newsletter" / "newsletter.db") as sqlite:
        sqlite.add_recipients("issue", [Subscriber(f"user{i}@example.org") for i in range(3)])
        log = SignupLog(sqlite)
        waiting = log.request(Subscriber("waiting@example.org", "Wai"), "192.0.2.1", "2024-06")
        joined = log.request(Subscriber("Joiner@example.org", "Jo", (("home_town", "Riverton"),)), "192.0.2.2", "v1")
        for address in ("waiting@example.org", "Joiner@example.org"):
            assert log.may_mail(address, "192.0.2.1", per_address_per_day=3, per_ip_per_hour=10)
        SuppressionList(sqlite).add("joiner@example.org", "unsubscribed", "web page")
        assert log.confirm(joined.ref, "192.0.2.3") == "Joiner@example.org"
        user1 = next(
            d for d in sqlite.claim_batch("issue", "w", 3, lease=60).deliveries if d.address == "user1@example.org"
        )
        sqlite.mark_sent(user1, "<issue.user1@news.example.org>", "250 ok")  # the report quotes it: a proof
        report = hard_report("user1@example.org").replace(
            b"<0000notoursatall0000@example.org>", b"<issue.user1@news.example.org>"
        )
        assert BounceLog(sqlite).process("report.eml", report).action is Action.SUPPRESSED
        choice = Choice(("Diary",), 0.0)
        PreferenceLog(sqlite).record("user0@example.org", choice, offered=("Diary",), ip="192.0.2.9", source="page")
        changes = list(sqlite.iter_preferences())
        sqlite.record_send("issue", "hash-of-the-issue")
        sqlite.record_run("issue", 'branch == "North"')
        sqlite.record_run("issue", "")
        sends, runs = list(sqlite.iter_sends()), list(sqlite.iter_runs())
        consents, mails = log.confirmed(), list(sqlite.iter_signup_mails())
        reports, removals = list(sqlite.iter_bounce_reports()), list(SuppressionList(sqlite).removals())
    code, output = cli(root, "store", "copy", "--to", pg_url)
    assert code == 0, output
    assert (
        "3 journal rows of 1 issue(s) (issue), 1 suppressed address, 1 suppression removal, 1 signup request,"
        " 1 confirmed signup, 2 confirmation mails logged, 1 bounce report, 1 preference change, 1 first send of"
        " an issue, 2 send runs; already there and left as they were: 0 journal rows, 0 suppressed addresses,"
        " 0 suppression removals, 0 signup requests, 0 confirmed signups, 0 confirmation mails logged,"
        " 0 bounce reports, 0 preference changes, 0 first sends of issues, 0 send runs"
    ) in output
    code, output = cli(root, "store", "copy", "--to", pg_url)
    assert (
        "left as they were: 3 journal rows, 1 suppressed address, 1 suppression removal, 1 signup request,"
        " 1 confirmed signup, 2 confirmation mails logged, 1 bounce report, 1 preference change, 1 first send of"
        " an issue, 2 send runs"
    ) in output
    with PostgresStore.open(pg_url, PG_PASSWORD) as pg:
        assert list(pg.iter_preferences()) == changes and PreferenceLog(pg).current("USER0@example.org") == choice
        assert list(pg.iter_sends()) == sends and list(pg.iter_runs()) == runs
        assert pg.record_send("issue", "another hash") == "hash-of-the-issue"  # a joining worker is held to it
        assert SignupLog(pg).confirmed() == consents and list(pg.iter_signup_mails()) == mails
        assert list(pg.iter_bounce_reports()) == reports and list(SuppressionList(pg).removals()) == removals
        # The waiting request kept its number: the link already in its inbox confirms it here.
        link = waiting.ref
        assert SignupLog(pg).confirm(link, "192.0.2.1") == "waiting@example.org"
        later = SignupLog(pg).request(Subscriber("later@example.org"), "192.0.2.1", "2024-06")
        assert later.id > waiting.id
    use_store(root, pg_url)
    code, output = cli(root, "status", "issue.md")
    assert "bounce report: hard for user1@example.org, suppressed; 5.1.1" in output
    code, output = cli(root, "subscribers", "export")
    rows = list(csv.DictReader(io.StringIO(output[output.index("email,") :])))
    assert [(r["email"], r["source"]) for r in rows] == [
        ("user0@example.org", "csv"),
        ("user2@example.org", "csv"),  # user1 bounced
        ("Joiner@example.org", "signup"),
        ("waiting@example.org", "signup"),
    ]
    assert (rows[2]["confirm_ip"], rows[2]["wording_version"]) == ("192.0.2.3", "v1")


def test_a_copy_into_a_store_in_use_never_mixes_up_people(migrated_pg_url: str, tmp_path: Path) -> None:
    with PostgresStore.open(migrated_pg_url, PG_PASSWORD) as pg:  # the target has request 1 and journal row 1
        theirs = SignupLog(pg).request(Subscriber("someone@example.org"), "192.0.2.9", "2024-06")
        pg.db.execute("UPDATE signup_requests SET requested = requested - 100")  # made earlier than mine
        pg.add_recipients("elsewhere", [Subscriber("someone@example.org")])
    root = make_workspace(tmp_path / "ws", 1, 0)
    with SQLiteStore.open(root / ".newsletter" / "newsletter.db") as sqlite:
        mine = SignupLog(sqlite).request(Subscriber("me@example.org"), "192.0.2.1", "2024-06")
        sqlite.add_recipients("issue", [Subscriber("me@example.org")])
    assert mine.id == theirs.id == 1
    code, output = cli(root, "store", "copy", "--to", migrated_pg_url)
    assert code == 0 and "0 signup requests" in output and "left as they were: 0 journal rows" in output
    assert "1 signup request," in output.partition("left as they were")[2]
    assert "warning: the target already used the numbers of 1 journal row, which got new ones" in output
    with PostgresStore.open(migrated_pg_url, PG_PASSWORD) as pg:
        assert SignupLog(pg).confirm(mine.ref, "192.0.2.1") is None
        assert SignupLog(pg).confirmed() == []


def test_copy_refuses_bad_input(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 1)
    code, output = cli(root, "store", "copy", "--to", "mysql://x@y/z")
    assert code == 2 and "--to must be a postgresql://" in output
    code, output = cli(root, "store", "copy", "--to", "postgresql://x@127.0.0.1/z")
    assert code == 2 and "no SQLite store in this workspace to copy" in output


def test_the_environment_names_the_store(migrated_pg_url: str, tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 1, 1)
    env = {**os.environ, "NEWSLETTER_STORE_URL": migrated_pg_url}
    result = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "unsubscribe", "ann@example.org"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    with PostgresStore.open(migrated_pg_url, PG_PASSWORD) as store:
        assert [entry.address for entry in SuppressionList(store)] == ["ann@example.org"]
    assert not (root / ".newsletter" / "newsletter.db").exists()  # nothing went to SQLite


def test_status_shows_each_worker(migrated_pg_url: str, tmp_path: Path) -> None:
    with PostgresStore.open(migrated_pg_url, PG_PASSWORD) as store:
        store.heartbeat("issue", "w1", "laptop.example", 4242, sent=12, lease=60)
        store.heartbeat("issue", "w2", "server.example", 77, sent=0, lease=60)
    root = make_workspace(tmp_path / "ws", 1, 1)
    use_store(root, migrated_pg_url)
    code, output = cli(root, "status", "issue.md", "--workers")  # worker ids only when asked (wt-app)
    assert code == 0
    assert "worker w1 on laptop.example (pid 4242): sent 12," in output
    assert "worker w2 on server.example (pid 77): sent 0, 0.0 msg/s, last seen 20" in output


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ann:s3cret@db/news", "postgresql://ann:***@db/news"),
        (
            "postgresql://ann@db/news?sslmode=require&password=s3cret",
            "postgresql://ann@db/news?sslmode=require&password=***",
        ),
        ("postgresql://ann@db/news?%70assword=s3cret", "postgresql://ann@db/news?password=***"),
        ("postgresql://ann@db/news?PASSWORD=s3cret", "postgresql://ann@db/news?password=***"),
    ],
)
def test_a_password_never_shows_in_a_url_we_print(url: str, shown: str) -> None:
    from newsletter_mailer.store.base import redact_url

    assert redact_url(url) == shown and "s3cret" not in redact_url(url)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("postgresql://ann:***@db/news", "postgresql://ann@db/news"),
        ("postgresql://ann@db/news?sslmode=require&password=***", "postgresql://ann@db/news?sslmode=require"),
        ("postgresql://ann@db:5433/news?%70assword=x", "postgresql://ann@db:5433/news"),
        ("postgresql://db/news", "postgresql://db/news"),
    ],
)
def test_the_url_suggested_for_the_settings_file_holds_no_password(url: str, kept: str) -> None:
    from newsletter_mailer.store.base import without_password

    assert without_password(url) == kept


def test_each_call_of_a_sender_is_one_round_trip(migrated_pg_url: str) -> None:
    """Counted by the latency proxy: a claim, the outcomes of a batch, the heartbeat, a block of
    the pace, a slot of the hourly cap and the counts each cost the sender one round trip (once
    the driver has prepared its statements: the difference between 7 and 12 calls of each)."""
    seed = open_url(migrated_pg_url, PG_PASSWORD)
    seed.add_recipients("issue", [Subscriber(f"user{i}@example.org", "") for i in range(400)])
    seed.close()

    def outcomes(store: PostgresStore) -> None:
        batch = store.claim_batch("issue", "w", 5, 60).deliveries
        store.record_outcomes([Outcome(job, "sent", "250 ok", f"<{job.id}@x>") for job in batch])

    calls: dict[str, Callable[[PostgresStore], object]] = {
        "claim": lambda store: store.claim_batch("issue", "w", 10, 60),
        "claim and its outcomes": outcomes,
        "heartbeat": lambda store: store.heartbeat("issue", "w", "host", 1, 0, 60),
        "pace": lambda store: store.pace("relay per second", 0.01),
        "hourly slot": lambda store: store.take_slot("relay per hour", 1000),
        "counts": lambda store: store.counts("issue"),
    }
    trips: dict[str, list[int]] = {}
    for name, call in calls.items():
        for times in (7, 12):
            with latency_proxy(migrated_pg_url, 0) as proxied:
                store = PostgresStore.open(proxied.url, PG_PASSWORD, check=False)
                store.for_sending()
                for _ in range(times):
                    call(store)
                store.close()
            trips.setdefault(name, []).append(proxied.trips)
    per_call = {name: (more - fewer) / 5 for name, (fewer, more) in trips.items()}
    assert per_call == {**dict.fromkeys(calls, 1.0), "claim and its outcomes": 2.0}, trips
