"""Read a subscriber CSV as a stream: validate each address, collapse duplicates, report every
skipped row as ``file:line: reason``.

Spreadsheet exports vary: UTF-8 with or without BOM, comma or semicolon, quoted fields, stray
whitespace, blank lines and header spellings like "E-mail" or "Email address" are all accepted.
"""

from __future__ import annotations

import csv
import hashlib
import re
import sqlite3
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from ..errors import SubscriberListError

EMAIL_HEADERS = {"email", "e-mail", "email address", "e-mail address", "emailaddress", "mail"}
NAME_HEADERS = {"name", "full name", "fullname", "display name"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
MAX_REPORTED = 1000


@dataclass(frozen=True)
class Subscriber:
    email: str  # as sent over SMTP: the domain in ASCII (IDNA) where it was internationalised
    name: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    line: int = 0

    def merge_values(self) -> dict[str, str]:
        """What ``{{ subscriber.X }}`` sees."""
        values = dict(self.fields)
        values["email"] = self.email
        values["name"] = self.name
        return values


@dataclass
class ListReport:
    """What reading a list found; filled in as the stream is consumed."""

    path: Path
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    def add_problem(self, line: int, message: str) -> None:
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(f"{self.path}:{line}: {message}")

    @property
    def more_problems(self) -> int:
        return self.invalid + self.duplicates - len(self.problems)


def clean_value(value: str | None) -> str:
    """Strip whitespace and neutralise control characters (CR/LF would break headers)."""
    return _CONTROL.sub(" ", value or "").strip()


def normalise_address(raw: str) -> str:
    """The address to send to; raises EmailNotValidError. Syntax only: no DNS lookups."""
    result = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    return result.ascii_email or result.normalized


def dedupe_key(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def email_column(header: list[str]) -> int:
    """Index of the email column (header matched case-insensitively), or -1."""
    return next((i for i, h in enumerate(header) if h.strip().lower() in EMAIL_HEADERS), -1)


def _column_key(header: str) -> str:
    return re.sub(r"[^\w]+", "_", header.strip().lower()).strip("_")


def sniff_delimiter(header_line: str) -> str:
    """Spreadsheets in many locales export with semicolons."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


class _Seen:
    """Which addresses a stream has already yielded, on disk so a million rows stay small."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY, line INTEGER) WITHOUT ROWID")

    def first_line(self, address: str, line: int) -> int | None:
        key = hashlib.blake2b(dedupe_key(address).encode("utf-8"), digest_size=16).digest()
        try:
            self._db.execute("INSERT INTO seen VALUES (?, ?)", (key, line))
        except sqlite3.IntegrityError:
            row = self._db.execute("SELECT line FROM seen WHERE key = ?", (key,)).fetchone()
            return int(row[0])
        return None

    def close(self) -> None:
        self._db.close()


def read_subscribers(path: Path, report: ListReport | None = None) -> Iterator[Subscriber]:
    """Yield each valid, first-seen subscriber. Skipped rows are recorded in ``report``."""
    report = report if report is not None else ListReport(path)
    try:
        handle = path.open("r", encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise SubscriberListError("subscriber list not found", file=path) from None
    except IsADirectoryError:
        raise SubscriberListError("is a directory, not a CSV file", file=path) from None
    seen = _Seen()
    with handle:
        try:
            first = handle.readline()
            while first and not first.strip():
                first = handle.readline()
        except UnicodeDecodeError as exc:
            raise SubscriberListError(f"not UTF-8 text ({exc.reason})", file=path, line=1) from None
        if not first:
            raise SubscriberListError(
                "the list is empty: it needs a header row with an email column", file=path, line=1
            )
        handle.seek(0)
        reader = csv.reader(handle, delimiter=sniff_delimiter(first), skipinitialspace=True)
        header: list[str] | None = None
        email_col = name_col = -1
        try:
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if header is None:
                    header = [h.strip() for h in row]
                    lowered = [h.lower() for h in header]
                    email_col = email_column(header)
                    if email_col < 0:
                        raise SubscriberListError(
                            f"no email column in the header ({', '.join(header) or 'empty'}); "
                            "name one 'email', 'e-mail' or 'email address'",
                            file=path,
                            line=line,
                        )
                    name_col = next((i for i, h in enumerate(lowered) if h in NAME_HEADERS), -1)
                    continue
                raw = clean_value(row[email_col]) if email_col < len(row) else ""
                if not raw:
                    report.invalid += 1
                    report.add_problem(line, "no email address")
                    continue
                try:
                    address = normalise_address(raw)
                except EmailNotValidError as exc:
                    report.invalid += 1
                    report.add_problem(line, f"{raw!r} is not a valid address: {exc}")
                    continue
                earlier = seen.first_line(address, line)
                if earlier is not None:
                    report.duplicates += 1
                    report.add_problem(line, f"{address} is a duplicate of line {earlier}; skipped")
                    continue
                extra = tuple(
                    (_column_key(header[i]), clean_value(value))
                    for i, value in enumerate(row)
                    if i not in (email_col, name_col) and i < len(header) and _column_key(header[i])
                )
                name = clean_value(row[name_col]) if 0 <= name_col < len(row) else ""
                report.valid += 1
                yield Subscriber(email=address, name=name, fields=extra, line=line)
        except csv.Error as exc:
            raise SubscriberListError(f"cannot read CSV: {exc}", file=path, line=reader.line_num) from None
        except UnicodeDecodeError as exc:
            raise SubscriberListError(f"not UTF-8 text ({exc.reason})", file=path, line=reader.line_num + 1) from None
        finally:
            seen.close()
        if header is None:
            raise SubscriberListError(
                "the list is empty: it needs a header row with an email column", file=path, line=1
            )


@dataclass(frozen=True)
class ListCheck:
    """What ``subscribers check`` reports: the list's problems and how many are suppressed."""

    report: ListReport
    suppressed: int

    @property
    def would_mail(self) -> int:
        return self.report.valid - self.suppressed


def check_list(path: Path, suppressed: Container[str]) -> ListCheck:
    """Read the whole list; count the valid addresses that are on the suppression list."""
    report = ListReport(path)
    count = sum(1 for subscriber in read_subscribers(path, report) if subscriber.email in suppressed)
    return ListCheck(report, count)
