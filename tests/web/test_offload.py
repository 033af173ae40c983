"""offload.py under uvicorn against a PostgreSQL server stopped with SIGSTOP: the pages that do not
need the store answer at once, /healthz answers without waiting on it, a write answers 503 with
the try-again form when its deadline passes, and no request waits on another."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import PG_PASSWORD, PostgresCluster, serve_asgi, start_cluster
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.config import load_settings
from newsletter_mailer.store.factory import open_url
from newsletter_mailer.web.offload import Offload
from newsletter_mailer.web.unsubscribe import create_app

DEADLINE = 3.0  # the pages' wait for the store in this test


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[tuple[PostgresCluster, int]]:
    """A PostgreSQL cluster of this test's own (it is stopped with SIGSTOP: no other test may
    share it) and its postmaster's pid."""
    pytest.importorskip("psycopg", reason="PostgreSQL tests skipped: psycopg is not installed")
    root = Path(tempfile.mkdtemp(prefix="newsletter-pg-stop-")) if os.geteuid() == 0 else tmp_path / "pg"
    try:
        started = start_cluster(root)
        if isinstance(started, str):
            pytest.skip(f"PostgreSQL tests skipped: {started}")
        cluster, stop = started
        try:
            yield cluster, int((root / "data" / "postmaster.pid").read_text().split()[0])
        finally:
            stop()
    finally:
        if os.geteuid() == 0:
            shutil.rmtree(root, ignore_errors=True)


def _cluster_processes(postmaster: int) -> list[int]:
    """The postmaster and every process it started (the backends, the checkpointer...)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(entry.name))
    return [postmaster, *children]


@contextlib.contextmanager
def stopped(postmaster: int) -> Iterator[None]:
    processes = _cluster_processes(postmaster)
    try:
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):  # a backend that ended since it was listed
                os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _timed(request: httpx.Request) -> tuple[httpx.Response, float]:
    with httpx.Client(timeout=60) as client:
        response = client.send(request)
    return response, time.monotonic()


def test_a_hanging_store_blocks_no_page_and_a_write_gets_the_try_again_form(
    own_cluster: tuple[PostgresCluster, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster, postmaster = own_cluster
    monkeypatch.setenv("NEWSLETTER_STORE_PASSWORD", PG_PASSWORD)
    url = cluster.url()
    store = open_url(url, PG_PASSWORD, check=False)
    store.migrate()
    store.close()
    (tmp_path / "newsletter.toml").write_text(f'[newsletter]\nname = "News"\n[store]\nurl = "{url}"\n')
    settings = load_settings(workspace=tmp_path)
    token = signer_for(settings).token("frank@example.org")
    offload = Offload(threads=4, timeout=DEADLINE)
    with serve_asgi(create_app(settings, offload)) as base:
        assert httpx.get(f"{base}/healthz").text == "ok"
        write = httpx.Request("POST", f"{base}/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
        with stopped(postmaster), ThreadPoolExecutor(4) as pool:
            posted_at = time.monotonic()
            post = pool.submit(_timed, write)
            time.sleep(0.3)  # the write is now waiting on the stopped server
            health, health_done = _timed(httpx.Request("GET", f"{base}/healthz"))
            form, form_done = _timed(httpx.Request("GET", f"{base}/subscribe"))
            answer, post_done = post.result(timeout=60)
            time.sleep(max(0.0, posted_at + 3.5 - time.monotonic()))  # the last good probe is stale now
            stale, _ = _timed(httpx.Request("GET", f"{base}/healthz"))
            crowd = [pool.submit(_timed, write) for _ in range(3)]  # the threads still hang: no queueing
            crowded = [c.result(timeout=60)[0].status_code for c in crowd]
        assert health.status_code in (200, 503) and form.status_code == 200 and "<form" in form.text
        assert health_done < post_done and form_done < post_done  # neither waited on the write
        assert post_done - posted_at >= DEADLINE * 0.9  # the write waited for its deadline, no longer
        assert answer.status_code == 503 and "Please try again" in answer.text
        assert f'action="/unsubscribe/{token}"' in answer.text and ">Try again</button>" in answer.text
        assert stale.status_code == 503 and crowded == [503, 503, 503]
        logged = [r.getMessage() for r in caplog.records if r.name == "newsletter_mailer.web"]
        assert f"replay it with: newsletter unsubscribe --token {token}" in logged[0]
        deadline = time.monotonic() + 30  # the server runs again: so do the pages
        while httpx.post(f"{base}/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click").status_code != 200:
            assert time.monotonic() < deadline, "the pages did not recover after SIGCONT"
            time.sleep(0.5)
    offload.close()
