"""Which State sent a mail: the State registry, the mission directory and the rules.

Everything here is pure: the registry and the directory are built by the caller
(``config.registry`` reads them from ``config/data``) and passed in.

``identify_state`` runs a list of small rules (STYLE §10). Each rule looks for one kind
of sign a mission leaves in what it sends and returns ``Evidence`` pointing at a State:

* the sender's address or domain is listed for a State (``sender-address``, ``sender-domain``;
  ``reply-to-address``, ``reply-to-domain`` count less);
* the mail speaks as a mission: "Permanent Mission of X", "Mission permanente de X",
  "Misión Permanente de X", "Permanent Representative of X"… (``mission-name``), boosted when
  it is the subject of a note-verbale opening, "… presents its compliments" / "présente ses
  compliments" / "saluda atentamente" / "has the honour to" in the same sentence
  (``note-verbale-opening``); the same in an attachment counts a little less
  (``attachment-mission-name``, ``attachment-note-verbale-opening``);
* the cover of an Article 7 report names the State: "State Party: X" (``state-party-field``);
* a delegation list is headed "Delegation of X" (``delegation-heading``), at the start of a
  line: in running text the phrase as often names another delegation.

No rule counts a bare country name: "Palais des Nations, 1211 Geneva 10, Switzerland" in a
signature says where a mission sits, not who it is. Quoted and forwarded parts of the body
(``>`` lines, "-----Original Message-----", "From: … Sent: …" blocks, "On … wrote:",
"Le … a écrit :", "El … escribió:") are not the sender speaking and are ignored.

Scores per State are combined with a noisy-OR (1 − Π(1 − wᵢ)) over rules, one piece of
evidence per rule and State. The result names a State only when the best score reaches the
threshold and no other State comes near (second < ``RIVAL_LIMIT``); a statement made "on
behalf of" a group of States never names one. Otherwise ``iso3`` is None and ``reason``
says why, so the message goes to review instead of being filed under a guess.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from parsers.evidence import Evidence
from parsers.text import unaccented

LANGUAGES = ("en", "fr", "es")
CCM_STATUSES = ("state_party", "signatory", "non_signatory")

# A second State scoring this much means the mail is ambiguous, whatever the first scores.
RIVAL_LIMIT = 0.5

# Weights (0–1) of the rules; see the module docstring.
W_SENDER_ADDRESS = 0.9
W_SENDER_DOMAIN = 0.8
W_REPLY_TO_ADDRESS = 0.6
W_REPLY_TO_DOMAIN = 0.5
W_MISSION_BODY = 0.7
W_OPENING_BODY = 0.85
W_MISSION_ATTACHMENT = 0.6
# A note verbale is often the attached PDF itself; its opening is as telling as in the body,
# minus the doubt that text extraction (OCR) read it right.
W_OPENING_ATTACHMENT = 0.75
W_STATE_PARTY_FIELD = 0.7
W_DELEGATION_HEADING = 0.6


# =============================================================================
# Names: normalisation and the registry
# =============================================================================

_TOKEN_RE = re.compile(r"[^\W_]+|&")
# Articles are dropped wherever they occur, so "Republic of Congo" and "the Republic of the
# Congo", "la France" and "France", "Niger (the)" and "Niger" compare equal.
_ARTICLES = frozenset({"the", "le", "la", "les", "l", "el", "los", "las"})
# "St Kitts" = "Saint Kitts"; "Trinidad & Tobago" = "Trinidad and Tobago" (also et / y / e,
# which only ever appear in names as conjunctions).
_SYNONYMS = {"st": "saint", "ste": "sainte", "&": "and", "et": "and", "y": "and", "e": "and"}
# Longer than any name with its articles; text beyond this is never part of a match.
_NAME_WINDOW = 240


def _fold(token: str) -> str:
    return unaccented(token).casefold()


def _tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """(normalised token, start, end) of each word of an NFC text, articles dropped."""
    for m in _TOKEN_RE.finditer(text):
        token = _fold(m.group())
        token = _SYNONYMS.get(token, token)
        if token not in _ARTICLES:
            yield token, m.start(), m.end()


def normalise_name(name: str) -> str:
    """The form names are compared in: casefolded, accents stripped, articles dropped,
    punctuation and whitespace folded to single spaces ("Côte d’Ivoire" → "cote d ivoire")."""
    return " ".join(t for t, _, _ in _tokens(unicodedata.normalize("NFC", name)))


@dataclass(frozen=True, slots=True)
class State:
    """A UN Member or Observer State (or Cook Islands, Niue), with its CCM status in Feb 2017."""

    iso3: str
    iso2: str
    name_en: str
    name_fr: str
    name_es: str
    formal_en: str
    formal_fr: str
    formal_es: str
    aliases: tuple[str, ...]
    ccm_status: str  # one of CCM_STATUSES
    ccm_entry_into_force: date | None
    m49: str = ""
    ccm_deposit_date: date | None = None
    ccm_initial_report_due: date | None = None

    def name(self, lang: str) -> str:
        """The short name in ``en``, ``fr`` or ``es``; English for any other language."""
        if lang == "fr":
            return self.name_fr
        if lang == "es":
            return self.name_es
        return self.name_en

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the State is known by: short and formal names in EN/FR/ES, aliases."""
        return (
            self.name_en,
            self.name_fr,
            self.name_es,
            self.formal_en,
            self.formal_fr,
            self.formal_es,
            *self.aliases,
        )


class _Node:
    __slots__ = ("children", "iso3")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.iso3: str | None = None


class StateRegistry:
    """The States by ISO3, and by every normalised name and alias.

    Raises ``ValueError`` when two States share an ISO3 code or a normalised name, so an
    ambiguous alias is caught when the data is loaded, not when a mail is misfiled.
    """

    def __init__(self, states: Iterable[State]) -> None:
        self._by_iso3: dict[str, State] = {}
        self._by_name: dict[str, str] = {}
        self._trie = _Node()
        for state in states:
            if state.iso3 in self._by_iso3:
                raise ValueError(f"State {state.iso3} is listed twice")
            self._by_iso3[state.iso3] = state
            for name in state.names:
                self._index(state.iso3, name)

    def _index(self, iso3: str, name: str) -> None:
        key = normalise_name(name)
        if not key:
            raise ValueError(f"{iso3}: name {name!r} is empty once normalised")
        other = self._by_name.get(key)
        if other is not None and other != iso3:
            raise ValueError(f"{iso3}: name {name!r} is also a name of {other} ({key!r})")
        self._by_name[key] = iso3
        node = self._trie
        for token in key.split(" "):
            node = node.children.setdefault(token, _Node())
        node.iso3 = iso3

    def get(self, iso3: str) -> State:
        """The State with this ISO 3166 alpha-3 code; ``KeyError`` if there is none."""
        return self._by_iso3[iso3.upper()]

    def __iter__(self) -> Iterator[State]:
        return iter(self._by_iso3.values())

    def __len__(self) -> int:
        return len(self._by_iso3)

    def __contains__(self, iso3: object) -> bool:
        return isinstance(iso3, str) and iso3.upper() in self._by_iso3

    def lookup(self, name: str) -> State | None:
        """The State whose name or alias is exactly ``name`` once normalised, else None."""
        iso3 = self._by_name.get(normalise_name(name))
        return None if iso3 is None else self._by_iso3[iso3]

    def match_prefix(self, text: str) -> tuple[State, str] | None:
        """The longest name or alias that ``text`` starts with, ending on a word boundary,
        and the words of ``text`` it matched ("Niger to the UN" → Niger, 'Niger';
        "Guinea-Bissau" → Guinea-Bissau, never Guinea). Leading articles are skipped."""
        text = unicodedata.normalize("NFC", text)
        found = self.prefix_span(text, 0)
        if found is None:
            return None
        state, start, end = found
        return state, text[start:end]

    def prefix_span(self, text: str, pos: int) -> tuple[State, int, int] | None:
        """Like ``match_prefix`` for the text from ``pos`` of an NFC ``text``, with the
        start and end of the matched name in ``text``."""
        node = self._trie
        first = 0
        best: tuple[str, int] | None = None
        # Tokens are read lazily: most calls stop at the first word.
        for i, (token, start, end) in enumerate(_tokens(text[pos : pos + _NAME_WINDOW])):
            if i == 0:
                first = start
            child = node.children.get(token)
            if child is None:
                break
            node = child
            if node.iso3 is not None:
                best = (node.iso3, end)
        if best is None:
            return None
        return self._by_iso3[best[0]], pos + first, pos + best[1]

    def find_names(self, text: str) -> list[tuple[State, str]]:
        """Every name in ``text``, longest first at each word, left to right.

        Only for short, already-delimited contexts (the list after "on behalf of"): a bare
        country name anywhere in a mail is not evidence of who sent it.
        """
        text = unicodedata.normalize("NFC", text)
        tokens = list(_tokens(text))
        found: list[tuple[State, str]] = []
        i = 0
        while i < len(tokens):
            hit = self._walk(tokens, i)
            if hit is None:
                i += 1
                continue
            iso3, start, end = hit
            found.append((self._by_iso3[iso3], text[start:end]))
            while i < len(tokens) and tokens[i][1] < end:
                i += 1
        return found

    def _walk(self, tokens: Sequence[tuple[str, int, int]], i: int) -> tuple[str, int, int] | None:
        node = self._trie
        best: tuple[str, int, int] | None = None
        for token, _, end in tokens[i:]:
            child = node.children.get(token)
            if child is None:
                break
            node = child
            if node.iso3 is not None:
                best = (node.iso3, tokens[i][1], end)
        return best


# =============================================================================
# The mission directory
# =============================================================================

# Public mail services and ISPs: anyone can have an address there, so the domain says
# nothing about the sender. A single mission address on such a domain may still be listed.
_PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "ymail.com",
        "rocketmail.com",
        "aol.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "mail.com",
        "email.com",
        "zoho.com",
        "zohomail.com",
        "proton.me",
        "pm.me",
        "tutanota.com",
        "tuta.io",
        "fastmail.com",
        "hushmail.com",
        "web.de",
        "t-online.de",
        "freenet.de",
        "mail.ru",
        "inbox.ru",
        "bk.ru",
        "list.ru",
        "rambler.ru",
        "qq.com",
        "163.com",
        "126.com",
        "sina.com",
        "naver.com",
        "daum.net",
        "rediffmail.com",
        "bluewin.ch",
        "sunrise.ch",
        "hispeed.ch",
        "orange.fr",
        "wanadoo.fr",
        "free.fr",
        "sfr.fr",
        "laposte.net",
        "libero.it",
        "virgilio.it",
        "seznam.cz",
        "wp.pl",
        "o2.pl",
        "interia.pl",
        "terra.com",
        "terra.es",
        "telefonica.net",
        "uol.com.br",
        "bol.com.br",
        "yahoo.com",
    }
)
# Providers present under many country domains: yahoo.fr, hotmail.co.uk, outlook.es…
_PUBLIC_MAIL_LABELS = frozenset(
    {
        "yahoo",
        "hotmail",
        "outlook",
        "live",
        "gmx",
        "yandex",
        "protonmail",
        "windowslive",
    }
)
# The United Nations' own domains (our inbox among them) never identify a State.
_UN_DOMAINS = frozenset({"un.org", "unog.ch", "ungeneva.org"})
# Hosts shared by many missions (ITU's TIES service for Geneva missions).
_SHARED_DOMAINS = frozenset({"ties.itu.int"})


def _suffixes(domain: str) -> Iterator[str]:
    """``a.b.c.d`` → ``a.b.c.d``, ``b.c.d``, ``c.d`` (never a bare top-level domain)."""
    labels = domain.strip(".").split(".")
    for i in range(len(labels) - 1):
        yield ".".join(labels[i:])


def unusable_domain_reason(domain: str) -> str | None:
    """Why a mail domain cannot identify a State (public mail, UN, shared), or None."""
    domain = domain.strip().lower()
    for suffix in _suffixes(domain):
        if suffix in _UN_DOMAINS:
            return f"{suffix} is a United Nations domain"
        if suffix in _SHARED_DOMAINS:
            return f"{suffix} is shared by many missions"
        if suffix in _PUBLIC_MAIL_DOMAINS:
            return f"{suffix} is a public mail service"
    labels = domain.split(".")
    # yahoo.fr, hotmail.co.uk, outlook.com.mx: the provider's label before a (second-level)
    # country suffix.
    for i, label in enumerate(labels[:-1]):
        if label in _PUBLIC_MAIL_LABELS and len(labels) - i - 1 <= 2:
            return f"{'.'.join(labels[i:])} is a public mail service"
    return None


def _domain_of(address: str) -> str:
    return address.strip().strip("<>").lower().rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class MissionDirectory:
    """Known mission addresses and ministry domains, each pointing at an ISO3 code.

    Keys are lowercased on construction. A domain that cannot identify a State (public
    mail, the UN's own, a host shared by missions) raises ``ValueError``; so does an
    address on a UN domain.
    """

    addresses: Mapping[str, str] = field(default_factory=dict)
    domains: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        addresses = {k.strip().lower(): v.upper() for k, v in self.addresses.items()}
        domains = {k.strip().lower().strip("."): v.upper() for k, v in self.domains.items()}
        for domain in domains:
            reason = unusable_domain_reason(domain)
            if reason is not None:
                raise ValueError(f"domain {domain!r} cannot identify a State: {reason}")
        for address in addresses:
            if "@" not in address:
                raise ValueError(f"address {address!r} has no '@'")
            reason = unusable_domain_reason(_domain_of(address))
            if reason is not None and "United Nations" in reason:
                raise ValueError(f"address {address!r} cannot identify a State: {reason}")
        # Frozen dataclass: the normalised copies replace the arguments once, here.
        object.__setattr__(self, "addresses", MappingProxyType(addresses))
        object.__setattr__(self, "domains", MappingProxyType(domains))

    def find(self, address: str) -> tuple[str, str, str] | None:
        """(iso3, 'address' | 'domain', the address or domain that matched), or None."""
        addr = address.strip().strip("<>").lower()
        if not addr:
            return None
        if addr in self.addresses:
            return self.addresses[addr], "address", addr
        for suffix in _suffixes(_domain_of(addr)):
            if suffix in self.domains:
                return self.domains[suffix], "domain", suffix
        return None

    def lookup(self, address: str) -> tuple[str, str] | None:
        """(iso3, 'address' | 'domain'); a subdomain matches its parent domain."""
        found = self.find(address)
        return None if found is None else (found[0], found[1])


# =============================================================================
# The sender's own words: quoted and forwarded parts cut off
# =============================================================================

_SP = r"[ \t\u00a0\u202f]"
_APOS = "['’ʼ]"

# Each test looks at one line (two for a wrapped attribution), so a long body costs
# linear time: a mail is hostile input.
_SEPARATOR_RE = re.compile(
    # -----Original Message----- / -----Message d'origine----- / ----- Forwarded message -----
    r"[ \t>]*-{2,}[ \t]*(?:original message|message d.origine|mensaje original|"
    r"forwarded message|message transf[ée]r[ée]|mensaje reenviado|message original)"
    r"[ \t]*-{2,}"
    r"|[ \t]*(?:begin forwarded message"
    r"|d[ée]but du message (?:r[ée]exp[ée]di[ée]|transf[ée]r[ée])"
    r"|inicio del mensaje reenviado)[ \t]*:",
    re.IGNORECASE,
)
# A header block: "From: …" followed within four lines by Sent/To/Subject/Date…
_HEADER_FROM_RE = re.compile(rf"[ \t*]*(?:From|De|Von){_SP}*:", re.IGNORECASE)
_HEADER_NEXT_RE = re.compile(
    rf"[ \t*]*(?:Sent|To|Date|Subject|Cc|Envoy[ée]|[ÀA]|Objet|Enviado(?:{_SP}+el)?|Para|Asunto"
    rf"|Fecha){_SP}*:",
    re.IGNORECASE,
)
# "On Tue, 5 Sep 2017 at 10:12, CCM <ccm@unog.ch> wrote:", "Le … a écrit :", "El … escribió:"
_ATTRIBUTION_RE = re.compile(
    rf"\W*(?:On|Le|El)\b.*(?:\bwrote|\ba{_SP}+[ée]crit|\bescribi[óo]){_SP}*:{_SP}*$"
)
_ATTRIBUTION_MAX = 400


def _quote_starts(lines: Sequence[str], i: int) -> bool:
    line = lines[i]
    if _SEPARATOR_RE.match(line):
        return True
    if _HEADER_FROM_RE.match(line) and any(_HEADER_NEXT_RE.match(x) for x in lines[i + 1 : i + 5]):
        return True
    if len(line) <= _ATTRIBUTION_MAX and _ATTRIBUTION_RE.match(line):
        return True
    # An attribution wrapped over two lines.
    if i + 1 < len(lines):
        both = f"{line} {lines[i + 1]}"
        if len(both) <= _ATTRIBUTION_MAX and _ATTRIBUTION_RE.match(both):
            return True
    return False


def own_text(body: str) -> str:
    """What the sender wrote: the body up to the first quoted/forwarded part, '>' lines out."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for i in range(len(lines)):
        if _quote_starts(lines, i):
            lines = lines[:i]
            break
    return "\n".join(x for x in lines if not x.lstrip(" \t").startswith(">"))


# =============================================================================
# The rules
# =============================================================================

_OF_EN = r"\s+of\s+"
_OF_FR = rf"\s+(?:(?:de|du|des)\s+|d{_APOS}\s*)"
_OF_ES = r"\s+(?:de|del)\s+"

_MISSION_RE = re.compile(
    r"\b(?:"
    r"(?:(?:Deputy|Alternate)\s+)?Permanent\s+(?:Observer\s+)?"
    r"(?:Mission|Delegation|Representative|Observer)"
    + _OF_EN
    + r"|(?:Mission|D[ée]l[ée]gation)\s+permanente(?:\s+d"
    + _APOS
    + r"\s*observation)?"
    + _OF_FR
    + r"|(?:Repr[ée]sentant|Repr[ée]sentante|Observateur|Observatrice)\s+permanente?"
    r"(?:\s+adjointe?|\s+suppl[ée]ante?)?"
    + _OF_FR
    + r"|Misi[oó]n\s+Permanente(?:\s+de\s+Observaci[oó]n)?"
    + _OF_ES
    + r"|(?:Representante|Observadora?)\s+Permanente(?:\s+(?:Alterno|Alterna|Adjunto|Adjunta))?"
    + _OF_ES
    + r"|Delegaci[oó]n\s+Permanente"
    + _OF_ES
    + r")",
    re.IGNORECASE,
)
# The addressee of a note ("… presents its compliments to the Permanent Mission of X",
# "… renew to the Permanent Mission of X the assurances …") is not its sender.
_ADDRESSEE_RE = re.compile(
    r"(?:compliments\s+(?:to|à)|atentamente\s+a|renew\s+to|renouveler\s+à|reiterar(?:le)?\s+a)"
    rf"\s+(?:(?:the|la|le|el)\s+|l{_APOS}\s*)?$",
    re.IGNORECASE,
)
# The mission is the subject of the sentence: "X … presents its compliments", "X … has the
# honour to", in the same sentence as its name.
_OPENING_RE = re.compile(
    r"\b(?:presents?\s+(?:its|his|her|their)\s+compliments|pr[ée]sente\s+ses\s+compliments"
    r"|saluda\s+(?:muy\s+)?atentamente|ha(?:s|ve)\s+the\s+hono(?:u)?r\s+to"
    r"|a\s+l" + _APOS + r"\s*honneur\s+d|tiene\s+el\s+honor\s+de)",
    re.IGNORECASE,
)
_OPENING_WINDOW = 300
_SENTENCE_BREAK_RE = re.compile(r"\n[ \t]*\n|[.!?](?=\s+[A-ZÀ-Ý])")
# A real note names its mission a handful of times; past this many matches in one text the
# rest is noise (or hostile), and reading it would only cost time.
_MAX_MATCHES = 200

_STATE_PARTY_RE = re.compile(
    r"\b(?:(?:Name\s+of\s+(?:the\s+)?)?State\s+Party"
    rf"|(?:Nom\s+de\s+l{_APOS}\s*)?[ÉE]tat\s+partie"
    r"|(?:Nombre\s+del\s+)?Estado\s+Parte)"
    rf"{_SP}*[:|\t]{_SP}*(?:\r?\n{_SP}*)?",
    re.IGNORECASE,
)
# A heading: the phrase starts a line, perhaps after "List of the", "Composition de la"…
# ("… we thank the delegation of Germany for its presidency" names another State).
# "Permanent Delegation of X" is the mission rule's.
_DELEGATION_RE = re.compile(
    r"^[ \t*#•·\-–]*(?:(?:the|la|el)\s+)?"
    r"(?:(?:(?:List|Composition)\s+of\s+(?:the\s+)?)"
    r"|(?:(?:Liste|Composition)\s+(?:de\s+la\s+|des\s+membres\s+de\s+la\s+))"
    r"|(?:(?:Lista|Composici[oó]n)\s+de\s+(?:la\s+)?))?"
    r"(?:Delegation" + _OF_EN + r"|D[ée]l[ée]gation" + _OF_FR + r"|Delegaci[oó]n" + _OF_ES + r")",
    re.IGNORECASE | re.MULTILINE,
)

_BEHALF_RE = re.compile(
    rf"\b(?:on\s+behalf\s+of\s+|au\s+nom\s+(?:(?:de|du|des)\s+|d{_APOS}\s*)|en\s+nombre\s+(?:de|del)\s+)",
    re.IGNORECASE,
)
# A group, in the first few words after "on behalf of" (State names blanked out first, so
# "United States" or "Estados Unidos Mexicanos" are not "States").
_GROUP_RE = re.compile(
    r"^\W*(?:[^\W\d_]+\W+){0,6}?(?:\d+\s+)?"
    r"(?:groups?|groupes?|grupos?|following|suivant(?:e)?s|siguientes|several|plusieurs|varios|varias"
    r"|countries|pays|pa[ií]ses|states|[ée]tats|estados|members|membres|miembros|(?:co-?)?sponsors"
    r"|coauteurs|copatrocinadores)\b",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"\.\s|;|\n[ \t]*\n")
_BEHALF_WINDOW = 300
_REPLY_SUBJECT_RE = re.compile(r"^\s*(?:re|fw|fwd|tr|rv|aw|wg|ref|réf)\s*:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Mail:
    from_addr: str
    reply_to: tuple[str, ...]
    body: str  # the sender's own words (quotes cut), with the subject unless it is a reply
    attachments: tuple[str, ...]
    registry: StateRegistry
    directory: MissionDirectory

    def texts(self) -> Iterator[tuple[str, str]]:
        """(where, text): the body, then each attachment."""
        yield "the body", self.body
        for i, text in enumerate(self.attachments, start=1):
            yield f"attachment {i}", text


def _phrase(text: str) -> str:
    """A matched phrase for a one-line detail: whitespace folded, ≤ 100 characters."""
    folded = " ".join(text.split())
    return folded if len(folded) <= 100 else folded[:99] + "…"


def _best(evidence: Iterable[Evidence]) -> list[Evidence]:
    """One piece of evidence per State: the strongest (the first among equals)."""
    best: dict[str | None, Evidence] = {}
    for e in evidence:
        if e.target not in best or e.weight > best[e.target].weight:
            best[e.target] = e
    return list(best.values())


def _directory_evidence(
    mail: _Mail, address: str, who: str, rules: tuple[str, str], weights: tuple[float, float]
) -> Evidence | None:
    found = mail.directory.find(address)
    if found is None:
        return None
    iso3, kind, key = found
    name = mail.registry.get(iso3).name_en if iso3 in mail.registry else iso3
    if kind == "address":
        return Evidence(rules[0], f"{who} address {key} ({name})", weights[0], iso3)
    return Evidence(rules[1], f"{who} domain {key} ({name})", weights[1], iso3)


def rule_sender(mail: _Mail) -> list[Evidence]:
    """The From address, or its domain, is listed for a State."""
    e = _directory_evidence(
        mail,
        mail.from_addr,
        "sender",
        ("sender-address", "sender-domain"),
        (W_SENDER_ADDRESS, W_SENDER_DOMAIN),
    )
    return [] if e is None else [e]


def rule_reply_to(mail: _Mail) -> list[Evidence]:
    """A Reply-To address (other than the sender), or its domain, is listed for a State."""
    sender = mail.from_addr.strip().lower()
    found = (
        _directory_evidence(
            mail,
            addr,
            "Reply-To",
            ("reply-to-address", "reply-to-domain"),
            (W_REPLY_TO_ADDRESS, W_REPLY_TO_DOMAIN),
        )
        for addr in mail.reply_to
        if addr.strip().lower() != sender
    )
    return _best(e for e in found if e is not None)


def _mission_mentions(registry: StateRegistry, text: str) -> Iterator[tuple[State, str, bool]]:
    """(State, the phrase, is it a note-verbale opening) for each mission phrase in ``text``."""
    for m in itertools.islice(_MISSION_RE.finditer(text), _MAX_MATCHES):
        if _ADDRESSEE_RE.search(text[max(0, m.start() - 60) : m.start()]):
            continue
        hit = registry.prefix_span(text, m.end())
        if hit is None:
            continue
        state, _, name_end = hit
        after = text[name_end : name_end + _OPENING_WINDOW]
        stop = _SENTENCE_BREAK_RE.search(after)
        if stop is not None:
            after = after[: stop.start()]
        opening = _OPENING_RE.search(after) is not None
        yield state, _phrase(text[m.start() : name_end]), opening


def _mission_rule(mail: _Mail, *, in_body: bool) -> list[Evidence]:
    found: list[Evidence] = []
    for where, text in mail.texts():
        if (where == "the body") != in_body:
            continue
        for state, phrase, opening in _mission_mentions(mail.registry, text):
            rule = "note-verbale-opening" if opening else "mission-name"
            detail = "note-verbale opening" if opening else "mission named"
            if in_body:
                weight = W_OPENING_BODY if opening else W_MISSION_BODY
            else:
                rule = f"attachment-{rule}"
                weight = W_OPENING_ATTACHMENT if opening else W_MISSION_ATTACHMENT
            found.append(Evidence(rule, f"{detail} '{phrase}' in {where}", weight, state.iso3))
    return _best(found)


def rule_body_mission(mail: _Mail) -> list[Evidence]:
    """The body speaks as a mission ("Permanent Mission of X…"), most of all in the opening."""
    return _mission_rule(mail, in_body=True)


def rule_attachment_mission(mail: _Mail) -> list[Evidence]:
    """An attachment speaks as a mission (an attached note verbale)."""
    return _mission_rule(mail, in_body=False)


def _labelled(mail: _Mail, pattern: re.Pattern[str], rule: str, weight: float) -> list[Evidence]:
    found: list[Evidence] = []
    for where, text in mail.texts():
        for m in itertools.islice(pattern.finditer(text), _MAX_MATCHES):
            hit = mail.registry.prefix_span(text, m.end())
            if hit is None:
                continue
            state, _, end = hit
            label = _phrase(text[m.start() : end])
            found.append(Evidence(rule, f"'{label}' in {where}", weight, state.iso3))
    return _best(found)


def rule_state_party_field(mail: _Mail) -> list[Evidence]:
    """An Article 7 cover names the State: "State Party: X", "État partie : X"…"""
    return _labelled(mail, _STATE_PARTY_RE, "state-party-field", W_STATE_PARTY_FIELD)


def rule_delegation_heading(mail: _Mail) -> list[Evidence]:
    """A delegation list's heading: "Delegation of X", "Délégation de X", "Delegación de X"."""
    return _labelled(mail, _DELEGATION_RE, "delegation-heading", W_DELEGATION_HEADING)


RULES: tuple[Callable[[_Mail], list[Evidence]], ...] = (
    rule_sender,
    rule_reply_to,
    rule_body_mission,
    rule_attachment_mission,
    rule_state_party_field,
    rule_delegation_heading,
)


def group_statement(mail: _Mail) -> Evidence | None:
    """A statement made "on behalf of" several States (or a group) belongs to none of them."""
    for where, text in mail.texts():
        for m in itertools.islice(_BEHALF_RE.finditer(text), _MAX_MATCHES):
            window = text[m.end() : m.end() + _BEHALF_WINDOW]
            end = _SENTENCE_END_RE.search(window)
            if end is not None:
                window = window[: end.start()]
            names = mail.registry.find_names(window)
            blanked = window
            for _, name in names:
                blanked = blanked.replace(name, " " * len(name), 1)
            # Counted only as a list right after "on behalf of" ("on behalf of Austria, Chile
            # and Mexico"), not "on behalf of my delegation, I thank Germany and Norway".
            listed = mail.registry.prefix_span(window, 0) is not None
            distinct = sorted({s.iso3 for s, _ in names}) if listed else []
            if len(distinct) >= 2 or _GROUP_RE.search(blanked.split(",", 1)[0]):
                phrase = _phrase(m.group() + window)
                what = f" ({len(distinct)} States named)" if len(distinct) >= 2 else ""
                return Evidence("group-statement", f"'{phrase}' in {where}{what}", 1.0, None)
    return None


# =============================================================================
# Combining and deciding
# =============================================================================


@dataclass(frozen=True, slots=True)
class StateResult:
    """Which State sent a mail, how sure, and why.

    ``iso3`` is None when not sure (the message goes to review); ``confidence`` is then the
    best candidate's score. ``evidence`` holds every rule that fired, ``target`` = the ISO3
    it points at — except ``group-statement``, which vetoes any State and has no target.
    """

    iso3: str | None
    confidence: float
    evidence: tuple[Evidence, ...]
    candidates: tuple[tuple[str, float], ...]  # (iso3, score), best first, score > 0
    reason: str


def _noisy_or(weights: Iterable[float]) -> float:
    miss = 1.0
    for w in weights:
        miss *= 1.0 - w
    return round(1.0 - miss, 4)


def identify_state(
    *,
    from_addr: str,
    reply_to: Sequence[str],
    subject: str,
    body: str,
    attachment_texts: Sequence[str],
    registry: StateRegistry,
    directory: MissionDirectory,
    threshold: float = 0.75,
    sender_distrust: str | None = None,
) -> StateResult:
    """Which State sent this mail, with the evidence; None unless the evidence is clear.

    ``sender_distrust`` says why the sender's address must not count (our mail server saw
    SPF/DKIM/DMARC fail): then only what the mail itself says can name the State.
    """
    distrust: list[Evidence] = []
    if sender_distrust:
        distrust.append(
            Evidence("sender-not-authenticated", f"{from_addr}: {sender_distrust}", 0.0)
        )
        from_addr, reply_to = "", ()
    own = own_text(unicodedata.normalize("NFC", body))
    if subject.strip() and not _REPLY_SUBJECT_RE.match(subject):
        own = f"{unicodedata.normalize('NFC', subject.strip())}\n\n{own}"
    mail = _Mail(
        from_addr=from_addr,
        reply_to=tuple(reply_to),
        body=own,
        attachments=tuple(unicodedata.normalize("NFC", t) for t in attachment_texts if t),
        registry=registry,
        directory=directory,
    )
    evidence = [e for rule in RULES for e in rule(mail)]
    by_state: dict[str, list[Evidence]] = {}
    for e in evidence:
        if e.target is not None:
            by_state.setdefault(e.target, []).append(e)
    scores = {iso3: _noisy_or(e.weight for e in found) for iso3, found in by_state.items()}
    candidates = tuple(
        sorted(
            ((iso3, score) for iso3, score in scores.items() if score > 0),
            key=lambda c: (-c[1], c[0]),
        )
    )
    # Strongest first, grouped by State in candidate order.
    rank = {iso3: i for i, (iso3, _) in enumerate(candidates)}
    ordered = sorted(evidence, key=lambda e: (rank.get(e.target or "", len(rank)), -e.weight))
    ordered += distrust
    sender_note = f" (sender not trusted: {sender_distrust})" if sender_distrust else ""
    sender_domain = _domain_of(from_addr)
    unusable = unusable_domain_reason(sender_domain) if sender_domain else None
    if unusable is not None and not any(e.rule.startswith("sender-") for e in evidence):
        sender_note = f" (sender: {unusable})"

    group = group_statement(mail)
    if group is not None:
        named = ", ".join(f"{c} {s:.2f}" for c, s in candidates[:3])
        return StateResult(
            iso3=None,
            confidence=candidates[0][1] if candidates else 0.0,
            evidence=(*ordered, group),
            candidates=candidates,
            reason=f"group statement on behalf of several States: {group.detail}"
            + (f"; candidates {named}" if named else ""),
        )
    if not candidates:
        return StateResult(None, 0.0, tuple(ordered), (), "no evidence" + sender_note)

    top_iso3, top = candidates[0]
    second = candidates[1][1] if len(candidates) > 1 else 0.0
    if len(candidates) > 1 and second >= RIVAL_LIMIT:
        named = ", ".join(f"{c} {s:.2f}" for c, s in candidates if s >= RIVAL_LIMIT)
        return StateResult(None, top, tuple(ordered), candidates, f"two strong candidates: {named}")
    why = " and ".join(e.detail for e in sorted(by_state[top_iso3], key=lambda e: -e.weight))
    if top < threshold:
        return StateResult(
            None,
            top,
            tuple(ordered),
            candidates,
            f"weak evidence: {top_iso3} {top:.2f} < {threshold:.2f} ({why}){sender_note}",
        )
    return StateResult(top_iso3, top, tuple(ordered), candidates, why + sender_note)
