"""links.py: tokens name a recipient and a list, hide the address, and refuse every forgery."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from newsletter_mailer.audience.links import TokenSigner, load_secret, unsubscribe_url
from newsletter_mailer.errors import TokenError

SIGNER = TokenSigner(b"k" * 32, "news.example.org")
ADDRESS = "ada.lovelace@example.org"


def test_round_trip_is_stable_and_hides_the_address() -> None:
    token = SIGNER.token(ADDRESS)
    assert SIGNER.verify(token) == ADDRESS
    assert SIGNER.token(ADDRESS) == token  # the same link in every issue
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"ada" not in raw and b"example" not in raw and "ada" not in token.lower()
    assert SIGNER.token("bob@example.org") != token
    assert unsubscribe_url("https://x.example.org/", token) == f"https://x.example.org/unsubscribe/{token}"


def test_unicode_address_round_trips() -> None:
    assert SIGNER.verify(SIGNER.token("zoë@example.org")) == "zoë@example.org"


def test_every_flipped_bit_is_refused() -> None:
    raw = bytearray(base64.urlsafe_b64decode(SIGNER.token(ADDRESS) + "=="))
    for index in range(len(raw)):
        for bit in (0, 3, 7):
            forged = bytearray(raw)
            forged[index] ^= 1 << bit
            token = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
            with pytest.raises(TokenError):
                SIGNER.verify(token)


@pytest.mark.parametrize("cut", [1, 5, 20, 60])
def test_truncated_tokens_are_refused(cut: int) -> None:
    token = SIGNER.token(ADDRESS)
    with pytest.raises(TokenError):
        SIGNER.verify(token[:-cut])


def test_another_key_or_another_list_is_refused() -> None:
    token = SIGNER.token(ADDRESS)
    with pytest.raises(TokenError):
        TokenSigner(b"j" * 32, "news.example.org").verify(token)
    with pytest.raises(TokenError):
        TokenSigner(b"k" * 32, "other.example.org").verify(token)


@pytest.mark.parametrize("junk", ["", "!!!!", "a", "AAAA" * 20, "é", "../../etc/passwd"])
def test_garbage_is_refused(junk: str) -> None:
    with pytest.raises(TokenError):
        SIGNER.verify(junk)


def test_generated_secret_is_kept_with_mode_0600(tmp_path: Path) -> None:
    state = tmp_path / ".newsletter"
    first = load_secret(state, env={})
    assert load_secret(state, env={}) == first and len(first) == 64
    assert stat.S_IMODE((state / "secret.key").stat().st_mode) == 0o600
    assert load_secret(state, env={"NEWSLETTER_SECRET": "from-env"}) == b"from-env"


TEST_SIGNER = TokenSigner(b"k" * 32, "news.example.org", test=True)


def _with_version(token: str, version: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[0] = version
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_a_test_copys_token_is_read_as_a_test_and_never_verifies() -> None:
    token = TEST_SIGNER.token(ADDRESS)
    assert token != SIGNER.token(ADDRESS)
    subject = SIGNER.read(token)
    assert (subject.address, subject.test) == (ADDRESS, True)
    assert SIGNER.read(SIGNER.token(ADDRESS)).test is False
    with pytest.raises(TokenError):
        SIGNER.verify(token)
    with pytest.raises(TokenError):
        TEST_SIGNER.verify(token)


@pytest.mark.parametrize("version", [0, 1, 2, 4, 5, 255])
def test_a_real_token_cannot_be_downgraded_nor_a_test_token_upgraded(version: int) -> None:
    real, test = SIGNER.token(ADDRESS), TEST_SIGNER.token(ADDRESS)
    with pytest.raises(TokenError):
        SIGNER.read(_with_version(real, version))
    with pytest.raises(TokenError):
        SIGNER.read(_with_version(test, version if version != 4 else 3))


def test_a_token_is_aes_siv_under_the_version_byte() -> None:
    """Version 3, then RFC 5297's synthetic IV (16 bytes) and the sealed address: nothing else."""
    raw = base64.urlsafe_b64decode(SIGNER.token(ADDRESS) + "==")
    assert raw[0] == 3 and len(raw) == 1 + 16 + len(ADDRESS)
    assert base64.urlsafe_b64decode(TEST_SIGNER.token(ADDRESS) + "==")[0] == 4


VECTORS = json.loads((Path(__file__).parent / "token_vectors" / "hmac-siv-v1.json").read_text(encoding="utf-8"))


def _legacy(vector: dict[str, Any]) -> tuple[TokenSigner, str]:
    return TokenSigner(VECTORS["secret"].encode(), vector["list_id"]), vector["token"]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: f"{v['list_id']}-{v['test']}-{v['address']}")
def test_links_sent_before_aes_siv_are_still_honoured(vector: dict[str, Any]) -> None:
    signer, token = _legacy(vector)
    assert base64.urlsafe_b64decode(token + "==")[0] == (2 if vector["test"] else 1)
    subject = signer.read(token)
    assert (subject.address, subject.test) == (vector["address"], vector["test"])
    if vector["test"]:
        with pytest.raises(TokenError):
            signer.verify(token)
    else:
        assert signer.verify(token) == vector["address"]
    assert signer.token(vector["address"]) != token  # new links are AES-SIV only


@pytest.mark.parametrize("vector", VECTORS["vectors"][:4], ids=lambda v: v["address"])
def test_old_links_altered_truncated_or_foreign_are_refused(vector: dict[str, Any]) -> None:
    signer, token = _legacy(vector)
    raw = base64.urlsafe_b64decode(token + "==")
    for index in range(len(raw)):
        forged = bytearray(raw)
        forged[index] ^= 0x10
        with pytest.raises(TokenError):
            signer.read(base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode())
    for cut in (1, 16, 28):
        with pytest.raises(TokenError):
            signer.read(token[:-cut])
    with pytest.raises(TokenError):
        TokenSigner(b"another secret", vector["list_id"]).read(token)
    with pytest.raises(TokenError):
        TokenSigner(VECTORS["secret"].encode(), "elsewhere.example").read(token)


def test_a_forged_test_token_is_refused() -> None:
    forged = TokenSigner(b"j" * 32, "news.example.org", test=True).token(ADDRESS)
    with pytest.raises(TokenError):
        SIGNER.read(forged)
