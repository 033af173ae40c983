"""Workspace settings: newsletter.toml, overridden by NEWSLETTER_* environment variables.

Secrets never come from the file: the SMTP password is read from NEWSLETTER_SMTP_PASSWORD only.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG_NAME = "newsletter.toml"
SECURITY_CHOICES = ("starttls", "tls", "none")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_SELECTOR = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")


def valid_selector(selector: str) -> bool:
    """A DKIM selector is a DNS name under _domainkey: letters, digits and hyphens in dot-separated
    labels (RFC 6376 3.1), so it can never be a path or hold a space."""
    return bool(_SELECTOR.match(selector))


@dataclass(frozen=True)
class NewsletterSettings:
    name: str = "Our Newsletter"
    from_: str = "newsletter@example.org"
    reply_to: str = ""
    language: str = "en"
    postal_address: str = ""
    base_url: str = "http://127.0.0.1:8000"
    subscribers: str = "subscribers.csv"
    test_recipients: tuple[str, ...] = ()
    list_id: str = ""
    unsubscribe_mailto: str = ""
    timezone: str = ""  # an IANA zone (Europe/London) for the diary's times; empty: floating local times

    @property
    def from_domain(self) -> str:
        return self.from_.rpartition("@")[2].strip(" >").lower() or "localhost"

    @property
    def list_id_value(self) -> str:
        """The List-Id label (RFC 2919): configured, or the name's slug under the From domain."""
        if self.list_id:
            return self.list_id
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "newsletter"
        return f"{slug}.{self.from_domain}"


@dataclass(frozen=True)
class BrandSettings:
    logo: str = ""
    logo_alt: str = ""
    accent: str = "#1a6fb5"


@dataclass(frozen=True)
class SMTPSettings:
    host: str = ""
    port: int = 0
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    verify_certificates: bool = True
    concurrency: int = 4
    rate: float = 0.0
    per_hour: int = 0
    timeout: float = 60.0
    messages_per_connection: int = 100
    max_attempts: int = 5
    retry_delay: float = 2.0
    retry_max_seconds: float = 600.0
    max_consecutive_failures: int = 25

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return {"tls": 465, "starttls": 587}.get(self.security, 25)


@dataclass(frozen=True)
class DKIMSettings:
    domain: str = ""
    selector: str = ""
    key_file: str = ""
    key: bytes = field(default=b"", repr=False)
    ed25519_selector: str = ""  # an optional second signature (RFC 8463), beside the RSA one
    ed25519_key_file: str = ""
    ed25519_key: bytes = field(default=b"", repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.domain and self.selector and (self.key or self.key_file))

    @property
    def ed25519_enabled(self) -> bool:
        return bool(self.enabled and self.ed25519_selector and (self.ed25519_key or self.ed25519_key_file))


@dataclass(frozen=True)
class BouncesSettings:
    """Where delivery reports go (the VERP envelope sender) and the mailbox they are read from."""

    address: str = ""
    host: str = ""
    port: int = 0
    tls: bool = True
    verify_certificates: bool = True
    username: str = ""
    password: str = field(default="", repr=False)
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    soft_threshold: int = 3
    soft_window_days: float = 30.0

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.tls else 143)


@dataclass(frozen=True)
class SignupSettings:
    """The double opt-in signup form served by ``newsletter serve``."""

    fields: tuple[str, ...] = ()
    wording_version: str = "1"
    confirm_hours: float = 48.0
    per_address_per_day: int = 3
    per_ip_per_hour: int = 10


@dataclass(frozen=True)
class StoreSettings:
    """Where state lives: empty for the workspace's SQLite file, or a ``postgresql://`` URL."""

    url: str = ""
    password: str = field(default="", repr=False)
    lease: float = 60.0  # seconds a worker that stops answering keeps the rows it claimed


class ReaderFields(tuple[tuple[str, str], ...]):
    """The ``[publish.reader]`` table: the values merge fields take on the public page."""


PUBLIC_READER = ReaderFields((("name", "friend"),))


@dataclass(frozen=True)
class PublishSettings:
    """The web archive ``newsletter publish`` writes (docs/publish.md)."""

    enabled: bool = True
    base_url: str = ""  # where the site is served; empty: [newsletter] base_url
    out: str = "site"
    issues: str = "issues"  # the folder whose sent issues are published
    copy_remote_images: bool = False
    reader: ReaderFields = PUBLIC_READER


@dataclass(frozen=True)
class Settings:
    workspace: Path
    config_path: Path
    found: bool
    newsletter: NewsletterSettings = NewsletterSettings()
    brand: BrandSettings = BrandSettings()
    smtp: SMTPSettings = SMTPSettings()
    dkim: DKIMSettings = DKIMSettings()
    bounces: BouncesSettings = BouncesSettings()
    signup: SignupSettings = SignupSettings()
    store: StoreSettings = StoreSettings()
    publish: PublishSettings = PublishSettings()

    def path(self, value: str) -> Path:
        """A path from the settings, relative to the workspace."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.workspace / p

    @property
    def state_dir(self) -> Path:
        return self.workspace / ".newsletter"

    @property
    def database_path(self) -> Path:
        return self.state_dir / "newsletter.db"


_SECTIONS: dict[str, type[Any]] = {
    "newsletter": NewsletterSettings,
    "brand": BrandSettings,
    "smtp": SMTPSettings,
    "dkim": DKIMSettings,
    "bounces": BouncesSettings,
    "signup": SignupSettings,
    "store": StoreSettings,
    "publish": PublishSettings,
}
_SECRET_KEYS = {
    ("smtp", "password"),
    ("dkim", "key"),
    ("dkim", "ed25519_key"),
    ("bounces", "password"),
    ("store", "password"),
}
STORE_SCHEMES = ("postgresql://", "postgres://")


def _toml_name(attr: str) -> str:
    return attr.rstrip("_")


def key_line(text: str, section: str, key: str | None) -> int | None:
    """Best-effort line of ``[section] key`` in the TOML text, for error messages."""
    current = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            current = header.group(1).strip()
            if key is None and current == section:
                return number
            continue
        if key and current == section and re.match(rf"^{re.escape(key)}\s*=", line):
            return number
    return None


def _coerce(section: str, key: str, value: Any, default: Any, where: tuple[str, int | None]) -> Any:
    file, line = where
    label = f"[{section}] {key}"
    if isinstance(default, ReaderFields):
        return _reader_fields(label, value, where)
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be true or false, not {value!r}", file=file, line=line)
        return value
    if isinstance(default, int):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{label} must be a whole number, not {value!r}", file=file, line=line) from None
        if number < 0:
            raise ConfigError(f"{label} must not be negative", file=file, line=line)
        return number
    if isinstance(default, float):
        try:
            real = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{label} must be a number, not {value!r}", file=file, line=line) from None
        if not math.isfinite(real):
            raise ConfigError(f"{label} must be a finite number, not {value!r}", file=file, line=line)
        if real < 0:
            raise ConfigError(f"{label} must not be negative", file=file, line=line)
        return real
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{label} must be a list of strings", file=file, line=line)
        for item in value:
            _one_line(label, item, where)
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{label} must be a string, not {value!r}", file=file, line=line)
    return _one_line(label, value, where)


def _reader_fields(label: str, value: Any, where: tuple[str, int | None]) -> ReaderFields:
    """A table of column = "text": what the public page says where a reader's value would go."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f'{label} must be a table of column = "text" (name = "friend")', file=where[0], line=where[1])
    return ReaderFields(sorted((str(k), _one_line(f"{label}.{k}", v, where)) for k, v in value.items()))


def _one_line(label: str, value: str, where: tuple[str, int | None]) -> str:
    """Settings end up in headers and in the page: a line break in one could forge a header."""
    if _CONTROL.search(value):
        raise ConfigError(
            f"{label} must be one line of text, without line breaks or control characters",
            file=where[0],
            line=where[1],
        )
    return value


def _section(name: str, raw: Mapping[str, Any], env: Mapping[str, str], text: str, file: str) -> Any:
    cls = _SECTIONS[name]
    by_key = {_toml_name(f.name): f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        line = key_line(text, name, key)
        if (name, key) in _SECRET_KEYS:
            var = f"NEWSLETTER_{name.upper()}_{key.upper()}"
            raise ConfigError(
                f"[{name}] {key} must not be written in the file: set the environment variable {var}",
                file=file,
                line=line,
            )
        if key not in by_key:
            allowed = ", ".join(k for k in by_key if (name, k) not in _SECRET_KEYS)
            raise ConfigError(f"unknown key [{name}] {key}; allowed: {allowed}", file=file, line=line)
        f = by_key[key]
        values[f.name] = _coerce(name, key, value, f.default, (file, line))
    for key, f in by_key.items():
        var = f"NEWSLETTER_{name.upper()}_{key.upper()}"
        if var in env and name in ("smtp", "dkim", "store"):
            if (name, key) in (("dkim", "key"), ("dkim", "ed25519_key")):
                values[f.name] = env[var].encode()
            else:
                values[f.name] = _coerce(name, key, env[var], f.default, (var, None))
    return cls(**values)


def _read_text(config: Path) -> str:
    raw = config.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text ({exc.reason}): save the settings as UTF-8",
            file=config,
            line=raw.count(b"\n", 0, exc.start) + 1,
        ) from None


def _check_values(sections: dict[str, Any], text: str, file: str) -> None:
    """Values that are well typed but unusable, each named by its key."""
    brand: BrandSettings = sections["brand"]
    if not _HEX_COLOUR.match(brand.accent):
        raise ConfigError(
            f"[brand] accent must be a hex colour like #1a6fb5 or #2e7, not {brand.accent!r}",
            file=file,
            line=key_line(text, "brand", "accent"),
        )
    dkim: DKIMSettings = sections["dkim"]
    if dkim.selector and not valid_selector(dkim.selector):
        raise ConfigError(
            f"[dkim] selector must be a DNS label (letters, digits, hyphens), not {dkim.selector!r}",
            file=file,
            line=key_line(text, "dkim", "selector"),
        )


def load_settings(
    config: Path | None = None,
    *,
    workspace: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read settings. A missing file gives the defaults (``Settings.found`` is False)."""
    env = os.environ if env is None else env
    if config is None:
        workspace = (workspace or Path.cwd()).resolve()
        config = workspace / CONFIG_NAME
    else:
        config = config.resolve()
        workspace = workspace.resolve() if workspace else config.parent
    file = str(config)
    text = ""
    data: dict[str, Any] = {}
    found = config.is_file()
    if found:
        text = _read_text(config)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            raise ConfigError(
                f"not valid TOML: {exc}", file=file, line=int(match.group(1)) if match else None
            ) from None
    elif config.name != CONFIG_NAME or config.parent != workspace:
        raise ConfigError("settings file not found", file=file)
    for name, value in data.items():
        if name not in _SECTIONS:
            raise ConfigError(
                f"unknown section [{name}]; allowed: {', '.join(_SECTIONS)}",
                file=file,
                line=key_line(text, name, None),
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a [{name}] table", file=file, line=key_line(text, name, None))
    sections = {name: _section(name, data.get(name, {}), env, text, file) for name in _SECTIONS}
    _check_values(sections, text, file)
    smtp: SMTPSettings = sections["smtp"]
    if smtp.security not in SECURITY_CHOICES:
        raise ConfigError(
            f"[smtp] security must be one of {', '.join(SECURITY_CHOICES)}, not {smtp.security!r}",
            file=file,
            line=key_line(text, "smtp", "security"),
        )
    if smtp.concurrency < 1:
        raise ConfigError(
            "[smtp] concurrency must be at least 1", file=file, line=key_line(text, "smtp", "concurrency")
        )
    if smtp.max_attempts < 1:
        raise ConfigError(
            "[smtp] max_attempts must be at least 1", file=file, line=key_line(text, "smtp", "max_attempts")
        )
    password = env.get("NEWSLETTER_SMTP_PASSWORD", "")
    if password:
        smtp = SMTPSettings(**{**{f.name: getattr(smtp, f.name) for f in fields(smtp)}, "password": password})
    store = _store(sections["store"], env, text, file)
    news: NewsletterSettings = sections["newsletter"]
    if not re.match(r"^https?://[^\s/]+", news.base_url):
        raise ConfigError(
            "[newsletter] base_url must be an absolute http(s) URL",
            file=file,
            line=key_line(text, "newsletter", "base_url"),
        )
    if "@" not in news.from_:
        raise ConfigError(
            "[newsletter] from must be an email address", file=file, line=key_line(text, "newsletter", "from")
        )
    return Settings(
        publish=_publish(sections["publish"], news, text, file),
        workspace=workspace,
        config_path=config,
        found=found,
        newsletter=news,
        brand=sections["brand"],
        smtp=smtp,
        dkim=sections["dkim"],
        bounces=_bounces(sections["bounces"], env, text, file),
        signup=sections["signup"],
        store=store,
    )


def _publish(publish: PublishSettings, news: NewsletterSettings, text: str, file: str) -> PublishSettings:
    """The site's address defaults to the newsletter's; the diary's zone must be one zoneinfo knows."""
    if news.timezone:
        try:
            zoneinfo.ZoneInfo(news.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"[newsletter] timezone must be an IANA time zone such as Europe/London, not {news.timezone!r}",
                file=file,
                line=key_line(text, "newsletter", "timezone"),
            ) from None
    if publish.base_url and not re.match(r"^https?://[^\s/]+", publish.base_url):
        raise ConfigError(
            "[publish] base_url must be an absolute http(s) URL", file=file, line=key_line(text, "publish", "base_url")
        )
    return replace(publish, base_url=(publish.base_url or news.base_url).rstrip("/"))


def _bounces(bounces: BouncesSettings, env: Mapping[str, str], text: str, file: str) -> BouncesSettings:
    """The bounce address must be a plain address we can put a +TOKEN into; the IMAP password
    comes from NEWSLETTER_BOUNCES_PASSWORD only."""
    local, at, domain = bounces.address.rpartition("@")
    if bounces.address and (not at or not local or "+" in local or not re.match(r"^[A-Za-z0-9.-]+$", domain)):
        raise ConfigError(
            "[bounces] address must be a plain address such as bounces@news.example.org (no +tag)",
            file=file,
            line=key_line(text, "bounces", "address"),
        )
    if bounces.soft_threshold < 1:
        raise ConfigError(
            "[bounces] soft_threshold must be at least 1", file=file, line=key_line(text, "bounces", "soft_threshold")
        )
    password = env.get("NEWSLETTER_BOUNCES_PASSWORD", "")
    if password:
        bounces = replace(bounces, password=password)
    return bounces


def _store(store: StoreSettings, env: Mapping[str, str], text: str, file: str) -> StoreSettings:
    """A store URL must be PostgreSQL's; a password may come with a URL from the environment,
    never with one written in the file."""
    from_env = "NEWSLETTER_STORE_URL" in env
    where = ("NEWSLETTER_STORE_URL", None) if from_env else (file, key_line(text, "store", "url"))
    if store.url and not store.url.startswith(STORE_SCHEMES):
        raise ConfigError(
            "[store] url must be a postgresql://user@host/database URL (leave it out for the workspace's SQLite file)",
            file=where[0],
            line=where[1],
        )
    userinfo = store.url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    query = urllib.parse.unquote(store.url.partition("?")[2]).lower()  # libpq decodes %70assword too
    in_query = any(p.strip().startswith("password=") for p in query.split("&"))
    if (":" in userinfo or in_query) and not from_env:
        raise ConfigError(
            "[store] url must not hold a password in the file: set NEWSLETTER_STORE_PASSWORD (or PGPASSWORD)",
            file=where[0],
            line=where[1],
        )
    if store.lease < 1:
        lease_env = "NEWSLETTER_STORE_LEASE" in env
        raise ConfigError(
            "[store] lease must be at least 1 second (how long a silent worker keeps its claimed rows)",
            file="NEWSLETTER_STORE_LEASE" if lease_env else file,
            line=None if lease_env else key_line(text, "store", "lease"),
        )
    return StoreSettings(url=store.url, password=env.get("NEWSLETTER_STORE_PASSWORD", ""), lease=store.lease)


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = []
    for char in value:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04X}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


NEW_SETTINGS = """# Settings for {name_comment}. Secrets never go here: the SMTP password comes from
# NEWSLETTER_SMTP_PASSWORD, the link-signing key from NEWSLETTER_SECRET (or a key generated in
# .newsletter/ on first use).

[newsletter]
name = {name}
from = {from_}
# reply_to = "someone@your-domain"
language = "en"
# postal_address = "Your organisation, street, town"   # shown in the footer
# Where `newsletter serve` is reachable. Before sending through a real relay this must be a
# public https address: unsubscribe links point here.
base_url = {base_url}
subscribers = "subscribers.csv"
test_recipients = [{from_}]

[smtp]
# No host: `newsletter send` delivers through a built-in SMTP server on loopback into outbox/.
# host = "smtp.your-provider.example"
# port = 587
# security = "starttls"
# username = "you@your-domain"
concurrency = 4
rate = 0
"""


def new_settings_text(name: str, from_: str, base_url: str) -> str:
    """newsletter.toml for a new workspace; ConfigError names a value that cannot be used."""
    if not name.strip() or not name.isprintable():
        raise ConfigError(f"the newsletter's name must be one line of text, not {name!r}")
    if not re.fullmatch(r"[^@\s\"<>]+@[^@\s\"<>]+\.[^@\s\"<>]+", from_):
        raise ConfigError(f"the From address must be an email address like news@your-domain.org, not {from_!r}")
    if not re.fullmatch(r"https?://[^\s/\"<>]+(/[^\s\"<>]*)?", base_url):
        raise ConfigError(
            f"the base URL must be an absolute http(s) URL like https://news.example.org, not {base_url!r}"
        )
    return NEW_SETTINGS.format(
        name_comment=name.strip(),
        name=_toml_string(name.strip()),
        from_=_toml_string(from_),
        base_url=_toml_string(base_url.rstrip("/")),
    )
