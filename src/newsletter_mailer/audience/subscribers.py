"""Read a subscriber CSV as a stream: validate each address, collapse duplicates, report every
skipped row as ``file:line: reason``.

Spreadsheet exports vary: UTF-8 with or without BOM, comma or semicolon, quoted fields, stray
whitespace, blank lines and header spellings like "E-mail" or "Email address" are all accepted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
from array import array
from collections.abc import Container, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from email_validator import EmailNotValidError

from ..errors import SubscriberListError, UserInputError
from .addresses import Normaliser, reference_address

EMAIL_HEADERS = {"email", "e-mail", "email address", "e-mail address", "emailaddress", "mail"}
NAME_HEADERS = {"name", "full name", "fullname", "display name"}
# A spreadsheet's usual export has no name column but a first and a last one.
FIRST_HEADERS = {"first name", "firstname", "first_name", "first", "given name", "givenname", "forename"}
DERIVED_COLUMNS = frozenset({"first_name"})  # every reader has these, from a column or from the name
LAST_HEADERS = {"last name", "lastname", "last_name", "last", "surname", "family name", "familyname"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
MAX_REPORTED = 1000


@dataclass(frozen=True)
class Subscriber:
    email: str  # as sent over SMTP: the domain in ASCII (IDNA) where it was internationalised
    name: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    line: int = 0

    def merge_values(self) -> dict[str, str]:
        """What ``{{ subscriber.X }}`` sees; ``first_name`` from the name where no column gives it."""
        values = dict(self.fields)
        values["email"] = self.email
        values["name"] = self.name
        if "first_name" not in values:
            values["first_name"] = first_name(self.name)
        return values


@dataclass
class ListReport:
    """What reading a list found; filled in as the stream is consumed."""

    path: Path
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    columns: tuple[str, ...] = ()  # what ``{{ subscriber.X }}`` can name, once the header is read
    names_from: str = ""  # which columns make the display name and first_name, in words
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (line, message): rows kept but odd
    more_warnings: int = 0

    def add_problem(self, line: int, message: str) -> None:
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(f"{self.path}:{line}: {message}")

    def add_warning(self, line: int, message: str) -> None:
        if len(self.warnings) < MAX_REPORTED:
            self.warnings.append((line, message))
        else:
            self.more_warnings += 1

    @property
    def more_problems(self) -> int:
        return self.invalid + self.duplicates - len(self.problems)


def clean_value(value: str | None) -> str:
    """Strip whitespace and neutralise control characters (CR/LF would break headers)."""
    if value and value.isprintable():  # none of _CONTROL's characters is printable: skip the regex
        return value.strip()
    return _CONTROL.sub(" ", value or "").strip()


def normalise_address(raw: str) -> str:
    """The address to send to; raises EmailNotValidError. Syntax only: no DNS lookups. (A whole
    list is read with a ``Normaliser``, which gives the same answers faster.)"""
    return reference_address(raw)


def address_key(address: str) -> str:
    """Who an address is: addresses that differ only in the case of ASCII letters are one
    subscriber. The same folding as SQLite's NOCASE, used by the journal and the suppression list."""
    if address.isascii():
        return address.lower()
    return "".join(c.lower() if c.isascii() else c for c in address)


def email_column(header: list[str]) -> int:
    """Index of the email column (header matched case-insensitively), or -1."""
    return next((i for i, h in enumerate(header) if h.strip().lower() in EMAIL_HEADERS), -1)


def column_key(header: str) -> str:
    """The merge name of a column: lower case, each run of other characters one ``_`` (Home town: home_town)."""
    return re.sub(r"[^\w]+", "_", header.strip().lower()).strip("_")


def sniff_delimiter(header_line: str) -> str:
    """Spreadsheets in many locales export with semicolons."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


class _Seen:
    """Which addresses a stream has already yielded, and on which line first: an open-addressing
    table of 96-bit keyed digests in flat arrays (16 bytes a slot, at most three quarters of the
    slots used, so a million rows take 32 MB; a Python set of them would take four times that).
    The key is random per reading, so nobody can make two addresses collide on purpose, and by
    chance two of a million collide in fewer than one list in 10^16. ``expected``: the rows the
    list probably has, so that the table is made once at its size rather than grown (growing
    holds the old table and the new one at once)."""

    def __init__(self, expected: int = 0) -> None:
        self._key = secrets.token_bytes(16)
        self._size = max(1 << 16, 1 << (expected * 4 // 3).bit_length())
        self._used = 0
        self._high, self._low, self._lines = self._tables(self._size)

    @staticmethod
    def _tables(size: int) -> tuple[array[int], array[int], array[int]]:
        return array("Q", bytes(8 * size)), array("I", bytes(4 * size)), array("I", bytes(4 * size))

    def first_line(self, address: str, line: int) -> int | None:
        digest = hashlib.blake2b(address_key(address).encode("utf-8"), digest_size=12, key=self._key).digest()
        whole = int.from_bytes(digest, "big")
        high, low = whole >> 32 | 1, whole & 0xFFFFFFFF  # 0 marks a free slot
        found = self._probe(high, low)
        if self._high[found]:
            return int(self._lines[found])
        self._high[found], self._low[found], self._lines[found] = high, low, line
        self._used += 1
        if self._used * 4 > self._size * 3:
            self._grow()
        return None

    def _probe(self, high: int, low: int) -> int:
        mask = self._size - 1
        slot = low & mask
        while self._high[slot] and (self._high[slot] != high or self._low[slot] != low):
            slot = (slot + 1) & mask
        return slot

    def _grow(self) -> None:
        old = (self._high, self._low, self._lines)
        self._size *= 2
        self._high, self._low, self._lines = self._tables(self._size)
        for high, low, line in zip(*old, strict=True):
            if high:
                slot = self._probe(high, low)
                self._high[slot], self._low[slot], self._lines[slot] = high, low, line

    def close(self) -> None:
        self._high, self._low, self._lines = self._tables(1)


# The most rows a table of addresses is made for at once (32 MB): beyond, it grows as it fills, so
# that a file whose middle is blank lines cannot make a huge table out of nothing.
MAX_EXPECTED_ROWS = 1_500_000


def expected_rows(stream: BinaryIO, sample: int = 1 << 16) -> int:
    """About how many rows a list has (at most MAX_EXPECTED_ROWS): its size over the mean length
    of the lines in ``sample`` bytes from its middle (the first rows of a list are often shorter:
    numbered, or older). Leaves ``stream`` at its start."""
    try:
        size = stream.seek(0, 2)
        stream.seek(max(0, size // 2 - sample // 2))
        middle = stream.read(sample)
        stream.seek(0)
    except OSError:  # a pipe, say: the table grows as it fills
        return 0
    lines = middle.count(b"\n")
    return min(size * lines // len(middle), MAX_EXPECTED_ROWS) if lines else 0


_LOOKS_LIKE_ADDRESS = re.compile(r"[^\s@,;\"]+@[^\s@,;\"]+\.[^\s@,;\"]+")


def _unclosed_quote(row: list[str], start: int, delimiter: str) -> int | None:
    """The line of a quote that swallowed later rows, or None for an honest multi-line field
    (an address over two lines). A swallowed row shows as a line holding the delimiter and an
    address inside one field."""
    line = start
    for cell in row:
        continuation = cell.splitlines()[1:]
        if any(delimiter in text and _LOOKS_LIKE_ADDRESS.search(text) for text in continuation):
            return line
        line += cell.count("\n") or cell.count("\r")
    return None


def _bad_byte(path: Path) -> tuple[int, str]:
    """The line of the first byte that is not UTF-8, read line by line (the text reader decodes
    ahead in blocks, so its position says nothing about the line)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                return number, f"{exc.reason} at byte {exc.start + 1} of the line"
    return 1, "not UTF-8"


def not_utf8_error(path: Path) -> SubscriberListError:
    """The error for a CSV that is not UTF-8, at the line of its first bad byte."""
    with path.open("rb") as handle:
        if handle.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            return SubscriberListError(
                "the list is UTF-16 text: save it as CSV UTF-8 (comma or semicolon separated)", file=path, line=1
            )
    line, reason = _bad_byte(path)
    return SubscriberListError(f"not UTF-8 text ({reason}): save the list as CSV UTF-8", file=path, line=line)


@dataclass(frozen=True)
class _Header:
    columns: tuple[str, ...]  # the column keys merge fields use, in the file's order
    email: int
    name: int
    keys: tuple[tuple[int, str], ...]  # (index, key) of the columns besides email and name
    width: int = 0  # cells in the header row
    first: int = -1  # with no name column: the first-name and last-name columns the name is made of
    last: int = -1
    derive_first: bool = False  # no first_name column: merge_values derives it from the name
    names_from: str = ""


# A name is a line of the To: header and of every greeting: 256 characters is generous (Ms ...
# with three given names and a double-barrelled surname is under 80); any other value 1,000.
MAX_NAME = 256
MAX_VALUE = 1000


def _read_header(row: list[str], path: Path, line: int) -> _Header:
    header = [h.strip() for h in row]
    email_col = email_column(header)
    if email_col < 0:
        raise SubscriberListError(
            f"no email column in the header ({', '.join(header) or 'empty'}); "
            "name one 'email', 'e-mail', 'email address' or 'mail'",
            file=path,
            line=line,
        )
    name_col = next((i for i, h in enumerate(header) if h.lower() in NAME_HEADERS), -1)
    keys = tuple((i, column_key(h)) for i, h in enumerate(header) if i not in (email_col, name_col) and column_key(h))
    columns = ("email", "name", *(k for _, k in keys))
    _refuse_twins(header, email_col, name_col, columns, path, line)
    first, last = (-1, -1) if name_col >= 0 else (_role(header, FIRST_HEADERS), _role(header, LAST_HEADERS))
    derive = "first_name" not in columns and (name_col >= 0 or first >= 0)
    names = _names_from(header, name_col, first, last, derive)
    return _Header(columns, email_col, name_col, keys, len(header), first, last, derive, names)


def _role(header: list[str], spellings: set[str]) -> int:
    return next((i for i, h in enumerate(header) if h.lower() in spellings), -1)


def _names_from(header: list[str], name: int, first: int, last: int, derive: bool) -> str:
    """Which columns make the display name and first_name, for ``subscribers check``."""
    if name >= 0:
        said = f"display name from {header[name]!r}"
        return said + (f"; first_name from the first word of {header[name]!r}" if derive else "")
    parts = [repr(header[i]) for i in (first, last) if i >= 0]
    if not parts:
        return "no name column: the To: header is the bare address"
    said = f"display name from {' + '.join(parts)}"
    return said + (f"; first_name from {header[first]!r}" if derive else "")


def _refuse_twins(
    header: list[str], email_col: int, name_col: int, columns: tuple[str, ...], path: Path, line: int
) -> None:
    """Two columns that would be one merge field (``email,email``, ``Home town,home_town``,
    ``name,Name``): one of them would be dropped without a word, so the list is refused."""
    roles = [email_column([h]) == 0 for h in header], [h.lower() in NAME_HEADERS for h in header]
    for role, kept in ((roles[0], email_col), (roles[1], name_col)):
        twins = [header[i] for i, is_it in enumerate(role) if is_it and i != kept]
        if twins:
            raise SubscriberListError(
                f"the header has two {header[kept]!r} columns ({header[kept]!r} and {twins[0]!r}); "
                "rename or remove one, or one of them would be ignored",
                file=path,
                line=line,
            )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise SubscriberListError(
            f"the header has two columns that both become the merge field subscriber.{repeated[0]}; rename one of them",
            file=path,
            line=line,
        )


def read_subscribers(path: Path, report: ListReport | None = None) -> Generator[Subscriber, None, None]:
    """Yield each valid, first-seen subscriber. Skipped rows are recorded in ``report``; a list
    that cannot be read as rows at all (no email column, a quote that swallows rows, bytes that
    are not UTF-8) raises SubscriberListError naming the line."""
    report = report if report is not None else ListReport(path)
    try:
        binary = path.open("rb")  # opened once: the estimate of its rows and the rows themselves
    except FileNotFoundError:
        raise SubscriberListError("subscriber list not found", file=path) from None
    except IsADirectoryError:
        raise SubscriberListError("is a directory, not a CSV file", file=path) from None
    with io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as handle:
        seen = _Seen(expected_rows(binary))  # before the text layer reads: it leaves the file at its start
        try:
            first = handle.readline()
            while first and not first.strip():
                first = handle.readline()
            handle.seek(0)
            delimiter = sniff_delimiter(first)
            reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
            yield from _rows(reader, path, delimiter, report, _Reading(seen, Normaliser()))
        except csv.Error as exc:
            raise SubscriberListError(f"cannot read CSV: {exc}", file=path, line=reader.line_num) from None
        except UnicodeDecodeError:
            raise not_utf8_error(path) from None
        finally:
            seen.close()


@dataclass(frozen=True)
class _Reading:
    """What one reading of a list keeps between rows: the addresses seen, the domains checked."""

    seen: _Seen
    normalise: Normaliser


def _rows(
    reader: Iterator[list[str]], path: Path, delimiter: str, report: ListReport, reading: _Reading
) -> Iterator[Subscriber]:
    header: _Header | None = None
    line = 0
    for row in reader:
        start, line = line + 1, reader.line_num  # type: ignore[attr-defined]
        if line > start:  # the record ran over several lines: a quoted field held line breaks
            opened = _unclosed_quote(row, start, delimiter)
            if opened is not None:
                raise SubscriberListError(
                    "unclosed quote: the field opened here runs on over the following rows; "
                    'close the quote (or double a quote inside a field: "")',
                    file=path,
                    line=opened,
                )
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = _read_header(row, path, line)
            report.columns, report.names_from = header.columns, header.names_from
            continue
        subscriber = _subscriber(row, header, line, report, reading)
        if subscriber is not None:
            yield subscriber
    if header is None:
        raise SubscriberListError("the list is empty: it needs a header row with an email column", file=path, line=1)


def _subscriber(row: list[str], header: _Header, line: int, report: ListReport, reading: _Reading) -> Subscriber | None:
    raw = clean_value(row[header.email]) if header.email < len(row) else ""
    if not raw:
        report.invalid += 1
        report.add_problem(line, "no email address")
        return None
    try:
        address = reading.normalise(raw)
    except EmailNotValidError as exc:
        report.invalid += 1
        report.add_problem(line, f"{raw!r} is not a valid address: {exc}")
        return None
    earlier = reading.seen.first_line(address, line)
    if earlier is not None:
        report.duplicates += 1
        report.add_problem(line, f"{address} is a duplicate of line {earlier}; skipped")
        return None
    extra = tuple((key, clean_value(row[i]) if i < len(row) else "") for i, key in header.keys)
    name = _name(row, header)
    if header.derive_first and header.first >= 0:  # "given name", "first": first_name is that cell
        extra += (("first_name", clean_value(row[header.first]) if header.first < len(row) else ""),)
    report.valid += 1
    _warn_odd_cells(row, header, (("name", name), *extra), line, report)
    return Subscriber(email=address, name=name, fields=extra, line=line)


def _name(row: list[str], header: _Header) -> str:
    """The display name: the name column, or the first-name and last-name cells joined."""

    def cell(index: int) -> str:
        return clean_value(row[index]) if 0 <= index < len(row) else ""

    if header.name >= 0:
        return cell(header.name)
    return " ".join(part for part in (cell(header.first), cell(header.last)) if part)


def first_name(name: str) -> str:
    """A full name's given name: its first word, or the word after the comma of "Lovelace, Ada"."""
    given = name.split(",", 1)[1] if "," in name else name
    words = given.replace(";", " ").split()
    return words[0] if words else ""


def _warn_odd_cells(
    row: list[str], header: _Header, values: tuple[tuple[str, str], ...], line: int, report: ListReport
) -> None:
    """Rows that are kept but most likely wrong: more cells than the header (a comma inside an
    unquoted value shifts the cells after it; empty trailing cells, as spreadsheets write them,
    are fine), and a value longer than any name or field is (a wrong column, a pasted text)."""
    beyond = [clean_value(cell) for cell in row[header.width :]] if len(row) > header.width else []
    if any(beyond):
        shown = ", ".join(repr(cell[:40]) for cell in beyond[:3]) + (", ..." if len(beyond) > 3 else "")
        report.add_warning(
            line,
            f"{len(row)} cells but the header has {header.width}: the extra cells ({shown}) are ignored; "
            'a comma inside a value needs quotes ("Lovelace, Ada")',
        )
    for key, value in values:
        limit = MAX_NAME if key == "name" else MAX_VALUE
        if len(value) > limit:
            report.add_warning(
                line,
                f"{key} is {len(value)} characters (more than {limit}): it goes out as it is"
                f"{' in the To: header and' if key == 'name' else ''} in every merge field; is this the right cell?",
            )


def list_columns(path: Path) -> tuple[str, ...]:
    """The merge names of a list's columns, read from its header; none for a list that is missing
    or unreadable (what is wrong with it is reported where the rows are read)."""
    report = ListReport(path)
    rows = read_subscribers(path, report)
    try:
        next(rows, None)
    except (SubscriberListError, OSError):
        return ()
    finally:
        rows.close()
    return report.columns


def find_subscriber(path: Path, address: str) -> Subscriber:
    """The row of ``address`` (case ignored, as everywhere), for showing the message it would get."""
    try:
        wanted = address_key(normalise_address(address))
    except EmailNotValidError as exc:  # a mistake on the command line, not in the list
        raise UserInputError(f"--as {address!r} is not a valid address: {exc}") from None
    for subscriber in read_subscribers(path):
        if address_key(subscriber.email) == wanted:
            return subscriber
    raise SubscriberListError(f"{address} is not in the list (or only on a skipped row)", file=path)


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
