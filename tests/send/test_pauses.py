"""send/engine.py honour_pauses: a reader who paused their mail is never handed to the relay by a
running send, whichever way their row comes to it (the pre-flight's pending rows are covered by
tests/web/test_preferences.py, under uvicorn)."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import make_workspace, settings_for
from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.audience.choices import Choice
from newsletter_mailer.audience.preference_log import PreferenceLog
from newsletter_mailer.store.factory import open_store
from smtp_servers import SMTPTestServer


def test_a_paused_readers_row_left_sending_by_a_gone_worker_is_set_aside_not_sent(tmp_path: Path) -> None:
    """Another worker claimed three rows and vanished; one of those readers has paused. When the
    lease runs out mid-run the rows come back through a claim, which must set the reader aside
    (the pause itself only touches pending rows)."""
    with SMTPTestServer() as server:
        root = make_workspace(tmp_path / "ws", server.port, 10)
        with (root / "newsletter.toml").open("a") as settings_file:
            settings_file.write('[preferences]\ntopics = ["Diary"]\n')
        settings = settings_for(root)
        with open_campaign(root / "issue.md", settings) as campaign:
            with open_store(settings) as other:
                taken = other.claim_batch(campaign.issue, "a-worker-gone", 3, 1.5)
                assert [d.address for d in taken.deliveries] == [f"user{i}@example.org" for i in range(3)]
                log = PreferenceLog(other)
                log.record("USER1@example.org", Choice(None, time.time() + 86400), offered=(), ip="", source="test")
            summary = campaign.run()
        mailed = [m.rcpt_tos[0] for m in server.handler.messages]
    assert sorted(mailed) == sorted(f"user{i}@example.org" for i in range(10) if i != 1)
    assert summary.set_aside == 1 and summary.sent == 9 and summary.left_pending == 0
    with open_store(settings) as store:
        states = {row.address: row.state for row in store.journal_rows()}
    assert states["user1@example.org"] == "paused"
