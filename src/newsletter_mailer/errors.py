"""The package's exceptions: one base, and a subclass for each way a run can stop.

    NewsletterError
    ├── UserInputError            a file the user wrote is wrong; carries file and line
    │   ├── ConfigError           newsletter.toml or a NEWSLETTER_* variable
    │   ├── IssueError            the issue file (front matter or body)
    │   │   └── MergeFieldError       a merge field cannot be filled (for one recipient, or any)
    │   └── SubscriberListError   the subscriber CSV as a whole (no email column, unreadable)
    ├── CheckFailed               `check` found errors and a send was refused
    ├── SendError                 a dispatch cannot go on
    │   ├── SMTPStartError        the relay refused the connection or the login at start (ConnectionError)
    │   ├── SendPaused            too many consecutive failures: the run paused itself
    │   └── AlreadySending        another `send` of the same issue holds the lock
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


class MergeFieldError(IssueError):
    """Raised when a merge expression fails as it is filled in: ``{{ 1/0 }}``, a sandboxed
    attribute, ``{{ subscriber.name.split()[0] }}`` for a row without a name. Names the issue line."""


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


class TokenError(NewsletterError, ValueError):
    """Raised when an unsubscribe token fails verification (altered, truncated, other key or list)."""
