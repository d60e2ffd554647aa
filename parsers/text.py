"""Text shared by the readers of rosters and reports: folding and bounded inputs.

Folding keeps one character for one, so an offset found in the folded text is an offset in
the original; bounding cuts what a hostile or huge mail can make a reader look at.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

Table = tuple[tuple[str, ...], ...]  # rows of cells, as parsers.attachments gives them

MAX_CHARS = 200_000  # characters of one text that are read
MAX_ROWS = 2_000
MAX_COLUMNS = 40
MAX_CELL = 400
MAX_SOURCES = 30
MAX_TOTAL = 1_000_000  # characters read from one mail, all sources together

# One character for one, so that an offset in the folded text is an offset in the original.
ONE_FOR_ONE = str.maketrans(
    {
        "\xa0": " ",
        "\u202f": " ",
        "\u2007": " ",
        "\u2009": " ",
        "\u2019": "'",
        "\u2018": "'",
        "`": "'",
        "\u2010": "-",
        "\u2011": "-",
        "\u00aa": "a",  # 7ª
        "\u00ba": "o",  # 1º
        "\u00b0": "o",
        "\uff1a": ":",
    }
)


class Folding(dict[int, str]):
    """A translation table built as characters are met: lower case, accents dropped, and
    still one character for one (a character that would become two stays as it is)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        base = unicodedata.normalize("NFD", char)[0].lower()
        value = base if len(base) == 1 else char
        if len(self) < 20_000:  # garbage may hold every code point: keep the table small
            self[code] = value
        return value


FOLDING = Folding({code: value.lower() for code, value in ONE_FOR_ONE.items()})


class _Marks(dict[int, int | None]):
    """A translation table that drops combining marks, built as characters are met."""

    def __missing__(self, code: int) -> int | None:
        value = None if unicodedata.combining(chr(code)) else code
        if len(self) < 20_000:  # as FOLDING: garbage may hold every code point
            self[code] = value
        return value


_MARKS = _Marks()


def unaccented(text: str) -> str:
    """NFKD without its combining marks ('é' → 'e', 'ﬁ' → 'fi'); lengths may change. One
    ``str.translate`` in C rather than a Python test per character (docs/PERFORMANCE.md)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed if decomposed.isascii() else decomposed.translate(_MARKS)


def clean(text: str) -> str:
    """Unify look-alike spaces, apostrophes and dashes; same length as ``text``."""
    return text.translate(ONE_FOR_ONE)


def fold(text: str) -> str:
    """Lower case without accents, one character for one (offsets stay valid)."""
    if text.isascii():
        return text.lower().replace("`", "'")
    return text.translate(FOLDING)


def squash(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class Inputs:
    body: str
    texts: tuple[tuple[str, str], ...]
    tables: tuple[tuple[str, Table], ...]
    warnings: tuple[str, ...]


def bound(
    body: str, texts: Sequence[tuple[str, str]], tables: Sequence[tuple[str, Table]]
) -> Inputs:
    """The inputs cut to what is read: MAX_CHARS a text or table, MAX_TOTAL in all, each cell
    MAX_CELL, MAX_ROWS x MAX_COLUMNS a table, MAX_SOURCES of each. Cleaned (``clean``)."""
    warnings: list[str] = []
    left = MAX_TOTAL

    def cut(text: str, where: str) -> str:
        nonlocal left
        size = min(MAX_CHARS, left)
        if len(text) > size:
            warnings.append(f"{where}: only the first {size} characters read")
            text = text[:size]
        left -= len(text)
        return clean(text)

    kept_body = cut(body, "message body")
    if len(texts) > MAX_SOURCES or len(tables) > MAX_SOURCES:
        warnings.append(f"only the first {MAX_SOURCES} texts and tables read")
    kept_texts = tuple((name, cut(text, f"text of {name}")) for name, text in texts[:MAX_SOURCES])
    kept_tables: list[tuple[str, Table]] = []
    for name, table in tables[:MAX_SOURCES]:
        rows: list[tuple[str, ...]] = []
        budget, used = min(MAX_CHARS, left), 0
        for row in table[:MAX_ROWS]:
            cells = tuple(
                squash(clean(str(cell)))[:MAX_CELL] if cell is not None else ""
                for cell in row[:MAX_COLUMNS]
            )
            cost = sum(map(len, cells)) + len(cells)
            if used + cost > budget:
                break
            used += cost
            rows.append(cells)
        if len(rows) < len(table):
            warnings.append(f"table in {name}: only the first {len(rows)} rows read")
        left -= used
        kept_tables.append((name, tuple(rows)))
    return Inputs(kept_body, kept_texts, tuple(kept_tables), tuple(warnings))
