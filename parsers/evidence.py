"""The one record every rule returns: what it saw, and how much that counts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Evidence:
    """One observation a rule made.

    ``rule`` names the rule that fired (``sender-address``, ``mission-opening``, ``keyword``…),
    ``detail`` says what it saw, in words a clerk can check, ``weight`` (0–1) how strongly it
    points at ``target`` (an ISO 3166 alpha-3 code for State rules, a kind for kind rules).
    """

    rule: str
    detail: str
    weight: float
    target: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "detail": self.detail,
            "weight": self.weight,
            "target": self.target,
        }
