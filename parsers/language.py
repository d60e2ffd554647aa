"""English, French or Spanish? Counted on stop words, accents ignored; English when unsure.

A word that belongs to one of the three languages counts 1 for it. ``de``, ``la``, ``que``,
``en``, ``a`` and ``un`` are as French as they are Spanish: they count half for each, which
tells both from English without choosing between them.
"""

from __future__ import annotations

import re

from parsers.text import unaccented


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the and of to is that for with on by this be are from as at have has it which will"
        " we our please find attached would been an or not was were you your dear regards"
        " kind shall should herewith"
    ),
    "fr": _words(
        "le les des du et est une pour qui dans sur par avec au aux ce cette ces nous vous"
        " votre vos sont ont pas ne il elle ils d l qu j n c etre mais ou leur leurs tres"
        " aussi honneur veuillez ci joint jointe madame monsieur salutations ses"
    ),
    "es": _words(
        "el los las del y es una por con para se su sus al lo como mas este esta estos estas"
        " muy nos pero ha han sido hay usted ustedes saluda honra adjunto adjunta cordialmente"
        " atentamente tambien senor senora estimado estimada"
    ),
}
_ROMANCE = _words("de la que en a un")
_TOKEN = re.compile(r"[a-z]+")
_SAMPLE = 20_000  # characters: plenty to decide, and bounded


def _fold(text: str) -> str:
    return unaccented(text).casefold()


def detect_language(text: str) -> str:
    """'en', 'fr' or 'es' for ``text``; 'en' when there is too little to tell or a tie."""
    return language_of(text) or "en"


def language_of(text: str) -> str | None:
    """'en', 'fr' or 'es' for ``text``; None when there is too little to tell or a tie."""
    # Quoted lines are someone else's words (often our own English acknowledgement).
    own = "\n".join(line for line in text[:_SAMPLE].splitlines() if not line.startswith(">"))
    counts = dict.fromkeys(_WORDS, 0.0)
    for token in _TOKEN.findall(_fold(own).replace("’", "'")):
        if token in _ROMANCE:
            counts["fr"] += 0.5
            counts["es"] += 0.5
            continue
        for language, words in _WORDS.items():
            if token in words:
                counts[language] += 1
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    (best, best_count), (_second, second_count) = ranked[0], ranked[1]
    if best_count < 2 or best_count == second_count:
        return None
    return best
