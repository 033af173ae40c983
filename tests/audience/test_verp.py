"""verp.py: short, case-proof, signed envelope senders that name a journal row."""

from __future__ import annotations

import pytest

from newsletter_mailer.audience.links import TokenSigner
from newsletter_mailer.audience.verp import VerpCodec
from newsletter_mailer.errors import TokenError

CODEC = VerpCodec(b"k" * 32, "list.example.org", "bounces@news.example.org")


@pytest.mark.parametrize("row", [1, 255, 256, 70_000, 2**40])
def test_sender_round_trips_and_fits_a_local_part(row: int) -> None:
    sender = CODEC.sender(row)
    local, _, domain = sender.rpartition("@")
    assert domain == "news.example.org" and local.startswith("bounces+")
    assert len(local) <= 64 and local == local.lower()
    assert CODEC.row(local.partition("+")[2]) == row
    assert CODEC.row(local.partition("+")[2].upper()) == row  # a return path whose case was folded
    assert str(row) not in local


def test_altered_foreign_and_garbage_tokens_are_refused() -> None:
    token = CODEC.token(42)
    altered = token[:-1] + ("a" if token[-1] != "a" else "b")
    other_key = VerpCodec(b"x" * 32, "list.example.org", "bounces@news.example.org").token(42)
    other_list = VerpCodec(b"k" * 32, "other.example.org", "bounces@news.example.org").token(42)
    for bad in (altered, other_key, other_list, "", "!!!!", "aaaa"):
        with pytest.raises(TokenError):
            CODEC.row(bad)


def test_find_picks_valid_tokens_out_of_a_report_and_skips_forged_ones() -> None:
    forged = "bounces+" + CODEC.token(7)[:-2] + "aa@news.example.org"
    text = f"To: {forged}\nX-Original-To: {CODEC.sender(7).upper()}\nDelivered-To: {CODEC.sender(9)}\n"
    assert CODEC.find(text) == [7, 9]
    assert CODEC.find("To: bounces@news.example.org") == []


def test_from_signer_shares_the_workspace_key() -> None:
    signer = TokenSigner(b"k" * 32, "list.example.org")
    assert VerpCodec.from_signer(signer, "bounces@news.example.org").token(5) == CODEC.token(5)
