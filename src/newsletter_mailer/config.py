"""Workspace settings: newsletter.toml, overridden by NEWSLETTER_* environment variables.

Secrets never come from the file: the SMTP password is read from NEWSLETTER_SMTP_PASSWORD only.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from email import errors as email_errors
from email import policy as email_policy
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from .errors import ConfigError

CONFIG_NAME = "newsletter.toml"
SECURITY_CHOICES = ("starttls", "tls", "none")
AUTH_CHOICES = ("password", "xoauth2")
TRANSPORT_KINDS = ("smtp", "ses", "postmark", "mailgun")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LIST_ID = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})+")
_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_FEEDBACK_FIELD = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SELECTOR = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")


def parse_resolver(value: str) -> tuple[str, int]:
    """``"127.0.0.1:5353"``, ``"[::1]:53"`` or ``"9.9.9.9"`` -> (address, port); ValueError otherwise.
    A resolver is named by IP address: looking up its name would need a resolver."""
    host, port = value.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    ipaddress.ip_address(host)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port {port!r}")
    return host, int(port)


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
    languages: tuple[str, ...] = ()  # what the signup form offers besides ``language`` (docs/languages-signup.md)
    postal_address: str = ""
    base_url: str = "http://127.0.0.1:8000"
    subscribers: str = "subscribers.csv"
    test_recipients: tuple[str, ...] = ()
    list_id: str = ""
    unsubscribe_mailto: str = ""
    timezone: str = ""  # an IANA zone (Europe/London) for the diary's times; empty: floating local times
    # Not keys of the file: the display names ``from`` and ``reply_to`` were given with, if any
    # (``from = "Kent Network <news@kent.example.org>"``); from_ and reply_to hold the bare address.
    from_name: str = field(default="", metadata={"derived": True})
    reply_to_name: str = field(default="", metadata={"derived": True})

    @property
    def from_display_name(self) -> str:
        """The From header's name: the one written in ``from``, else the newsletter's ``name``."""
        return self.from_name or self.name

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

    @property
    def offered_languages(self) -> tuple[str, ...]:
        """The languages a reader may choose on the signup form: ``language`` first, then each
        of ``languages`` not already there (compared case-insensitively)."""
        offered: dict[str, str] = {}
        for tag in (self.language, *self.languages):
            offered.setdefault(tag.lower().replace("_", "-"), tag)
        return tuple(offered.values())


@dataclass(frozen=True)
class BrandSettings:
    logo: str = ""
    logo_alt: str = ""
    accent: str = "#1a6fb5"
    text_accent: str = ""  # the shade for headings and links in light mode; derived from accent if empty


@dataclass(frozen=True)
class SMTPSettings:
    host: str = ""
    port: int = 0
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    auth: str = "password"  # or "xoauth2": a token from token_command (send/oauth.py)
    token_command: str = ""  # prints an OAuth2 access token (or JSON with access_token, expires_in)
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


MAX_SIGNUP_FIELDS = 10  # extra form fields; with email, name and the honeypot well under the form's cap
MAX_FIELD_LABEL = 60
# Names the form itself uses: a configured field with one of these keys would collide with it.
# "website" is the honeypot's; "language" is the form's own choice of [newsletter] languages.
RESERVED_FIELD_KEYS = ("email", "name", "website", "language")


def field_key(label: str) -> str:
    """``"Home town"`` -> ``home_town``, the column and merge-field name of an extra form field."""
    return re.sub(r"[^\w]+", "_", label.strip().lower()).strip("_")


@dataclass(frozen=True)
class PreferencesSettings:
    """The readers' preferences page (docs/preferences.md): the topics a reader may pick, and a
    pause. ``enabled`` when the settings have a ``[preferences]`` table (an empty one: pause only)."""

    topics: tuple[str, ...] = ()
    enabled: bool = field(default=False, metadata={"derived": True})

    @property
    def topics_text(self) -> str:
        """Every topic, as a reader who never chose has them (a ``topics`` cell: "Diary, Campaigns")."""
        return ", ".join(self.topics)


def derived_columns(settings: Settings) -> frozenset[str]:
    """Columns every reader has from the settings, whatever the list: ``topics`` with
    ``[preferences]`` (the reader's choice, else every topic)."""
    return frozenset({"topics"}) if settings.preferences.enabled else frozenset()


MAX_TOPICS = 20
MAX_TOPIC_CHARS = 40


@dataclass(frozen=True)
class ServeSettings:
    """How ``newsletter serve`` reads its visitors: which peers may say who the visitor is."""

    trusted_proxies: tuple[str, ...] = ()  # addresses or CIDR networks; X-Forwarded-For is read only from these

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)


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
class DeliverabilitySettings:
    """What mailbox providers read beside the message: Gmail's Feedback-ID sender and the DNS
    check's resolver (docs/dns.md)."""

    feedback_id_sender: str = ""  # the SenderId field of Feedback-ID; empty: no Feedback-ID header
    resolver: str = ""  # "host" or "host:port" for `check --dns`; empty: the system's resolvers
    dns_timeout: float = 3.0  # seconds per lookup; send's pre-flight gives up quietly after it


@dataclass(frozen=True)
class WebhookSettings:
    """Provider webhooks that ``serve`` answers at /webhooks/<provider> (docs/relays.md). Shared
    secrets come from the environment only: NEWSLETTER_WEBHOOKS_MAILGUN_SIGNING_KEY,
    NEWSLETTER_WEBHOOKS_POSTMARK_SECRET and NEWSLETTER_WEBHOOKS_BREVO_SECRET."""

    sns_topic_arns: tuple[str, ...] = ()  # the SNS topics SES notifications may come from
    sns_trusted_origin: str = ""  # another origin trusted for SNS certificates (a local stand-in)
    sendgrid_public_key: str = ""  # the Signed Event Webhook's verification key (base64 DER; public)
    max_age: float = 300.0  # seconds a signed timestamp (Mailgun, SendGrid) stays acceptable
    mailgun_signing_key: str = field(default="", repr=False)
    postmark_secret: str = field(default="", repr=False)  # "user:password" of the webhook URL's basic auth
    brevo_secret: str = field(default="", repr=False)  # a bearer token, or "user:password"


@dataclass(frozen=True)
class TransportSettings:
    """How messages leave: SMTP (``[smtp]``), or a provider's HTTP API (docs/relays.md). API
    credentials come from the environment only: NEWSLETTER_TRANSPORT_API_KEY (Postmark's server
    token, Mailgun's API key) and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN."""

    kind: str = "smtp"
    endpoint: str = ""  # the API's base URL; empty: the provider's own (SES: by region)
    region: str = "us-east-1"  # Amazon SES
    domain: str = ""  # Mailgun's sending domain
    message_stream: str = "broadcast"  # Postmark: newsletters go in a broadcast stream
    timeout: float = 30.0
    api_key: str = field(default="", repr=False)
    aws_access_key_id: str = field(default="", repr=False)
    aws_secret_access_key: str = field(default="", repr=False)
    aws_session_token: str = field(default="", repr=False)


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
    preferences: PreferencesSettings = PreferencesSettings()
    store: StoreSettings = StoreSettings()
    publish: PublishSettings = PublishSettings()
    serve: ServeSettings = ServeSettings()
    deliverability: DeliverabilitySettings = DeliverabilitySettings()
    webhooks: WebhookSettings = WebhookSettings()
    transport: TransportSettings = TransportSettings()

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
    "preferences": PreferencesSettings,
    "serve": ServeSettings,
    "store": StoreSettings,
    "publish": PublishSettings,
    "deliverability": DeliverabilitySettings,
    "webhooks": WebhookSettings,
    "transport": TransportSettings,
}
_SECRET_KEYS = {
    ("smtp", "password"),
    ("dkim", "key"),
    ("dkim", "ed25519_key"),
    ("bounces", "password"),
    ("store", "password"),
    ("webhooks", "mailgun_signing_key"),
    ("webhooks", "postmark_secret"),
    ("webhooks", "brevo_secret"),
    ("transport", "api_key"),
    ("transport", "aws_access_key_id"),
    ("transport", "aws_secret_access_key"),
    ("transport", "aws_session_token"),
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
    by_key = {_toml_name(f.name): f for f in fields(cls) if not f.metadata.get("derived")}
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
    if brand.text_accent and not _HEX_COLOUR.match(brand.text_accent):
        raise ConfigError(
            f"[brand] text_accent must be a hex colour like #1a6fb5 or #2e7, not {brand.text_accent!r}",
            file=file,
            line=key_line(text, "brand", "text_accent"),
        )
    _check_list_headers(sections["newsletter"], text, file)
    _check_languages(sections["newsletter"], text, file)
    _check_signup(sections["signup"], text, file)
    _check_topics(sections["preferences"], text, file)
    _check_serve(sections["serve"], text, file)
    dkim: DKIMSettings = sections["dkim"]
    if dkim.selector and not valid_selector(dkim.selector):
        raise ConfigError(
            f"[dkim] selector must be a DNS label (letters, digits, hyphens), not {dkim.selector!r}",
            file=file,
            line=key_line(text, "dkim", "selector"),
        )
    resolver: str = sections["deliverability"].resolver
    try:
        if resolver:
            parse_resolver(resolver)
    except ValueError:
        raise ConfigError(
            "[deliverability] resolver must be an IP address with an optional port, like 127.0.0.1:5353, "
            f"not {resolver!r}",
            file=file,
            line=key_line(text, "deliverability", "resolver"),
        ) from None
    sender: str = sections["deliverability"].feedback_id_sender
    if sender and not _FEEDBACK_FIELD.match(sender):
        raise ConfigError(
            "[deliverability] feedback_id_sender must be 1 to 64 letters, digits, dots, hyphens or "
            f"underscores (a field of Feedback-ID, which colons separate), not {sender!r}",
            file=file,
            line=key_line(text, "deliverability", "feedback_id_sender"),
        )


def _check_list_headers(news: NewsletterSettings, text: str, file: str) -> None:
    """list_id and unsubscribe_mailto go into List-Id and List-Unsubscribe between angle brackets:
    a label of atoms (RFC 2919) and one plain address, nothing that could close the bracket."""
    if news.list_id and not _LIST_ID.fullmatch(news.list_id):
        raise ConfigError(
            f"[newsletter] list_id must be a label such as news.example.org (RFC 2919), not {news.list_id!r}",
            file=file,
            line=key_line(text, "newsletter", "list_id"),
        )
    if not news.unsubscribe_mailto:
        return
    try:
        validate_email(news.unsubscribe_mailto, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ConfigError(
            f"[newsletter] unsubscribe_mailto must be one plain address such as unsubscribe@example.org, "
            f"not {news.unsubscribe_mailto!r} ({str(exc).rstrip('.')})",
            file=file,
            line=key_line(text, "newsletter", "unsubscribe_mailto"),
        ) from None


LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def _check_languages(news: NewsletterSettings, text: str, file: str) -> None:
    """Each offered language is a language tag: it goes into a form's values, ``lang`` attributes
    and URLs, so nothing else may pass."""
    for tag in news.languages:
        if not LANGUAGE_TAG.fullmatch(tag):
            raise ConfigError(
                f"[newsletter] languages: {tag[:40]!r} is not a language tag such as fr, de-AT or pt-BR",
                file=file,
                line=key_line(text, "newsletter", "languages"),
            )


def _check_signup(signup: SignupSettings, text: str, file: str) -> None:
    """The form's extra fields: few, short, each its own name, none the form already uses."""
    line = key_line(text, "signup", "fields")
    if len(signup.fields) > MAX_SIGNUP_FIELDS:
        raise ConfigError(
            f"[signup] fields holds {len(signup.fields)} fields; a signup form takes at most {MAX_SIGNUP_FIELDS}",
            file=file,
            line=line,
        )
    seen: dict[str, str] = {}
    for label in signup.fields:
        key = field_key(label)
        if not key or len(label) > MAX_FIELD_LABEL:
            problem = "has no letters or digits" if not key else f"is longer than {MAX_FIELD_LABEL} characters"
            raise ConfigError(f"[signup] fields: {label[:80]!r} {problem}", file=file, line=line)
        if key in RESERVED_FIELD_KEYS:
            raise ConfigError(
                f"[signup] fields: {label!r} is a name the form already uses ({', '.join(RESERVED_FIELD_KEYS)}; "
                '"website" is the hidden field that catches bots; a language choice is [newsletter] languages)',
                file=file,
                line=line,
            )
        if key in seen:
            raise ConfigError(
                f"[signup] fields: {label!r} and {seen[key]!r} are one field ({key})", file=file, line=line
            )
        seen[key] = label


def _check_topics(preferences: PreferencesSettings, text: str, file: str) -> None:
    """Topics are checkbox labels and the items of a ``topics`` cell: each one short line, none
    empty or repeated, none holding the "," or ";" that separate a cell's items."""
    line = key_line(text, "preferences", "topics")
    if len(preferences.topics) > MAX_TOPICS:
        raise ConfigError(
            f"[preferences] topics holds {len(preferences.topics)} topics; at most {MAX_TOPICS}", file=file, line=line
        )
    seen: set[str] = set()
    for topic in preferences.topics:
        problem = ""
        if not topic.strip():
            problem = "is empty"
        elif topic != topic.strip():
            problem = "starts or ends with a space"
        elif len(topic) > MAX_TOPIC_CHARS:
            problem = f"is longer than {MAX_TOPIC_CHARS} characters"
        elif "," in topic or ";" in topic:
            problem = 'holds "," or ";", which separate the topics of a reader'
        elif topic.casefold() in seen:
            problem = "is there twice"
        if problem:
            raise ConfigError(f"[preferences] topics: {topic[:80]!r} {problem}", file=file, line=line)
        seen.add(topic.casefold())


def _check_serve(serve: ServeSettings, text: str, file: str) -> None:
    for proxy in serve.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"[serve] trusted_proxies: {proxy!r} is not an IP address or network such as 10.0.0.0/8",
                file=file,
                line=key_line(text, "serve", "trusted_proxies"),
            ) from None


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
    _check_auth(smtp, text, file)
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
    news = _mailboxes(news, text, file)
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
        preferences=replace(sections["preferences"], enabled="preferences" in data),
        serve=sections["serve"],
        store=store,
        deliverability=sections["deliverability"],
        webhooks=_webhooks(sections["webhooks"], env),
        transport=_transport(sections["transport"], env, text, file),
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


def parse_mailbox(value: str) -> tuple[str, str]:
    """``address`` or ``Name <address>`` as (display name, address): exactly one RFC 5322 mailbox,
    read by Python's strict header parser, its address checked by email-validator (ASCII local
    part: a From or Reply-To that needs SMTPUTF8 would make every message need it). ValueError
    says what is wrong."""
    try:
        header = email_policy.default.header_factory("Reply-To", value)
        addresses, groups, defects = header.addresses, header.groups, header.defects
    except (email_errors.HeaderParseError, IndexError, ValueError) as exc:
        raise ValueError(f"it cannot be read as an address: {str(exc).rstrip('.')}") from None
    if len(groups) == 1 and groups[0].display_name is not None:
        raise ValueError("it is a group, not one address")
    if len(addresses) != 1:
        raise ValueError(f"it holds {len(addresses)} addresses, not one")
    if defects:
        raise ValueError(str(defects[0]).rstrip("."))
    mailbox = addresses[0]
    if _CONTROL.search(mailbox.display_name):
        raise ValueError("its name holds a line break or a control character")
    try:
        checked = validate_email(
            mailbox.addr_spec, check_deliverability=False, allow_smtputf8=False, globally_deliverable=False
        )
    except EmailNotValidError as exc:
        raise ValueError(str(exc).rstrip(".")) from None
    return mailbox.display_name.strip(), checked.ascii_email or checked.normalized


def _mailboxes(news: NewsletterSettings, text: str, file: str) -> NewsletterSettings:
    """``from`` and ``reply_to`` split into a display name and an address, each one mailbox."""
    parsed: dict[str, Any] = {}
    for key, attr in (("from", "from_"), ("reply_to", "reply_to")):
        value = getattr(news, attr)
        if not value and key == "reply_to":
            continue
        try:
            name, address = parse_mailbox(value)
        except ValueError as exc:
            raise ConfigError(
                f"[newsletter] {key} must be one address, such as news@example.org or "
                f'"Our News <news@example.org>", not {value!r} ({exc})',
                file=file,
                line=key_line(text, "newsletter", key),
            ) from None
        parsed[attr], parsed[f"{key}_name"] = address, name
    return replace(news, **parsed)


def _transport(transport: TransportSettings, env: Mapping[str, str], text: str, file: str) -> TransportSettings:
    """The transport's kind and endpoint checked; its credentials from the environment."""
    if transport.kind not in TRANSPORT_KINDS:
        raise ConfigError(
            f"[transport] kind must be one of {', '.join(TRANSPORT_KINDS)}, not {transport.kind!r}",
            file=file,
            line=key_line(text, "transport", "kind"),
        )
    endpoint = urllib.parse.urlsplit(transport.endpoint)
    loopback = endpoint.hostname in ("127.0.0.1", "localhost", "::1")
    if transport.endpoint and not (endpoint.scheme == "https" or (endpoint.scheme == "http" and loopback)):
        raise ConfigError(
            "[transport] endpoint must be an https:// URL (http:// only on loopback, for a local stand-in)",
            file=file,
            line=key_line(text, "transport", "endpoint"),
        )
    if transport.kind == "mailgun" and not transport.domain:
        raise ConfigError('[transport] kind = "mailgun" needs [transport] domain, the sending domain', file=file)
    return replace(
        transport,
        api_key=env.get("NEWSLETTER_TRANSPORT_API_KEY", ""),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", ""),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", ""),
        aws_session_token=env.get("AWS_SESSION_TOKEN", ""),
    )


def _webhooks(webhooks: WebhookSettings, env: Mapping[str, str]) -> WebhookSettings:
    """The webhook secrets, from the environment only (and the public SendGrid key from either)."""
    found: dict[str, Any] = {
        key: env[f"NEWSLETTER_WEBHOOKS_{key.upper()}"]
        for key in ("mailgun_signing_key", "postmark_secret", "brevo_secret", "sendgrid_public_key")
        if env.get(f"NEWSLETTER_WEBHOOKS_{key.upper()}")
    }
    return replace(webhooks, **found)


def _check_auth(smtp: SMTPSettings, text: str, file: str) -> None:
    """XOAUTH2 needs the mailbox to log in as and the command that prints its token."""
    if smtp.auth not in AUTH_CHOICES:
        raise ConfigError(
            f"[smtp] auth must be one of {', '.join(AUTH_CHOICES)}, not {smtp.auth!r}",
            file=file,
            line=key_line(text, "smtp", "auth"),
        )
    if smtp.auth == "xoauth2" and smtp.host:
        for key in ("username", "token_command"):
            if not getattr(smtp, key):
                raise ConfigError(
                    f'[smtp] auth = "xoauth2" needs [smtp] {key} too',
                    file=file,
                    line=key_line(text, "smtp", "auth"),
                )


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
# postal_address = "Street, town, postcode"   # shown in the footer, under the name
# Where `newsletter serve` is reachable. Before sending through a real relay this must be a
# public https address: unsubscribe links point here.
base_url = {base_url}
subscribers = "subscribers.csv"
test_recipients = [{test_recipient}]

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
    try:
        address = parse_mailbox(from_)[1]
    except ValueError:
        raise ConfigError(
            "the From address must be an email address like news@your-domain.org "
            f'(or "Our News <news@your-domain.org>"), not {from_!r}'
        ) from None
    if not re.fullmatch(r"https?://[^\s/\"<>]+(/[^\s\"<>]*)?", base_url):
        raise ConfigError(
            f"the base URL must be an absolute http(s) URL like https://news.example.org, not {base_url!r}"
        )
    return NEW_SETTINGS.format(
        name_comment=name.strip(),
        name=_toml_string(name.strip()),
        from_=_toml_string(from_),
        test_recipient=_toml_string(address),
        base_url=_toml_string(base_url.rstrip("/")),
    )
