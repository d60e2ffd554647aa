"""One small exception tree: each error says whether trying again can help."""

from __future__ import annotations


class IntakeError(Exception):
    """Root of the service's own errors.

    ``permanent`` is False when a retry later may succeed (a server down, a lock held),
    True when it cannot without a person (a wrong password, a refused recipient).
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
