"""Did our own mail server vouch for the sender? (Authentication-Results, RFC 8601)

Only headers stamped with *our* server's authserv-id count: anyone can write an
Authentication-Results header into a mail before sending it. A sender that failed SPF,
DKIM or DMARC there is not trusted to say which State is writing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(
    r"\b(spf|dkim|dmarc|arc)\s*=\s*([a-z]+)((?:\s+[a-z.\-]+\s*=\s*[^\s;]+)*)", re.I
)
_PROPERTY = re.compile(r"([a-z.\-]+)\s*=\s*([^\s;]+)", re.I)


@dataclass(frozen=True, slots=True)
class SenderAuth:
    verdict: str  # PASS | FAIL | UNKNOWN
    detail: str  # e.g. "dmarc=fail header.from=diplomatie.gouv.fr (by mx.unog.ch)"

    @property
    def trusted(self) -> bool:
        """False only on a failure: 'unknown' keeps the sender as evidence, as without a check."""
        return self.verdict != FAIL


@dataclass(frozen=True, slots=True)
class _Result:
    method: str
    result: str
    properties: dict[str, str]


def _results(value: str) -> tuple[str, list[_Result]]:
    text = _COMMENT.sub(" ", value)
    authserv, _, rest = text.partition(";")
    found = []
    for match in _RESULT.finditer(rest):
        props = {k.lower(): v.strip("<>").lower() for k, v in _PROPERTY.findall(match.group(3))}
        found.append(_Result(match.group(1).lower(), match.group(2).lower(), props))
    return authserv.strip().split()[0].lower() if authserv.strip() else "", found


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment (DMARC): the same organisational domain, roughly."""
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return bool(domain) and (
        domain == from_domain
        or from_domain.endswith("." + domain)
        or domain.endswith("." + from_domain)
    )


def sender_auth(
    headers: Iterable[tuple[str, str]], from_addr: str, authserv_ids: Iterable[str]
) -> SenderAuth:
    """What our own server's Authentication-Results say about ``from_addr``'s domain."""
    ours = {a.strip().lower() for a in authserv_ids if a.strip()}
    if not ours:
        return SenderAuth(UNKNOWN, "no authserv-id configured: sender not checked")
    from_domain = from_addr.rpartition("@")[2].lower()
    results: list[_Result] = []
    stamped_by = ""
    for name, value in headers:
        if name.lower() != "authentication-results":
            continue
        authserv, found = _results(value)
        if authserv in ours:
            results.extend(found)
            stamped_by = authserv
    if not results:
        return SenderAuth(UNKNOWN, "no Authentication-Results from our server")

    def said(method: str, result: str) -> list[_Result]:
        return [r for r in results if r.method == method and r.result == result]

    where = f"(by {stamped_by})"
    if said("dmarc", "fail"):
        return SenderAuth(FAIL, f"dmarc=fail header.from={from_domain} {where}")
    if said("dmarc", "pass"):
        return SenderAuth(PASS, f"dmarc=pass header.from={from_domain} {where}")
    aligned_dkim = [
        r for r in said("dkim", "pass") if _aligned(r.properties.get("header.d", ""), from_domain)
    ]
    if aligned_dkim:
        return SenderAuth(
            PASS, f"dkim=pass header.d={aligned_dkim[0].properties['header.d']} {where}"
        )
    if said("spf", "pass") and not said("dkim", "fail"):
        return SenderAuth(PASS, f"spf=pass {where}")
    failed = said("spf", "fail") + said("dkim", "fail")
    if failed:
        return SenderAuth(FAIL, f"{failed[0].method}=fail for {from_domain} {where}")
    return SenderAuth(UNKNOWN, f"no pass or fail for {from_domain} {where}")
