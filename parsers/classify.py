"""What does a mail submit: delegation details, an Article 7 report, or nothing?

A list of small keyword rules in English, French and Spanish, each returning
:class:`Evidence` or nothing (STYLE §10). Where a word is found sets its weight: the
subject and the attachment file names speak for the whole mail (strong), the body and the
attachment texts mention many things (medium). Weights of one kind combine by noisy-OR,
``1 - Π(1 - w)``, and a kind counts when it reaches 0.5.

What keeps ordinary correspondence out:

* three tiers of phrases: decisive ones ("composition of the delegation", "transparency
  report"), plain keywords ("delegation", "Article 7") and mere context ("7MSP", "Meeting
  of States Parties", "participants"). Context alone never reaches 0.5, so the meeting
  named in a signature or a statement makes no delegation;
* a longer phrase hides the words inside it, so "head of delegation" is not counted again
  as "delegation"; names of senders ("Delegation of the European Union", "Délégation
  permanente") are hidden before anything is counted;
* quoted text (``>`` lines, and everything below a reply header such as "-----Original
  Message-----" or "On … wrote:") is dropped from the body of a reply, which is where our
  own acknowledgement would come back;
* a reply's subject (``Re:``) is mostly someone else's words: it counts half, and nothing
  when it is the subject of our acknowledgement;
* a keyword inside a question ("When is the Article 7 report due?") counts half, and so does
  one in a subject that announces a question ("Question on the Article 7 reporting format",
  "Consulta - acreditación"); words asked about do not add up, only the strongest counts,
  so a question about a report never becomes the report;
* "Form A" … "Form J" count only with a capital letter, and in running text only when two
  different forms are named ("the form I sent" is no Form I).

A mail no human wrote is no submission, whatever words it quotes: an out-of-office reply to
our reminder repeats "Article 7 report". ``classify_kind`` asks
:func:`parsers.autoreply.classify_automatic` first and, when a robot sent the mail, answers
with its kind (``auto_reply``, ``bounce``, ``list``, ``spam``) and no submission.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from parsers.attachments import Extraction
from parsers.autoreply import AUTOMATIC_KINDS, DEFAULT_SPAM_THRESHOLD, classify_automatic
from parsers.evidence import Evidence
from parsers.message import ParsedMessage
from parsers.text import unaccented

SUBMISSION_KINDS = ("delegation", "article7")
# Every kind a mail can be given: submissions, other correspondence, and the mail of robots.
KINDS = (*SUBMISSION_KINDS, "other", *AUTOMATIC_KINDS)
THRESHOLD = 0.5
MAX_SCAN = 100_000  # characters of one text that are read: a submission says what it is early

# Weight of a tier in each place it can be found.
_WEIGHTS: dict[str, dict[str, float]] = {
    "decisive": {"subject": 0.9, "filename": 0.9, "body": 0.7, "attachment": 0.6},
    "keyword": {"subject": 0.7, "filename": 0.7, "body": 0.25, "attachment": 0.3},
    "context": {"subject": 0.2, "filename": 0.2, "body": 0.1, "attachment": 0.1},
}
_TIERS = ("decisive", "keyword", "context")


@dataclass(frozen=True, slots=True)
class KindResult:
    kind: str
    kinds: tuple[str, ...]
    confidence: float
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class _Phrase:
    kind: str
    tier: str
    label: str
    pattern: re.Pattern[str]
    # The pattern without its leading look-behind, which keeps the regex engine from skipping
    # ahead to where a match could start: it finds a superset of the matches, faster, and
    # most texts have none at all (docs/PERFORMANCE.md).
    loose: re.Pattern[str] | None = None

    def finditer(self, folded: str) -> list[re.Match[str]]:
        if self.loose is not None and self.loose.search(folded) is None:
            return []
        return list(self.pattern.finditer(folded))


def _p(kind: str, tier: str, label: str, regex: str) -> _Phrase:
    # Text is folded (no accents, lower case, one space between words) before matching.
    return _Phrase(
        kind,
        tier,
        label,
        re.compile(r"(?<![\w])(?:" + regex + r")(?![\w])"),
        re.compile(r"(?:" + regex + r")(?![\w])"),
    )


_D, _A = "delegation", "article7"
_DELEG = r"(?:delegation|delegacion)"
PHRASES: tuple[_Phrase, ...] = (
    # --- delegation
    _p(
        _D,
        "decisive",
        "composition of the delegation",
        r"composition (?:of|de) (?:the |la |l')?"
        + _DELEG
        + r"s?|composicion de (?:la )?delegacion",
    ),
    _p(
        _D,
        "decisive",
        "list of delegates",
        r"lists? of (?:the )?(?:delegates|delegation members|members of the delegation)"
        r"|listes? des delegues|listes? de (?:la )?delegation|listas? de (?:los )?delegados"
        r"|listas? de (?:la )?delegacion|lists? of (?:the )?delegation",
    ),
    _p(
        _D,
        "decisive",
        "head of delegation",
        r"(?:deputy |alternate )?head of (?:the )?delegation"
        r"|chef (?:adjoint )?de (?:la )?delegation|jef[ea] (?:adjunt[oa] )?de (?:la )?delegacion",
    ),
    _p(
        _D,
        "decisive",
        "credentials",
        r"letters? of credentials?|lettres? de creance|cartas? credenciales|pleins pouvoirs"
        r"|plenos poderes",
    ),
    _p(_D, "keyword", "delegation", _DELEG + r"s?|delegates|delegues|delegados"),
    _p(_D, "keyword", "credentials", r"credentials|credenciales|pouvoirs"),
    _p(
        _D,
        "keyword",
        "list of participants",
        r"lists? of participants|listes? des participants|listas? de (?:los )?participantes",
    ),
    _p(
        _D,
        "keyword",
        "registration",
        r"registration|pre-registration|inscription|inscripcion|accreditation"
        r"|acreditacion",
    ),
    _p(
        _D,
        "context",
        "Meeting of States Parties",
        r"meeting of (?:the )?states parties|reunion des etats parties"
        r"|reunion de (?:los )?estados partes",
    ),
    _p(_D, "context", "MSP", r"\d{1,2}(?:st|nd|rd|th|e|eme|a)? ?msp|msp|msp ?\d{1,2}"),
    _p(_D, "context", "participants", r"participants?|participantes?"),
    # --- Article 7
    _p(
        _A,
        "decisive",
        "transparency report",
        r"transparency reports?|rapports? (?:de|sur la) transparence"
        r"|informes? (?:de |sobre (?:la )?)transparencia",
    ),
    _p(
        _A,
        "decisive",
        "Article 7 report",
        r"(?:article|art\.?) ?7 reports?|reports? (?:under|pursuant to) article 7"
        r"|rapports? (?:au titre de |en vertu de |conformement a )?l'?article 7"
        r"|informes? (?:del|en virtud del|de conformidad con el|con arreglo al) articulo 7",
    ),
    _p(_A, "keyword", "Article 7", r"article ?7|articulo ?7|art\.? ?7"),
    _p(
        _A,
        "keyword",
        "reporting period",
        r"reporting period|periode (?:couverte|consideree|visee)|periodo (?:que abarca|abarcado"
        r"|cubierto|del informe|que se informa)",
    ),
    _p(
        _A,
        "keyword",
        "transparency measures",
        r"transparency measures|mesures de transparence|medidas de transparencia",
    ),
    _p(
        _A,
        "context",
        "initial or annual report",
        r"initial report|annual report|rapport initial|rapport annuel"
        r"|informe inicial|informe anual",
    ),
    _p(
        _A,
        "context",
        "national implementation measures",
        r"national implementation measures|mesures (?:nationales )?de mise en (?:oeuvre|œuvre)"
        r"|medidas (?:nacionales )?de aplicacion",
    ),
)

# Names of senders that contain a keyword without meaning it.
_NOT_KEYWORDS = re.compile(
    r"delegation of the european union|delegation de l'union europeenne"
    r"|delegacion de la union europea|delegation permanente|delegacion permanente"
    r"|eu delegation|permanent delegation"
    # Delegates addressed, not listed: "Memorandum to delegates", "Chers délégués".
    r"|(?:to|for) (?:all |the )?delegates|dear delegates|aux delegues|chers delegues"
    r"|(?:a|para) (?:los |las )?delegad[oa]s|estimad[oa]s delegad[oa]s"
)
# A subject that announces a question: what it names is asked about, not sent.
_QUESTION_SUBJECT = re.compile(
    r"\?|^\W*(?:questions?|query|queries|enquiry|inquiry|clarifications?|request for "
    r"(?:information|clarification)|consultas?|preguntas?|dudas?|renseignements?"
    r"|demande (?:d'information|de renseignements|de precision))\b"
)
_FORM = re.compile(
    r"\b(?:[Ff]orm|FORM|[Ff]ormulaire|FORMULAIRE|[Ff]ormulario|FORMULARIO) ([A-J])\b"
)
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|ref|rif|r)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(?:fwd?|tr|rv|enc|wg)\s*:", re.IGNORECASE)
# Words of the subjects we send (acknowledgements, reminders): a reply or forward that keeps
# such a subject says nothing by its subject.
_OUR_SUBJECTS = re.compile(
    r"acknowledg|accuse de reception|acuse de recibo|accuse reception|receipt of your"
    r"|reminder|rappel|recordatorio"
)
# Lines that start the quoted original in a reply, in the three languages and the
# usual mail programs.
_REPLY_HEADER = re.compile(
    r"^(?:-{2,} ?(?:original message|message d'origine|mensaje original|messaggio originale)"
    r" ?-{2,}"
    r"|_{10,}"
    r"|on .{5,200} wrote:|le .{5,200} a ecrit ?:|el .{5,200} escribio:"
    r"|(?:from|de|von) ?: .{1,200}\n(?:sent|envoye|enviado(?: el)?|gesendet|date|fecha) ?: )",
    re.MULTILINE,
)
# A sentence that ends in a question mark. It may start only where a sentence does (the look-
# behind): tried from every character of a long line without one, "[^.!?\n]*\?" read the rest
# of the line each time, which is quadratic. The matches are the same (tests/parsers/test_classify).
_QUESTION = re.compile(r"(?<![^.!?\n])[^.!?\n]*\?")


def _fold(text: str) -> str:
    """No accents, lower case, straight apostrophes, single spaces; same idea for every text."""
    plain = unaccented(text[:MAX_SCAN]).replace("’", "'").replace("`", "'").replace("\u2010", "-")
    return re.sub(r"[ \t\xa0]+", " ", plain.casefold())


def _unaccented(text: str) -> str:
    return unaccented(text[:MAX_SCAN])


def _own_words(body: str, is_reply: bool) -> str:
    """The body without what the sender quoted."""
    lines = [line for line in body.splitlines() if not line.lstrip().startswith(">")]
    text = "\n".join(lines)
    sig = re.search(r"^-- ?$", text, re.MULTILINE)
    if sig:
        text = text[: sig.start()]
    if is_reply:
        folded = _fold(text)
        match = _REPLY_HEADER.search(folded)
        if match:
            # _fold keeps line structure and shortens only runs of blanks: cut by line.
            line_no = folded.count("\n", 0, match.start())
            text = "\n".join(text.splitlines()[:line_no])
    return text


@dataclass(slots=True)
class _Hit:
    phrase: _Phrase
    place: str
    where: str  # words for the clerk: 'subject', 'body', 'file name "x.pdf"', 'text of "x.pdf"'
    factor: float = 1.0
    why: str = ""
    asked: bool = False  # inside a question: counts half, and does not add up


def _scan(text: str, place: str, where: str, questions: bool = False) -> list[_Hit]:
    folded = _NOT_KEYWORDS.sub(lambda m: " " * len(m.group()), _fold(text))
    asked = [m.span() for m in _QUESTION.finditer(folded)] if questions and "?" in folded else []
    hits: list[_Hit] = []
    for tier in _TIERS:
        for phrase in PHRASES:
            if phrase.tier != tier:
                continue
            found = phrase.finditer(folded)
            if not found:
                continue
            in_question = [any(a <= m.start() < b for a, b in asked) for m in found]
            if all(in_question):
                hits.append(_Hit(phrase, place, where, 0.5, " (in a question)", asked=True))
            else:
                hits.append(_Hit(phrase, place, where))
            # A longer phrase hides the words inside it from the tiers below.
            folded = phrase.pattern.sub(lambda m: " " * len(m.group()), folded)
    return hits


def _forms(text: str, place: str, where: str, minimum: int) -> list[_Hit]:
    letters = sorted(set(_FORM.findall(_unaccented(text))))
    if len(letters) < minimum:
        return []
    tier = "keyword" if len(letters) < 3 else "decisive"
    label = "Form " + ", ".join(letters)
    phrase = _Phrase(_A, tier, label, _FORM)
    return [_Hit(phrase, place, where)]


def _file_words(name: str) -> str:
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return re.sub(r"[_+\-]+", " ", stem)


def _evidence(hits: list[_Hit]) -> list[tuple[Evidence, bool]]:
    """One piece of evidence per phrase and place: repeating a word proves nothing more.

    Each with whether it was asked about (in a question), strongest first.
    """
    best: dict[tuple[str, str, str], tuple[Evidence, bool]] = {}
    for hit in hits:
        weight = round(_WEIGHTS[hit.phrase.tier][hit.place] * hit.factor, 3)
        key = (hit.phrase.kind, hit.phrase.label, hit.place)
        rule = f"{hit.place}-keyword"
        detail = f'{hit.where}: "{hit.phrase.label}"{hit.why}'
        if key not in best or best[key][0].weight < weight:
            found = Evidence(rule=rule, detail=detail, weight=weight, target=hit.phrase.kind)
            best[key] = (found, hit.asked)
    return sorted(best.values(), key=lambda pair: pair[0].weight, reverse=True)


def _score(evidence: Sequence[tuple[Evidence, bool]], kind: str) -> float:
    """Noisy-OR of what was said, plus the strongest of what was only asked about."""
    said = [e.weight for e, asked in evidence if e.target == kind and not asked]
    asked = [e.weight for e, asked in evidence if e.target == kind and asked]
    return _noisy_or([*said, max(asked, default=0.0)])


def _noisy_or(weights: Sequence[float]) -> float:
    miss = 1.0
    for weight in weights:
        miss *= 1.0 - max(0.0, min(1.0, weight))
    return 1.0 - miss


def _automatic_result(msg: ParsedMessage, own: Iterable[str], spam: float) -> KindResult | None:
    auto = classify_automatic(msg, own, spam_threshold=spam)
    if auto is None:
        return None
    evidence = [Evidence(rule="automatic", detail=auto.reason, weight=1.0, target=auto.kind)]
    if auto.kind == "bounce" and (auto.failed_recipients or auto.permanent is not None):
        failed = ", ".join(auto.failed_recipients) or "not named"
        how = {True: "permanent", False: "delayed", None: "not said"}[auto.permanent]
        detail = f"failed recipients: {failed} ({how})"
        evidence.append(
            Evidence(rule="bounce-recipients", detail=detail, weight=1.0, target="bounce")
        )
    return KindResult(auto.kind, (), 1.0, tuple(evidence))


def classify_kind(
    msg: ParsedMessage,
    extractions: Sequence[Extraction],
    *,
    own_addresses: Iterable[str] = (),
    spam_threshold: float = DEFAULT_SPAM_THRESHOLD,
    robots: bool = True,
) -> KindResult:
    """Which submissions ``msg`` makes, strongest first, with the evidence for each.

    A mail from a robot makes none: its kind is the robot's (``auto_reply``, ``bounce``,
    ``list``, ``spam``) and ``kinds`` is empty. ``own_addresses`` are ours, as for
    :func:`parsers.autoreply.auto_reply_reason`. ``robots=False`` reads the words alone,
    for a mail a human has to look at anyway (a known mission's mail the spam filter flagged).
    """
    automatic = _automatic_result(msg, own_addresses, spam_threshold) if robots else None
    if automatic is not None:
        return automatic
    hits: list[_Hit] = []
    subject = msg.subject
    forward = bool(_FORWARD_PREFIX.match(subject))
    reply = bool(_REPLY_PREFIX.match(subject)) and not forward
    if not ((reply or forward) and _OUR_SUBJECTS.search(_fold(subject))):
        found = _scan(subject, "subject", "subject") + _forms(subject, "subject", "subject", 1)
        if _QUESTION_SUBJECT.search(_fold(subject)):
            for hit in found:
                if not hit.asked:
                    hit.factor, hit.asked = 0.5 * hit.factor, True
                    hit.why = " (question subject)" + hit.why
        if reply:
            # Someone else's subject, often ours: half weight, and one phrase per kind, or
            # "Re: Article 7 transparency report" alone would add up to a report.
            strongest: dict[str, _Hit] = {}
            for hit in found:
                kept = strongest.get(hit.phrase.kind)
                if kept is None or _TIERS.index(hit.phrase.tier) < _TIERS.index(kept.phrase.tier):
                    strongest[hit.phrase.kind] = hit
            found = list(strongest.values())
            for hit in found:
                hit.factor, hit.why = 0.5 * hit.factor, " (reply subject)" + hit.why
        hits += found

    body = _own_words(msg.text, reply)
    hits += _scan(body, "body", "body", questions=True)
    hits += _forms(body, "body", "body", 2)

    for att in msg.attachments:
        words = _file_words(att.filename or att.safe_name)
        where = f'file name "{att.safe_name}"'
        hits += _scan(words, "filename", where) + _forms(words, "filename", where, 1)
    for extraction in extractions:
        if extraction.text:
            where = f'text of "{extraction.name}"'
            hits += _scan(extraction.text, "attachment", where)
            hits += _forms(extraction.text, "attachment", where, 2)

    weighed = _evidence(hits)
    evidence = [e for e, _ in weighed]
    scores = {kind: _score(weighed, kind) for kind in SUBMISSION_KINDS}
    kinds = tuple(
        kind
        for kind, score in sorted(scores.items(), key=lambda item: item[1], reverse=True)
        if score >= THRESHOLD
    )
    if kinds:
        return KindResult(kinds[0], kinds, round(scores[kinds[0]], 3), tuple(evidence))
    return KindResult("other", (), round(1.0 - max(scores.values()), 3), tuple(evidence))
