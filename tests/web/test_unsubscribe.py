"""unsubscribe.py under a real uvicorn server, on either store: confirm page, one-click POST,
undo, bad tokens, health, and a store that refuses the write (the reader gets the try-again form,
the log the command that replays it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import refuse_inserts, serve_asgi
from newsletter_mailer.audience.links import signer_for
from newsletter_mailer.audience.suppressions import SuppressionList
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.store.factory import open_store
from newsletter_mailer.web.unsubscribe import create_app, mask


def _settings(root: Path, store_url: str = "") -> Settings:
    store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
    (root / "newsletter.toml").write_text(
        '[newsletter]\nname = "Les Randonneurs"\nlanguage = "fr"\n[brand]\naccent = "#aa3300"\n' + store
    )
    return load_settings(workspace=root)


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    """The pages on each store: the workspace's SQLite file, or a PostgreSQL store."""
    url = request.getfixturevalue("migrated_pg_url") if request.param == "postgresql" else ""
    settings = _settings(tmp_path, url)
    with serve_asgi(create_app(settings)) as base:
        yield base, settings


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings = _settings(tmp_path)
    with serve_asgi(create_app(settings)) as base:
        yield base, settings


def suppression(settings: Settings, address: str) -> tuple[str, str] | None:
    with open_store(settings) as store:
        entry = SuppressionList(store).get(address)
        return (entry.reason, entry.source) if entry else None


def test_get_shows_a_confirmation_page_and_never_unsubscribes(site: tuple[str, Settings]) -> None:
    base, settings = site
    token = signer_for(settings).token("ada.lovelace@example.org")
    for _ in range(3):
        response = httpx.get(f"{base}/unsubscribe/{token}")
    assert response.status_code == 200
    assert '<html lang="fr" dir="ltr">' in response.text and "Les Randonneurs" in response.text
    assert "ad**********@example.org" in response.text and "ada.lovelace" not in response.text
    assert f'<form method="post" action="/unsubscribe/{token}">' in response.text
    assert "#aa3300" in response.text and "<script" not in response.text
    assert suppression(settings, "ada.lovelace@example.org") is None


def test_one_click_post_unsubscribes_at_once_and_repeating_is_harmless(site: tuple[str, Settings]) -> None:
    base, settings = site
    token = signer_for(settings).token("bob@example.org")
    for _ in range(2):
        response = httpx.post(
            f"{base}/unsubscribe/{token}",
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200 and "Vous êtes désabonné·e" in response.text
        assert f'action="/resubscribe/{token}"' in response.text
    assert suppression(settings, "bob@example.org") == ("unsubscribed", "one-click")
    page = httpx.get(f"{base}/unsubscribe/{token}")
    assert "Vous êtes désabonné·e" in page.text and "Se réabonner" in page.text  # the pages speak French


def test_undo_resubscribes_but_not_a_bounced_address(site: tuple[str, Settings]) -> None:
    base, settings = site
    signer = signer_for(settings)
    token = signer.token("carol@example.org")
    httpx.post(f"{base}/unsubscribe/{token}")
    assert suppression(settings, "carol@example.org") == ("unsubscribed", "web page")
    response = httpx.post(f"{base}/resubscribe/{token}")
    assert response.status_code == 200 and "de nouveau abonné·e à Les Randonneurs" in response.text
    assert suppression(settings, "carol@example.org") is None
    with open_store(settings) as store:
        SuppressionList(store).add("dead@example.org", "bounced", "test")
    response = httpx.post(f"{base}/resubscribe/{signer.token('dead@example.org')}")
    assert "Impossible de réinscrire" in response.text
    assert suppression(settings, "dead@example.org") == ("bounced", "test")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_tokens_get_400_and_leak_nothing(site: tuple[str, Settings], method: str) -> None:
    base, settings = site
    good = signer_for(settings).token("dave@example.org")
    for token in (good[:-3], good[:-1] + ("A" if good[-1] != "A" else "B"), "nonsense", "x" * 200):
        response = httpx.request(method, f"{base}/unsubscribe/{token}")
        assert response.status_code == 400
        assert "pas valable" in response.text
        assert "dave" not in response.text and "signature" not in response.text
    assert suppression(settings, "dave@example.org") is None


def test_healthz(site: tuple[str, Settings]) -> None:
    base, _ = site
    response = httpx.get(f"{base}/healthz")
    assert response.status_code == 200 and response.text == "ok"


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("ada@example.org", "a***@example.org"),
        ("ab@example.org", "a***@example.org"),
        ("margaret@example.org", "ma******@example.org"),
    ],
)
def test_mask(address: str, masked: str) -> None:
    assert mask(address) == masked


def test_a_large_body_is_refused_unread(site: tuple[str, Settings]) -> None:
    import socket
    from urllib.parse import urlsplit

    base, settings = site
    token = signer_for(settings).token("carol@example.org")
    url = urlsplit(base)
    with socket.create_connection((url.hostname or "", url.port or 0), timeout=10) as sock:
        sock.sendall(
            f"POST /unsubscribe/{token} HTTP/1.1\r\nHost: x\r\nContent-Length: 314572800\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\nList-Unsubscribe=One-Click".encode()
        )
        reply = sock.recv(4096)  # answered at once, though 300 MB were announced and 26 bytes sent
    assert reply.startswith(b"HTTP/1.1 413")

    def chunks() -> Iterator[bytes]:
        yield b"List-Unsubscribe=One-Click&"
        for _ in range(64):
            yield b"x" * 1024

    streamed = httpx.post(f"{base}/unsubscribe/{token}", content=chunks())  # chunked: no declared length
    assert streamed.status_code == 413
    assert suppression(settings, "carol@example.org") is None


def test_a_damaged_database_loses_no_unsubscribe(
    sqlite_site: tuple[str, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    from click.testing import CliRunner

    from newsletter_mailer.cli import main

    base, settings = sqlite_site
    token = signer_for(settings).token("dave@example.org")
    settings.state_dir.mkdir(exist_ok=True)
    settings.database_path.write_bytes(b"not a database " * 100)
    response = httpx.post(f"{base}/unsubscribe/{token}", content="List-Unsubscribe=One-Click")
    assert response.status_code == 503 and "Veuillez réessayer" in response.text
    assert f'action="/unsubscribe/{token}"' in response.text
    logged = [r.getMessage() for r in caplog.records if r.name == "newsletter_mailer.web"]
    assert logged and f"newsletter unsubscribe --token {token}" in logged[0] and "damaged" in logged[0]
    settings.database_path.unlink()  # the editor restores the database, then replays the log line
    replay = CliRunner().invoke(
        main, ["--config", str(settings.config_path), "unsubscribe", "--token", token], catch_exceptions=False
    )
    assert replay.exit_code == 0 and "dave@example.org suppressed" in replay.output
    assert suppression(settings, "dave@example.org") == ("unsubscribed", "replayed token")
    forged = CliRunner().invoke(main, ["--config", str(settings.config_path), "unsubscribe", "--token", "abc"])
    assert forged.exit_code == 2 and "not a valid unsubscribe token" in forged.output


def test_an_unreachable_store_is_a_503_page_on_every_route(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The PostgreSQL server is down: every page that reads or writes the store says to come back
    (503), the log has one line per request, and no page is a 500 with a traceback."""
    from conftest import free_port

    (tmp_path / "newsletter.toml").write_text(
        f'[newsletter]\nname = "News"\n[store]\nurl = "postgresql://news@127.0.0.1:{free_port()}/news"\n'
    )
    settings = load_settings(workspace=tmp_path)
    token = signer_for(settings).token("dave@example.org")
    form = {"email": "erin@example.org", "name": "Erin", "website": ""}
    with serve_asgi(create_app(settings)) as base:
        answers = [
            httpx.get(f"{base}/unsubscribe/{token}"),
            httpx.post(f"{base}/unsubscribe/{token}", content="List-Unsubscribe=One-Click"),
            httpx.post(f"{base}/subscribe", data=form),
            httpx.get(f"{base}/healthz"),
        ]
        # A signup is answered before the store is touched (the answer must not depend on the
        # address): the first one finds the store down after its answer, and says so in the log;
        # the ones after it are told to come back.
        deadline = time.monotonic() + 10
        while not (said := [r for r in caplog.records if "er***@example.org from" in r.getMessage()]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first = said[0]
        answers.append(httpx.post(f"{base}/subscribe", data=form))
    assert [a.status_code for a in answers] == [503, 503, 200, 503, 503], [a.text[:200] for a in answers]
    assert "cannot open the store" in first.getMessage()
    assert all("Traceback" not in r.getMessage() and r.exc_info is None for r in caplog.records)
    assert "dave@example.org" not in " ".join(a.text for a in answers)


def test_a_store_that_refuses_the_write_loses_no_unsubscribe(
    site: tuple[str, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """The store is reached, then refuses the write (a trigger raises, as a full disk or a
    read-only server would): the reader gets the try-again form, the log the replay command."""
    from click.testing import CliRunner

    from newsletter_mailer.cli import main

    base, settings = site
    token = signer_for(settings).token("erin@example.org")
    with open_store(settings) as store:
        refuse_inserts(store, "suppressions")
    response = httpx.post(f"{base}/unsubscribe/{token}", content="List-Unsubscribe=One-Click")
    assert response.status_code == 503 and "Veuillez réessayer" in response.text
    assert (
        f'<form method="post" action="/unsubscribe/{token}"><button type="submit">Réessayer</button>' in response.text
    )
    logged = [r.getMessage() for r in caplog.records if r.name == "newsletter_mailer.web"]
    assert len(logged) == 1 and f"replay it with: newsletter unsubscribe --token {token}" in logged[0]
    assert "refused by the test" in logged[0] and "erin@example.org" not in logged[0]
    with open_store(settings) as store:
        drop = "DROP TRIGGER refuse_suppressions" + ("" if settings.store.url == "" else " ON suppressions")
        store.db.execute(drop)  # type: ignore[attr-defined]
    replay = CliRunner().invoke(main, ["--config", str(settings.config_path), "unsubscribe", "--token", token])
    assert replay.exit_code == 0 and "erin@example.org suppressed" in replay.output
    assert suppression(settings, "erin@example.org") == ("unsubscribed", "replayed token")
