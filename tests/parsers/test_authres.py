"""Only our own server's Authentication-Results count, and a failure means 'do not trust'."""

from __future__ import annotations

import pytest

from parsers.authres import FAIL, PASS, UNKNOWN, sender_auth

OURS = ("mx.unog.ch",)
SENDER = "dfra.geneve@diplomatie.gouv.fr"


def verdict(*values: str, ours: tuple[str, ...] = OURS) -> str:
    headers = [("Authentication-Results", v) for v in values]
    return sender_auth(headers, SENDER, ours).verdict


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mx.unog.ch; dmarc=pass (p=reject) header.from=diplomatie.gouv.fr", PASS),
        ("mx.unog.ch; dmarc=fail (p=none) header.from=diplomatie.gouv.fr", FAIL),
        ("mx.unog.ch; spf=fail smtp.mailfrom=diplomatie.gouv.fr; dkim=none", FAIL),
        ("mx.unog.ch; dkim=fail header.d=diplomatie.gouv.fr", FAIL),
        ("mx.unog.ch; dkim=pass header.d=diplomatie.gouv.fr; spf=softfail", PASS),
        ("mx.unog.ch; dkim=pass header.d=mailchimp.example; spf=none", UNKNOWN),
        ("mx.unog.ch; spf=pass smtp.mailfrom=diplomatie.gouv.fr", PASS),
        ("mx.unog.ch; spf=softfail smtp.mailfrom=diplomatie.gouv.fr", UNKNOWN),
        ("mx.unog.ch 1; none", UNKNOWN),
    ],
)
def test_our_servers_verdict_is_read(value: str, expected: str) -> None:
    assert verdict(value) == expected


def test_a_header_from_another_server_is_ignored_even_if_it_says_pass() -> None:
    forged = "mx.attacker.example; dmarc=pass header.from=diplomatie.gouv.fr"
    assert verdict(forged) == UNKNOWN
    assert verdict(forged, "mx.unog.ch; dmarc=fail header.from=diplomatie.gouv.fr") == FAIL


def test_without_a_configured_authserv_id_nothing_is_checked() -> None:
    auth = sender_auth([("Authentication-Results", "mx.unog.ch; dmarc=fail")], SENDER, ())
    assert auth.verdict == UNKNOWN and auth.trusted


def test_comments_do_not_confuse_the_reader() -> None:
    value = (
        "mx.unog.ch (Postfix); dmarc=fail (p=quarantine dis=none) header.from=diplomatie.gouv.fr"
    )
    auth = sender_auth([("authentication-results", value)], SENDER, OURS)
    assert auth.verdict == FAIL and not auth.trusted
    assert "dmarc=fail" in auth.detail and "mx.unog.ch" in auth.detail
