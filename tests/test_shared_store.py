"""One PostgreSQL store shared by processes that share nothing else: the unsubscribe endpoint
runs from its own directory (as on a public server), the send from the editor's workspace; an
unsubscribe POSTed while the send runs stops the message to that address."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port, make_workspace, use_store
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.config import load_settings
from smtp_servers import Faults, SMTPTestServer

RECIPIENTS = 40


def wait_healthy(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(f"{base}/healthz", timeout=2).text == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the endpoint did not come up")


def test_an_unsubscribe_on_the_public_endpoint_reaches_a_running_send(migrated_pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    public = tmp_path / "public-server"
    public.mkdir()
    with SMTPTestServer(Faults(delay=0.05)) as smtp:
        laptop = make_workspace(tmp_path / "laptop", smtp.port, RECIPIENTS, smtp_extra="concurrency = 1")
        use_store(laptop, migrated_pg_url)
        shutil.copyfile(laptop / "newsletter.toml", public / "newsletter.toml")
        env = {**os.environ, "COLUMNS": "200"}
        endpoint = subprocess.Popen(
            [sys.executable, "-m", "newsletter_mailer", "serve", "--port", str(port)],
            cwd=public,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base, endpoint)
            send = subprocess.Popen(
                [sys.executable, "-m", "newsletter_mailer", "send", "issue.md", "--yes"],
                cwd=laptop,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            deadline = time.monotonic() + 60
            while len(smtp.handler.messages) < 3:
                assert time.monotonic() < deadline and send.poll() is None, send.communicate()[0]
                time.sleep(0.01)
            token = signer_for(load_settings(workspace=laptop)).token("user30@example.org")
            response = httpx.post(
                f"{base}/unsubscribe/{token}",
                content="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert response.status_code == 200 and "You are unsubscribed" in response.text
            assert send.poll() is None and len(smtp.handler.messages) < 30  # the send is still running
            output = send.communicate(timeout=120)[0]
            assert send.returncode == 0, output
        finally:
            endpoint.terminate()
            endpoint.communicate(timeout=30)
    copies = smtp.handler.copies()
    assert "user30@example.org" not in copies
    assert copies == {f"user{i}@example.org": 1 for i in range(RECIPIENTS) if i != 30}
    assert f"sent {RECIPIENTS - 1}, failed 0, skipped as unsubscribed or bounced 1" in output
    status = subprocess.run(
        [sys.executable, "-m", "newsletter_mailer", "status", "issue.md"],
        cwd=laptop,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"sent {RECIPIENTS - 1}, pending 0, failed 0, skipped as unsubscribed 1" in status.stdout
    # Neither side kept any state of its own: both used the shared store.
    assert not (public / ".newsletter" / "newsletter.db").exists()
    assert not (laptop / ".newsletter" / "newsletter.db").exists()
