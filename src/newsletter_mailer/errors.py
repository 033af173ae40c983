"""The package's exceptions: one base, and a subclass for each way a run can stop.

    NewsletterError
    ├── UserInputError            a file the user wrote is wrong; carries file and line
    │   ├── ConfigError           newsletter.toml or a NEWSLETTER_* variable
    │   ├── IssueError            the issue file (front matter or body)
    │   │   ├── IssueNotFound     the issue file named on the command line is not there
    │   │   ├── IssueProblems     several errors in the front matter, reported together
    │   │   └── MergeFieldError   a merge field cannot be filled (for one recipient, or any)
    │   ├── ConditionError        an ``only:`` or ``--where`` condition cannot be read
    │   └── SubscriberListError   the subscriber CSV as a whole (no email column, unreadable)
    ├── CheckFailed               `check` found errors and a send was refused
    ├── SendError                 a dispatch cannot go on
    │   ├── SMTPStartError        the relay refused the connection or the login at start (ConnectionError)
    │   ├── SendPaused            too many consecutive failures: the run paused itself
    │   ├── AlreadySending        another `send` of the same issue holds the lock
    │   ├── SendInterrupted       Ctrl+C stopped a dispatch; says what was sent and what is in flight
    │   ├── SendDeclined          "n" or Ctrl+C at the confirmation: nothing sent, nothing left pending
    │   └── StateLost             the database was deleted or replaced, or is missing after sends
    ├── MailboxError              the bounce mailbox cannot be reached or refused the login (ConnectionError)
    ├── WebhookError              a provider webhook's request is unsigned, badly signed or unreadable (ValueError)
    ├── DnsUnavailable            the DNS resolver does not answer (`check --dns`; a note in send's pre-flight)
    ├── StoreError                the store (SQLite file or PostgreSQL server) cannot be used
    │   ├── StoreUnavailable      the server cannot be reached, or stopped answering (ConnectionError)
    │   ├── StoreLocked           another process holds the database longer than the wait allows
    │   ├── StoreFull             the disk (or the server's disk) is full
    │   ├── StoreReadOnly         the store cannot be written (read-only folder, file or server)
    │   ├── StoreCorrupt          the database file is damaged or is not a database
    │   ├── SchemaMismatch        the store's schema is older or newer than this code
    │   └── NotRecorded           a reader's request (an unsubscribe) could not be recorded; carries its replay
    └── TokenError                an unsubscribe token is altered, truncated or foreign (ValueError)

The CLI turns every NewsletterError into a message and an exit code; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class NewsletterError(Exception):
    """Base of every error this package raises on purpose."""


class UserInputError(NewsletterError):
    """A file or value the user supplied is wrong. Printed as ``file:line: message``."""

    def __init__(self, message: str, *, file: Path | str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line

    def __str__(self) -> str:
        where = self.file or ""
        if where and self.line:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


class ConfigError(UserInputError):
    """Raised when newsletter.toml or a NEWSLETTER_* variable holds an unknown key or bad value."""


class IssueError(UserInputError):
    """Raised when an issue file cannot be read: bad YAML, unknown key, missing subject."""


class IssueNotFound(IssueError):
    """Raised when the issue file given to a command is missing, a directory, or unreadable.

    Every command that takes an issue raises it before doing anything else (``check`` too: a
    missing file is a mistake on the command line, not a finding in the issue).
    """


class IssueProblems(IssueError):
    """Raised when the front matter has more than one error: all of them, one per line, so an
    editor fixes them in one pass instead of one per run."""

    def __init__(self, errors: list[IssueError]):
        super().__init__(errors[0].message, file=errors[0].file, line=errors[0].line)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class MergeFieldError(IssueError):
    """Raised when a merge expression fails as it is filled in: ``{{ 1/0 }}``, a sandboxed
    attribute, ``{{ subscriber.name.split()[0] }}`` for a row without a name. Names the issue line."""


class ConditionError(UserInputError):
    """Raised when a condition (``{only: ...}`` in an issue, ``send --where``) is not in the
    condition language; the issue's reader re-raises it as an IssueError at the line."""


class SubscriberListError(UserInputError):
    """Raised when a subscriber CSV cannot be used at all (missing, empty, no email column).

    Single bad rows are not errors: they are reported and skipped.
    """


class CheckFailed(NewsletterError):
    """Raised by ``send`` when the pre-send check found errors and ``--force`` was not given."""


class SendError(NewsletterError):
    """Base for conditions that stop a dispatch; nothing unsent is marked sent."""


class SMTPStartError(SendError, ConnectionError):
    """Raised when the relay refuses the connection, TLS or the login before anything is sent."""

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        self.code = code


class SendPaused(SendError):
    """Raised when too many consecutive deliveries failed; running ``send`` again resumes."""


class AlreadySending(SendError):
    """Raised when another ``send`` of the same issue is running in this workspace."""


class SendInterrupted(SendError):
    """Raised when Ctrl+C stops a dispatch: ``sent`` this run, ``in_flight`` (may have arrived,
    resent next run), ``pending`` (not sent yet). Running ``send`` again resumes."""

    def __init__(self, message: str, *, sent: int, in_flight: int, pending: int):
        super().__init__(message)
        self.sent = sent
        self.in_flight = in_flight
        self.pending = pending


class SendDeclined(SendError):
    """Raised when the editor answers no (or presses Ctrl+C, ``interrupted``) at a send's
    confirmation: nothing was sent, and the rows the pre-flight loaded for it are gone again."""

    def __init__(self, message: str = "nothing sent", *, interrupted: bool = False) -> None:
        super().__init__(message)
        self.interrupted = interrupted


class MailboxError(NewsletterError, ConnectionError):
    """Raised when the IMAP mailbox in [bounces] cannot be reached, refuses TLS or the login, or
    lacks the folder; nothing is marked or moved then."""


class WebhookError(NewsletterError, ValueError):
    """Raised when a request to /webhooks/<provider> fails its signature or secret check, or its
    payload cannot be read; ``serve`` answers 401 (or 400) and records nothing."""

    def __init__(self, message: str, *, status: int = 401):
        super().__init__(message)
        self.status = status


class DnsUnavailable(NewsletterError, ConnectionError):
    """Raised when the resolver `check --dns` uses does not answer (timeout, SERVFAIL, refused) or
    none is configured; ``send``'s pre-flight turns it into one note and sends."""


class StoreError(NewsletterError):
    """Raised when the store cannot be opened or used: PostgreSQL unreachable, login refused,
    psycopg missing. The message names the store by its URL without a password."""


class StoreUnavailable(StoreError, ConnectionError):
    """Raised when the store's server cannot be reached, drops the connection or does not answer
    within the store's timeout; what was committed before is kept."""


class StoreLocked(StoreError):
    """Raised when another process holds the database locked for longer than the store waits."""


class StoreFull(StoreError):
    """Raised when the disk under the store (or the server's) is full; the failed write left nothing
    half-done."""


class StoreReadOnly(StoreError):
    """Raised when the store cannot be written: a read-only folder or file, or a server in read-only
    mode."""


class StoreCorrupt(StoreError):
    """Raised when the database file is damaged or is not a database at all."""


class SchemaMismatch(StoreError):
    """Raised at start when the store's schema version is not the code's: older (run
    ``newsletter store migrate``) or newer (a newer newsletter-mailer wrote it)."""


class NotRecorded(StoreError):
    """Raised when the store fails under a reader's request that must not be lost (an unsubscribe):
    ``replay`` is the command that records it once the store answers."""

    def __init__(self, message: str, *, replay: str) -> None:
        super().__init__(message)
        self.replay = replay


class TokenError(NewsletterError, ValueError):
    """Raised when an unsubscribe token fails verification (altered, truncated, other key or list)."""


class StateLost(SendError):
    """Raised when the database a send opened is deleted or replaced while it runs, or when it is
    missing in a workspace that has sent before (unless a new one is asked for)."""
