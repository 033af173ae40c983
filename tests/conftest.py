"""Shared fixtures: a fresh workspace per test, fixed signing key, and the real external
programs (Chromium) the browser tests need."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.send import dispatch
from newsletter_mailer.store.journal import SQLiteJournal
from newsletter_mailer.workspace import init_workspace

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = REPO / "build" / "test-artefacts"
TEST_SECRET = "test-secret-for-newsletter-mailer"


@pytest.fixture(scope="session", autouse=True)
def _repository_stays_clean() -> Iterator[None]:
    """No test writes state into the checkout: everything goes under its temporary directory."""
    os.environ["NEWSLETTER_SECRET"] = TEST_SECRET  # for module-scoped fixtures, set up before _isolated_env
    watched = [REPO / ".newsletter", REPO / "outbox", REPO / "subscribers.csv"]
    before = {path for path in watched if path.exists()}
    yield
    created = [str(path) for path in watched if path.exists() and path not in before]
    assert not created, f"the tests wrote into the repository: {', '.join(created)}"


@pytest.fixture(scope="session")
def example_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The repository's example settings, in a workspace of the test session's own."""
    root = tmp_path_factory.mktemp("example")
    shutil.copyfile(REPO / "newsletter.toml", root / "newsletter.toml")
    return load_settings(workspace=root, env={"NEWSLETTER_SECRET": TEST_SECRET})


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSLETTER_SECRET", TEST_SECRET)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace made by `init`, as an editor would start."""
    root = tmp_path / "ws"
    init_workspace(root)
    return root


@pytest.fixture
def settings(workspace: Path) -> Settings:
    return load_settings(workspace=workspace)


def write_issue(folder: Path, front: str, body: str = "", name: str = "issue.md") -> Path:
    path = folder / name
    path.write_text(f"---\n{front.strip()}\n---\n{body}", encoding="utf-8")
    return path


_CHROMIUM: tuple[str, str] | str | None = "unknown"


def _install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver when we may; a reason when we may not."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return (
            "Chromium is not installed and this run is not root: "
            "install the Debian packages chromium and chromium-driver"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            return f"installing Chromium failed: {result.stderr.strip()[-300:]}"
    return None if shutil.which("chromium") and shutil.which("chromedriver") else "Chromium still missing"


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installed on first use when running as root."""
    global _CHROMIUM
    if _CHROMIUM == "unknown":
        reason = _install_chromium()
        _CHROMIUM = reason if reason else (shutil.which("chromium") or "", shutil.which("chromedriver") or "")
    if isinstance(_CHROMIUM, str):
        pytest.skip(f"browser test skipped: {_CHROMIUM}")
    assert _CHROMIUM is not None
    return _CHROMIUM


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[object]:
    """A headless Chromium driven through chromedriver, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromium[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


NODE_PREFIX = REPO / "build" / "node"


def node_package(name: str) -> Path:
    """The folder of an npm package that `.ci/run` installs under build/node; skips, saying how
    to get it, when node or the package is missing."""
    if shutil.which("node") is None:
        pytest.skip(f"test skipped: node is not installed, and it runs the npm package {name} (Debian: nodejs npm)")
    folder = NODE_PREFIX / "node_modules" / name
    if not (folder / "package.json").is_file():
        pytest.skip(
            f"test skipped: the npm package {name} is not in {NODE_PREFIX}; run .ci/run, "
            f"or npm install --prefix build/node {name}"
        )
    return folder


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_asgi(app: Callable[..., Any], port: int = 0) -> Iterator[str]:
    """Run an ASGI app under a real uvicorn server on loopback (on ``port``, or a free one);
    yields its base URL."""
    import threading
    import time

    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# A workspace wired to a test SMTP server, and a whole send through it: shared by the send,
# compose, CLI and end-to-end tests.


def make_workspace(root: Path, port: int, count: int, *, smtp_extra: str = "", bad_rows: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    smtp = {"security": '"none"', "concurrency": "4", "retry_delay": "0.01", "max_attempts": "12"}
    for line in smtp_extra.splitlines():
        key, _, value = line.partition("=")
        smtp[key.strip()] = value.strip()
    smtp_lines = "\n".join(f"{k} = {v}" for k, v in smtp.items())
    (root / "newsletter.toml").write_text(f"""
[newsletter]
name = "Test List"
from = "news@example.org"
base_url = "https://lists.example.org"
subscribers = "subscribers.csv"
test_recipients = ["editor@example.org"]
[smtp]
host = "127.0.0.1"
port = {port}
{smtp_lines}
""")
    rows = "\n".join(f"user{i}@example.org,User {i}" for i in range(count))
    (root / "subscribers.csv").write_text(f"email,name\n{rows}\n{bad_rows}")
    (root / "issue.md").write_text(
        "---\nsubject: Hello {{ subscriber.name }}\n---\nDear {{ subscriber.name }},\n\n"
        "## News\n\nSomething [happened](https://example.org/n).\n"
    )
    return root


def settings_for(root: Path) -> Settings:
    return load_settings(workspace=root)


def run_send(root: Path, retry_failed: bool = False) -> tuple[dispatch.Preflight, dispatch.Summary]:
    settings = settings_for(root)
    with dispatch.open_campaign(root / "issue.md", settings, retry_failed=retry_failed) as campaign:
        return campaign.preflight, campaign.run()


def journal_counts(root: Path) -> dict[str, int]:
    journal = SQLiteJournal.open(settings_for(root).database_path)
    try:
        return journal.counts("issue")
    finally:
        journal.close()


# A real IMAP server for the bounce mailbox: Dovecot on loopback with a temporary mail home.

DOVECOT = "/usr/sbin/dovecot"
DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = nlm-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = no
# Plaintext logins over loopback only, for the test.
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
"""


@dataclasses.dataclass(frozen=True)
class Dovecot:
    port: int
    username: str
    password: str
    root: Path

    def client(self) -> Any:
        import imaplib

        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(self.username, self.password)
        return imap

    def deliver(self, data: bytes, folder: str = "INBOX") -> None:
        imap = self.client()
        try:
            imap.append(folder, None, None, data)
        finally:
            imap.logout()


def _dovecot_users() -> tuple[str, str, str, int, int] | str:
    """(internal user, its group, login user, mail uid, mail gid), or why Dovecot cannot run."""
    import grp
    import pwd

    if os.geteuid() != 0:
        me = pwd.getpwuid(os.getuid())
        return me.pw_name, grp.getgrgid(os.getgid()).gr_name, me.pw_name, os.getuid(), os.getgid()
    try:
        internal, login = pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull")
    except KeyError:
        return "the users dovecot and dovenull are missing (install the Debian package dovecot-imapd)"
    return internal.pw_name, grp.getgrgid(internal.pw_gid).gr_name, login.pw_name, internal.pw_uid, internal.pw_gid


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """Dovecot on 127.0.0.1 with a temporary config, mail home and one user; stopped after."""
    import socket
    import tempfile
    import time

    if not os.path.exists(DOVECOT):
        pytest.skip(f"IMAP test skipped: {DOVECOT} is not installed (Debian package dovecot-imapd)")
    users = _dovecot_users()
    if isinstance(users, str):
        pytest.skip(f"IMAP test skipped: {users}")
    internal, internal_group, login, uid, gid = users
    # Its own directory under /tmp: Dovecot's mail processes run as another user and must be
    # able to reach the mail home, which pytest's private (0700) tmp_path does not allow.
    with tempfile.TemporaryDirectory(prefix="nlm-dovecot-") as temp:
        root = Path(temp)
        root.chmod(0o711)
        (root / "mail").mkdir()
        os.chown(root / "mail", uid, gid)
        (root / "passwd").write_text("bounces@news.example.org:{PLAIN}imap-test-password\n")
        port = free_port()
        conf = DOVECOT_CONF.format(
            root=root, port=port, internal=internal, internal_group=internal_group, login=login, uid=uid, gid=gid
        )
        (root / "dovecot.conf").write_text(conf)
        process = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 15
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                    pytest.skip(f"IMAP test skipped: Dovecot did not start: {log.strip()[-300:]}")
                time.sleep(0.05)
            yield Dovecot(port, "bounces@news.example.org", "imap-test-password", root)
        finally:
            process.terminate()
            process.wait(timeout=15)
