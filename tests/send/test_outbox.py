"""outbox.py through the real command: with no relay, every message lands in the Maildir and as
a numbered .eml file whose name is safe whatever the address holds."""

from __future__ import annotations

import email
import mailbox
import re
import subprocess
import sys
from email import policy
from pathlib import Path

from newsletter_mailer.send.outbox import eml_name

HOSTILE = ["plain@example.org", "a/b@example.org", "x|y$z`{w}@example.org", "o'neil&co=1?@example.org"]


def test_eml_names_are_flat_and_safe() -> None:
    assert eml_name(7, "a/b@example.org") == "007-a_b@example.org.eml"
    assert eml_name(1234, "x|y$z`{w}@example.org") == "1234-x_y_z_w_@example.org.eml"
    assert eml_name(2, "") == "002-recipient.eml"
    assert "/" not in eml_name(3, "../../etc/passwd") and not eml_name(3, "..x").startswith(".")
    assert len(eml_name(4, "a" * 300 + "@example.org")) < 100


def test_send_without_a_relay_writes_the_maildir_and_one_eml_per_message(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text('[newsletter]\nname = "Walkers"\nfrom = "news@walkers.example.org"\n')
    (tmp_path / "subscribers.csv").write_text("email\n" + "\n".join(HOSTILE) + "\n")
    (tmp_path / "issue.md").write_text("---\nsubject: Walk news\n---\nHello {{ subscriber.email }}\n")
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", "send", "issue.md", "--yes"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        (tmp_path / "second.md").write_text("---\nsubject: Second\n---\nAgain\n")
        result = subprocess.run(
            [sys.executable, "-m", "newsletter_mailer", "send", "second.md", "--test", "--to", "a/b@example.org"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    outbox = tmp_path / "outbox"
    assert len(mailbox.Maildir(outbox, create=False)) == len(HOSTILE) + 2
    files = sorted(p.name for p in outbox.iterdir() if p.suffix == ".eml")
    assert [int(name.split("-", 1)[0]) for name in files] == list(range(1, len(HOSTILE) + 3))
    assert all(re.fullmatch(r"\d{3}-[A-Za-z0-9@._+-]+\.eml", name) for name in files), files
    assert not any(p.is_dir() for p in outbox.iterdir() if p.name not in ("new", "cur", "tmp"))
    recipients = set()
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        recipients.add(message["Delivered-To"])
        assert path.name.split("-", 1)[1].startswith(re.sub(r"[^A-Za-z0-9@._+-]+", "_", message["Delivered-To"]))
    assert recipients == set(HOSTILE)
