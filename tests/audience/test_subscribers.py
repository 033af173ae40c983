"""subscribers.py: spreadsheet exports as they come, every skipped row reported by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter_mailer.audience.subscribers import MAX_EXPECTED_ROWS, ListReport, expected_rows, read_subscribers
from newsletter_mailer.errors import SubscriberListError


def read(tmp_path: Path, content: str | bytes) -> tuple[list[tuple[str, str, dict[str, str]]], ListReport]:
    path = tmp_path / "list.csv"
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    report = ListReport(path)
    rows = [(s.email, s.name, dict(s.fields)) for s in read_subscribers(path, report)]
    return rows, report


def test_bom_semicolons_quotes_whitespace_and_blank_lines(tmp_path: Path) -> None:
    content = '\ufeff"E-mail" ; Name ;Branch\n\n  ada@example.org ; "Lovelace; Ada" ; East \n\r\nbob@example.org;Bob;\n'
    rows, report = read(tmp_path, content)
    assert rows == [
        ("ada@example.org", "Lovelace; Ada", {"branch": "East"}),
        ("bob@example.org", "Bob", {"branch": ""}),
    ]
    assert report.valid == 2 and report.problems == []


@pytest.mark.parametrize("header", ["email", "Email", "E-mail", "Email address", "EMAIL ADDRESS"])
def test_email_header_variants(tmp_path: Path, header: str) -> None:
    rows, _ = read(tmp_path, f"{header},name\nada@example.org,Ada\n")
    assert rows[0][0] == "ada@example.org"


def test_invalid_and_duplicate_rows_are_reported_by_line(tmp_path: Path) -> None:
    rows, report = read(
        tmp_path, "email,name\nada@example.org,A\nnot an address,B\n,C\nada@EXAMPLE.org,A2\nbob@example.org,Bob\n"
    )
    assert [r[0] for r in rows] == ["ada@example.org", "bob@example.org"]
    assert report.invalid == 2 and report.duplicates == 1
    path = tmp_path / "list.csv"
    assert report.problems[0].startswith(f"{path}:3: 'not an address' is not a valid address")
    assert report.problems[1] == f"{path}:4: no email address"
    assert report.problems[2] == f"{path}:5: ada@example.org is a duplicate of line 2; skipped"


def test_duplicates_are_found_across_a_large_list_whose_size_was_misjudged(tmp_path: Path) -> None:
    """The table of addresses seen is sized from an estimate of the rows; where the estimate is
    short (long rows in the middle of the file), it grows, and every duplicate is still found
    with its first line, whatever case it was written in."""
    rows = [f"m{i}@example.org,Member {i},{'x' * (200 if 30_000 < i < 40_000 else 1)}" for i in range(70_000)]
    rows += ["M5@Example.org,again,", "m69999@example.org,again,", "m35001@EXAMPLE.ORG,again,"]
    path = tmp_path / "list.csv"
    path.write_text("email,name,note\n" + "\n".join(rows) + "\n")
    with path.open("rb") as handle:
        assert expected_rows(handle) < 20_000  # the middle sampled is the long rows
    report = ListReport(path)
    assert sum(1 for _ in read_subscribers(path, report)) == 70_000
    assert report.duplicates == 3
    assert [p.split(": ", 1)[1] for p in report.problems] == [
        "M5@example.org is a duplicate of line 7; skipped",
        "m69999@example.org is a duplicate of line 70001; skipped",
        "m35001@example.org is a duplicate of line 35003; skipped",
    ]


def test_expected_rows_estimates_a_list_from_its_middle(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,name\n" + "".join(f"member{i}@example.org,Member {i}\n" for i in range(200_000)))
    with path.open("rb") as handle:
        assert 190_000 < expected_rows(handle) < 210_000
        assert handle.tell() == 0
    (tmp_path / "one.csv").write_text("email")
    with (tmp_path / "one.csv").open("rb") as handle:
        assert expected_rows(handle) == 0
    blank = tmp_path / "blank.csv"  # its middle blank lines: not four million rows to make room for
    with blank.open("w") as handle:
        handle.write("email\nada@example.org\n")
        handle.write("\n" * 4_000_000)
    with blank.open("rb") as binary:
        assert expected_rows(binary) == MAX_EXPECTED_ROWS
    report = ListReport(blank)
    assert [s.email for s in read_subscribers(blank, report)] == ["ada@example.org"] and report.valid == 1


def test_internationalised_domain_is_converted_for_smtp(tmp_path: Path) -> None:
    rows, _ = read(tmp_path, "email\nmaria@bücher.example\n")
    assert rows[0][0] == "maria@xn--bcher-kva.example"


def test_cr_lf_in_name_or_address_is_neutralised_or_rejected(tmp_path: Path) -> None:
    rows, report = read(
        tmp_path,
        'email,name\nada@example.org,"Ada\r\nBcc: x@example.org"\n"eve@example.org\r\nBcc: y@example.org",Eve\n',
    )
    assert rows == [("ada@example.org", "Ada Bcc: x@example.org", {})]
    assert report.invalid == 1 and "\r" not in rows[0][1] and "\n" not in rows[0][1]


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(SubscriberListError, match="empty"):
        read(tmp_path, "")
    with pytest.raises(SubscriberListError, match="empty"):
        read(tmp_path, "\n\n")
    rows, report = read(tmp_path, "email,name\n")
    assert rows == [] and report.valid == 0


def test_file_without_an_email_column_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SubscriberListError) as caught:
        read(tmp_path, "name,phone\nAda,123\n")
    assert "no email column" in str(caught.value) and ":1:" in str(caught.value)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(SubscriberListError, match="not found"):
        list(read_subscribers(tmp_path / "none.csv"))
    with pytest.raises(SubscriberListError, match="UTF-8"):
        read(tmp_path, "email,name\nada@example.org,Zo\xeb\n".encode("latin-1"))


def test_reading_is_a_stream(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as handle:
        handle.write("email\n")
        for i in range(50_000):
            handle.write(f"user{i}@example.org\n")
    stream = read_subscribers(path)
    assert next(stream).email == "user0@example.org"  # yielded before the rest is read
    assert sum(1 for _ in stream) == 49_999


def test_extra_cells_and_overlong_values_are_warned_at_their_line_by_both_commands(workspace: Path) -> None:
    import contextlib

    from click.testing import CliRunner

    from conftest import write_issue
    from newsletter_mailer.cli import main

    long_name = "Zoë " * 2560  # 10 KB
    (workspace / "subscribers.csv").write_text(
        "email,name,branch\n"
        "ada@example.org,Lovelace, Ada,Riverton\n"  # a comma in an unquoted name: the cells shift
        "bob@example.org,Bob,East,,\n"  # empty trailing cells, as spreadsheets write them: fine
        f"zoe@example.org,{long_name},North\n"
        f"max@example.org,Max,{'x' * 1001}\n",
        encoding="utf-8",
    )
    write_issue(workspace, "subject: News", "Dear {{ subscriber.name }} of {{ subscriber.branch }},\n")
    expected = [
        "subscribers.csv:2: warning: 4 cells but the header has 3: the extra cells ('Riverton') are ignored; "
        'a comma inside a value needs quotes ("Lovelace, Ada")',
        "subscribers.csv:4: warning: name is 10239 characters (more than 256): it goes out as it is in the To: "
        "header and in every merge field; is this the right cell?",
        "subscribers.csv:5: warning: branch is 1001 characters (more than 1000): it goes out as it is in every "
        "merge field; is this the right cell?",
    ]
    with contextlib.chdir(workspace):
        listed = CliRunner().invoke(main, ["subscribers", "check"], catch_exceptions=False)
        checked = CliRunner().invoke(main, ["check", "issue.md"], catch_exceptions=False)
    assert listed.exit_code == 0 and "4 valid addresses: 4 would be mailed" in listed.output, listed.output
    assert checked.exit_code == 0, checked.output
    for output in (listed.output, checked.output):
        found = [line.split("/ws/", 1)[1] for line in output.splitlines() if "subscribers.csv:" in line]
        assert found == expected, output


@pytest.mark.parametrize(
    ("header", "row", "name", "first", "said"),
    [
        (
            "email;First Name;Last Name",
            "a@example.org;Ada;Lovelace",
            "Ada Lovelace",
            "Ada",
            "'First Name' + 'Last Name'",
        ),
        ("EMAIL,given name,SURNAME", "a@example.org,Ada,Lovelace", "Ada Lovelace", "Ada", "'given name' + 'SURNAME'"),
        ("email,first,last", "a@example.org,,Lovelace", "Lovelace", "", "'first' + 'last'"),
        ("email,surname", "a@example.org,Lovelace", "Lovelace", "Lovelace", "'surname'"),
        ("email,Name", "a@example.org,Ada King Lovelace", "Ada King Lovelace", "Ada", "first word of 'Name'"),
        ("email,Name", 'a@example.org,"Lovelace, Ada"', "Lovelace, Ada", "Ada", "display name from 'Name'"),
        ("email,name,first name", "a@example.org,Countess,Ada", "Countess", "Ada", "display name from 'name'"),
        ("email,city", "a@example.org,Riverton", "", "", "no name column"),
    ],
)
def test_names_from_two_columns_and_first_name_from_a_full_name(
    tmp_path: Path, header: str, row: str, name: str, first: str, said: str
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(f"{header}\n{row}\n", encoding="utf-8")
    report = ListReport(path)
    (reader,) = read_subscribers(path, report)
    assert reader.name == name and reader.merge_values()["first_name"] == first
    assert said in report.names_from
