"""Shared fixtures: a fresh workspace per test, fixed signing key, and the real external
programs (Chromium) the browser tests need."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from newsletter_mailer.app.send_campaign import open_campaign
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.send.campaign import Preflight
from newsletter_mailer.send.engine import Summary
from newsletter_mailer.store.base import Store
from newsletter_mailer.store.sqlite import SQLiteStore
from newsletter_mailer.workspace import init_workspace

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = REPO / "build" / "test-artefacts"
TEST_SECRET = "test-secret-for-newsletter-mailer"


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background by a shell without job control (``pytest &`` in a
    script) inherits Ctrl+C ignored, and so would every process it starts: the tests that press
    Ctrl+C (SIGINT) need it to arrive. A handler of our own is reset to the default in each child."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _repository_stays_clean() -> Iterator[None]:
    """No test writes state into the checkout: everything goes under its temporary directory."""
    os.environ["NEWSLETTER_SECRET"] = TEST_SECRET  # for module-scoped fixtures, set up before _isolated_env
    watched = [REPO / ".newsletter", REPO / "outbox", REPO / "subscribers.csv", REPO / "site"]
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

    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            proxy_headers=False,  # as `newsletter serve` runs it: the pages read X-Forwarded-For themselves
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


def run_send(root: Path, retry_failed: bool = False) -> tuple[Preflight, Summary]:
    settings = settings_for(root)
    with open_campaign(root / "issue.md", settings, retry_failed=retry_failed) as campaign:
        return campaign.preflight, campaign.run()


def journal_counts(root: Path) -> dict[str, int]:
    journal = SQLiteStore.open(settings_for(root).database_path)
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


# A real PostgreSQL server for the store tests: a temporary cluster made with initdb and run with
# pg_ctl on a free loopback port under the session's temporary directory, stopped at the end.

PG_USER = "newsletter"
PG_PASSWORD = "pg-test-password"


@dataclass(frozen=True)
class PostgresCluster:
    host: str
    port: int
    start: tuple[str, ...] = ()  # the command that started it, to start it again after a crash
    data: Path | None = None

    def url(self, database: str = "postgres") -> str:
        """A URL without the password: it comes from NEWSLETTER_STORE_PASSWORD, as in real use."""
        return f"postgresql://{PG_USER}@{self.host}:{self.port}/{database}"


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    return found[-1] if found else shutil.which(name)


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start_cluster(root: Path) -> tuple[PostgresCluster, Callable[[], None]] | str:
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not initdb or not pg_ctl:
        return "PostgreSQL is not installed (initdb and pg_ctl not found): install Debian's postgresql package"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser, and initdb refuses root"
    data = root / "data"
    root.mkdir(parents=True, exist_ok=True)
    (root / "pwfile").write_text(PG_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pwfile", "postgres")
    init = subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-U", PG_USER, "--auth=scram-sha-256", f"--pwfile={root / 'pwfile'}"]),
        capture_output=True,
        text=True,
        timeout=180,
    )
    if init.returncode != 0:
        return f"initdb failed: {init.stderr.strip()[-300:]}"
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -F -c max_connections=200"
    command = _as_postgres([pg_ctl, "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "-t", "60", "start"])
    start = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if start.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        return f"pg_ctl could not start PostgreSQL: {(start.stderr + log).strip()[-300:]}"

    postmaster = int((data / "postmaster.pid").read_text().split()[0])

    def stop() -> None:
        # A signal, not `pg_ctl stop`: another pytest session may have made the temporary root
        # private again meanwhile, and the postgres user could no longer reach the data directory.
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGQUIT)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                os.kill(postmaster, 0)
                time.sleep(0.05)

    return PostgresCluster("127.0.0.1", port, tuple(command), data), stop


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """A temporary PostgreSQL cluster for the session, or a skip that says why there is none."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL tests skipped: psycopg is not installed (pip install -e '.[test]')")
    # As root the server runs as the postgres user, who cannot reach pytest's private (0700)
    # temporary root, which any other pytest session makes private again at its start: the
    # cluster then gets a temporary directory of its own under the system's, removed after.
    root = Path(tempfile.mkdtemp(prefix="newsletter-pg-")) if os.geteuid() == 0 else tmp_path_factory.mktemp("pg")
    started = start_cluster(root)
    try:
        if isinstance(started, str):
            pytest.skip(f"PostgreSQL tests skipped: {started}")
        cluster, stop = started
        try:
            yield cluster
        finally:
            stop()
    finally:
        if os.geteuid() == 0:
            shutil.rmtree(root, ignore_errors=True)


_databases = itertools.count()


@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty database in the session's cluster; its password in NEWSLETTER_STORE_PASSWORD."""
    import psycopg

    name = f"t{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_cluster.url(), password=PG_PASSWORD, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    monkeypatch.setenv("NEWSLETTER_STORE_PASSWORD", PG_PASSWORD)
    return postgres_cluster.url(name)


@pytest.fixture
def migrated_pg_url(pg_url: str) -> str:
    """A fresh database with the schema in place, as after `newsletter store migrate`."""
    from newsletter_mailer.store.factory import open_url

    store = open_url(pg_url, PG_PASSWORD, check=False)
    try:
        store.migrate()
    finally:
        store.close()
    return pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store the settings can name: every journal and suppression test runs on both."""
    from newsletter_mailer.store.factory import open_url

    opened: Store
    if request.param == "sqlite":
        opened = SQLiteStore.open(tmp_path / "state" / "newsletter.db")
    else:
        opened = open_url(request.getfixturevalue("migrated_pg_url"), PG_PASSWORD)
    try:
        yield opened
    finally:
        opened.close()


def use_store(root: Path, url: str) -> None:
    """Point a workspace's settings at a PostgreSQL store."""
    text = (root / "newsletter.toml").read_text()
    (root / "newsletter.toml").write_text(text.replace("[smtp]", f'[store]\nurl = "{url}"\n[smtp]', 1))


def refuse_inserts(store: Store, table: str) -> None:
    """Make the database itself refuse every row written to ``table`` (a trigger that raises
    "refused by the test"): a step that fails half-way, to show what commits together."""
    if isinstance(store, SQLiteStore):
        store.db.execute(
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}"
            " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
        return
    from newsletter_mailer.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    store.db.execute(
        b"CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        b" $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
    )
    store.db.execute(
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse()".encode()
    )


class Proxied:
    """A store's URL through benchmarks/latency_proxy.py; ``trips``, once the proxy has ended,
    the round trips its clients made (a client's turn after the server answered)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.trips = 0


@contextlib.contextmanager
def latency_proxy(url: str, delay_ms: float) -> Iterator[Proxied]:
    """The PostgreSQL store at ``url`` behind the benchmarks' latency proxy (a process of its
    own), ``delay_ms`` each way: a store across a network, on loopback."""
    scheme, _, rest = url.partition("://")
    authority, _, database = rest.partition("/")
    user, _, target = authority.rpartition("@")
    proxy = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "latency_proxy.py"), "--to", target, "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proxy.stdout is not None
        proxied = Proxied(f"{scheme}://{user}@{proxy.stdout.readline().split()[0]}/{database}")
        yield proxied
    finally:
        proxy.send_signal(signal.SIGINT)
        out = proxy.communicate(timeout=30)[0]
    proxied.trips = int(out.split()[-1])
