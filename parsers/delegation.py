"""Who a State sends to a meeting: the delegation list, read from tables or from text.

Missions send their delegations in many shapes, in English, French or Spanish; this module
reads the ones seen in practice:

* a **table** (DOCX table, spreadsheet sheet, CSV) whose header row names its columns
  ("Name / Nom / Nombre", "Title / Fonction / Cargo", "Role", "E-mail / Courriel / Correo"…)
  in any order, with the name whole or split ("Nom" + "Prénom", "Nombre" + "Apellidos"), and
  role rows ("Alternates") between the people; a table without a header row, and a
  one-column list, are read as lines;
* **text** with role headings over one person a line ("Head of Delegation:" / "H.E. Mr X,
  Ambassador"), a person spread over a few lines (name, then function, then e-mail), "Role:
  Name, Title" on one line, and "Name: … / Title: …" blocks; tab-separated lines with a header
  (a DOCX table flattened to text) are read as a table.

A line is a person when it starts with an honorific ("H.E. Mr", "S.E. Mme", "Excmo. Sr.") or
has an ALL CAPS surname ("DUPONT Jean"); under a role heading or an "as follows:" line, two or
more capitalised words that are not title or office words are enough. Everything else in a
note verbale (the compliments, "avails itself", addresses, "Palais des Nations") is not a
person; such prose also ends the list.

"Conseiller" / "Consejero" is a rank as often as a role: it is the role *adviser* only as a
heading, a "Role" cell or a "Role: name" prefix; after a name ("M. X, Conseiller") it is the
title. A trailing "Adviser" or "Expert" stays in the title too, and is the role only where no
heading gave one; a trailing "Head of Delegation" or "Alternate" is always the role.

Everything is linear in the input and bounded (``MAX_*``); odd input gives warnings, never an
exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from parsers.text import (
    MAX_CELL,
    MAX_CHARS,
    MAX_COLUMNS,
    MAX_ROWS,
    Table,
)
from parsers.text import bound as _bound
from parsers.text import clean as _clean
from parsers.text import fold as _fold
from parsers.text import squash as _squash

MAX_DELEGATES = 200
MAX_LINES = 10_000
MAX_LINE = 400  # a longer line is prose, never a person
MAX_WARNINGS = 25
_HEADER_ROWS = 10  # a header row is looked for among the first rows of a table

ROLES = ("head", "alternate", "adviser", "member", "expert")


@dataclass(frozen=True, slots=True)
class Delegate:
    name: str
    honorific: str
    title: str
    role: str  # one of ROLES, or '' when the list does not say
    organisation: str
    email: str


@dataclass(frozen=True, slots=True)
class Roster:
    delegates: tuple[Delegate, ...]
    meeting: str | None
    source: str
    warnings: tuple[str, ...]


def _words(regex: str) -> re.Pattern[str]:
    return re.compile(r"(?:" + regex + r")")


# --- bounds ------------------------------------------------------------------------------------


# --- vocabulary --------------------------------------------------------------------------------

_DELEG = r"(?:delegation|delegacion)"
# A role as a heading, a "Role" cell or a "Role:" prefix (folded text, whole match).
_ROLE_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "alternate",
        _words(
            r"(?:deputy|vice)[- ]?(?:head|chief) of (?:the )?"
            + _DELEG
            + r"|(?:chef|cheffe) adjointe? de (?:la )?delegation|vice-?(?:chef|cheffe) de (?:la )?"
            r"delegation|jef[ea] adjunt[oa] de (?:la )?delegacion|(?:vice-?)?jef[ea] adjunt[oa]"
            r"|alternate (?:heads?(?: of (?:the )?delegation)?|representatives?|delegates?"
            r"|members?)|deputy heads?|dhod"
            r"|alternates?|(?:representant(?:e)?s? |delegue(?:e)?s? )?suppleant(?:e)?s?"
            r"|(?:representantes? |delegad[oa]s? )?(?:suplentes?|altern[oa]s?)"
        ),
    ),
    (
        "head",
        _words(
            r"(?:head|chief|leader) of (?:the )?delegation|delegation leader"
            r"|(?:chef|cheffe) de (?:la )?delegation|jef[ea] de (?:la )?delegacion"
            r"|president[ea]? de (?:la )?delegacion|head|chef|cheffe|jef[ea]|hod"
            r"|representatives?|representant(?:e)?s?|representantes?"
        ),
    ),
    (
        "adviser",
        _words(
            r"advis[eo]rs?|conseill(?:er|ere)s?|asesor(?:a|es|as)?|consejer(?:o|a|os|as)"
            r"|(?:advis[eo]rs?|conseill(?:er|ere)s?|asesor(?:a|es|as)?) (?:to|of|de) (?:the |la )?"
            + _DELEG
        ),
    ),
    (
        "member",
        _words(
            r"(?:other )?members?(?: of (?:the )?delegation)?|(?:autres )?membres?(?: de (?:la )?"
            r"delegation)?|(?:otros )?miembros?(?: de (?:la )?delegacion)?"
            r"|delegates?|delegue(?:e)?s?|delegad(?:o|a|os|as)"
        ),
    ),
    ("expert", _words(r"experts?|expertes?|expert[oa]s?")),
)
# After a name ("M. X, Conseiller") only words that are never a rank set the role.
_TRAILING_ROLE_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (_ROLE_WORDS[0][0], _ROLE_WORDS[0][1]),
    (
        "head",
        _words(
            r"(?:head|chief|leader) of (?:the )?delegation|delegation leader"
            r"|(?:chef|cheffe) de (?:la )?delegation|jef[ea] de (?:la )?delegacion"
            r"|president[ea]? de (?:la )?delegacion"
        ),
    ),
    ("adviser", _words(r"advis[eo]rs?|asesor(?:a|es|as)?")),
    (
        "member",
        _words(
            r"members? of (?:the )?delegation|membres? de (?:la )?delegation"
            r"|miembros? de (?:la )?delegacion|delegates?|delegue(?:e)?s?|delegad(?:o|a|os|as)"
        ),
    ),
    _ROLE_WORDS[4],
)
# Trailing role words that are also job titles stay in the title.
_TITLE_LIKE_ROLES = frozenset({"adviser", "expert"})

# Column headers (folded, whole match on the cell or on one of its "/" parts).
_COLUMN_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "honorific",
        _words(
            r"salutations?|civilite|titre de civilite|tratamiento|honorifics?|prefix"
            r"|courtesy title|mr\.?|ms\.?|mrs\.?|m\.|mme|sr\.?|sra\.?"
        ),
    ),
    (
        "given",
        _words(r"first names?|given names?|forenames?|prenoms?|nombres? de pila|primer nombre"),
    ),
    (
        "family",
        _words(
            r"surnames?|last names?|family names?|noms? de famille|apellidos?"
            r"|primer apellido|segundo apellido"
        ),
    ),
    (
        "name",
        _words(
            r"names?|full names?|noms?|nom complet|noms? et prenoms?|prenoms? et noms?"
            r"|nom, prenom|nombres?|nombres? completos?|nombres? y apellidos?"
            r"|apellidos? y nombres?|name and surname"
            r"|names? of (?:the )?(?:delegates?|participants?)"
            r"|noms? des? (?:delegues?|participants?)"
            r"|nombres? de (?:los )?(?:delegados|participantes)"
            r"|participants?|participantes?|delegates?|delegues?|delegad[oa]s?"
        ),
    ),
    (
        "role",
        _words(
            r"roles?|roles? (?:in|within) (?:the )?delegation|delegation roles?|capacity|status"
            r"|categor(?:y|ies)|qualite|role (?:au sein de|dans) la delegation|categories?"
            r"|rol|rol en la delegacion|calidad|categorias?|position in (?:the )?delegation"
            r"|fonction (?:au sein de|dans) la delegation|funcion en la delegacion"
            r"|cargo en la delegacion"
        ),
    ),
    (
        "title",
        _words(
            r"titles?|functions?|positions?|designations?|ranks?|posts?|job titles?"
            r"|official (?:titles?|functions?|positions?)|titles? ?/ ?functions?|fonctions?|titres?"
            r"|postes?|grades?|rangs?|fonction officielle|cargos?|funcion(?:es)?|puestos?|rangos?"
        ),
    ),
    (
        "organisation",
        _words(
            r"organi[sz]ations?|institutions?|ministry|ministries|department|agency|affiliation"
            r"|entity|office|organisme|ministere|departement|entite|service|administration"
            r"|organismo|ministerio|institucion|dependencia|entidad|organizacion|agencia"
            r"|ministry ?/ ?organi[sz]ation|organi[sz]ation ?/ ?ministry|employer|employeur"
        ),
    ),
    (
        "email",
        _words(
            r"e-? ?mails?(?: address(?:es)?)?|courriels?"
            r"|adresses? (?:electronique|e-?mail|courriel)|mel|correos?(?: electronicos?)?"
            r"|correo-?e|e-?mail ?/ ?courriel"
        ),
    ),
)

_HONORIFIC_TOKENS = tuple(
    sorted(
        {
            "his excellency",
            "her excellency",
            "son excellence",
            "su excelencia",
            "h. e.",
            "h.e.",
            "h.e",
            "s. e.",
            "s.e.",
            "s.e",
            "s.e.m.",
            "excmo.",
            "excma.",
            "excmo",
            "excma",
            "mr.",
            "mr",
            "mrs.",
            "mrs",
            "ms.",
            "ms",
            "miss",
            "mx",
            "m.",
            "mme.",
            "mme",
            "mlle",
            "monsieur",
            "madame",
            "mademoiselle",
            "sr.",
            "sra.",
            "srta.",
            "sr",
            "sra",
            "srta",
            "senor",
            "senora",
            "senorita",
            "dr.",
            "dr",
            "dra.",
            "dra",
            "prof.",
            "professor",
            "professeur",
            "profesor",
            "profesora",
            "pr",
            "lic.",
            "licda.",
            "licdo.",
            "ing.",
            "mtro.",
            "mtra.",
            "sir",
            "dame",
            "hon.",
            "hon",
            "the hon.",
            "honourable",
            "honorable",
            "the honourable",
            "rt. hon.",
            "rt hon",
            "amb.",
            "ambassador",
            "ambassadeur",
            "ambassadrice",
            "embajador",
            "embajadora",
            "col.",
            "colonel",
            "coronel",
            "lt. col.",
            "lt col",
            "lieutenant colonel",
            "lieutenant-colonel",
            "teniente coronel",
            "maj.",
            "major",
            "capt.",
            "captain",
            "capitaine",
            "capitan",
            "gen.",
            "general",
            "brig. gen.",
            "brigadier general",
            "brigadier",
            "cdr.",
            "commander",
            "commandant",
            "comandante",
            "lt.",
            "lieutenant",
            "teniente",
            "adm.",
            "admiral",
            "amiral",
            "almirante",
            # Spanish "D." / "Dña." (Don / Doña); "Don" only after another honorific (below),
            # as it is also an English given name.
            "d.",
            "don",
            "dona",
            "dna.",
            "dna",
        },
        key=len,
        reverse=True,
    )
)
_LATER_ONLY = frozenset({"don"})
# Honorifics that only ever open a name: a comma before one starts the next person
# ("Ms A Smith, Mr B Jones"), where "Ambassador" after a comma is a title.
_COURTESY = re.compile(
    r"(?:h\. ?e\.|s\. ?e\.|his excellency|her excellency|son excellence|excm[oa]\.?|mrs?\.?|ms\.?"
    r"|m\.|mme\.?|mlle|sra?\.?|srta\.?|dna\.|dra?\.?|prof\.)(?![a-z])"
)


def _alternatives(tokens: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"(?:" + "|".join(map(re.escape, tokens)) + r")(?![a-z])")


_FIRST_HONORIFIC = _alternatives(t for t in _HONORIFIC_TOKENS if t not in _LATER_ONLY)
_LATER_HONORIFIC = _alternatives(_HONORIFIC_TOKENS)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PARTICLES = _wordset(
    "de del della di da das do dos du des van von der den ter ten y e i la le las los el al"
    " bin binti bint ibn ben zu af av st st. mac"
)
# Words of titles, offices, addresses and letters: a run of capitalised words holding one is
# not a name ("Permanent Representative", "Implementation Support Unit", "Best Regards").
_NOT_NAME = _wordset(
    """
    ambassador ambassadeur ambassadrice embajador embajadora counsellor counselor conseiller
    conseillere consejero consejera secretary secretaire secretario secretaria attache attachee
    agregado agregada director directeur directrice directora minister ministre ministro ministra
    deputy adjoint adjointe adjunto adjunta head chef cheffe jefe jefa officer adviser advisor
    asesor asesora expert experte experto experta representative representant representante
    permanent permanente charge encargado encargada affaires negocios chief senior principal
    assistant assistante asistente coordinator coordinateur coordinatrice coordinador
    coordinadora specialist specialiste especialista analyst analyste analista intern stagiaire
    pasante legal juridique juridico juridica first second third premier premiere deuxieme
    troisieme primer primera segundo segunda tercer tercera desk political politique politico
    military militaire militar defence defense defensa disarmament desarmement desarme
    mission ministry ministere ministerio department departement departamento embassy ambassade
    embajada delegation delegacion office bureau oficina agency agence agencia division unit
    unite unidad section seccion service servicio government gouvernement gobierno republic
    republique republica kingdom royaume reino state etat estado states etats estados parties
    partie partes party convention convencion meeting reunion conference conferencia geneva
    geneve ginebra switzerland suisse suiza palais nations united unies unidas support
    implementation secretariat cluster munitions municiones armes note verbale verbal annex
    annexe anexo page tel fax phone email mail courriel correo kind best regards sincerely
    yours dear thank thanks cordialement atentamente saludos ref subject objet asunto date fecha
    list liste lista composition composicion total name nom nombre title fonction cargo role rol
    organisation organization avenue rue route chemin street calle case postale box floor etage
    piso affairs foreign exteriores etrangeres relaciones international internationale
    internacional national nacional control arms armements armamentos member members membre
    membres miembro miembros alternate alternates suppleant suppleante suplente alterno alterna
    representatives delegates delegue delegado delegada participants participant participantes
    excellency excellence excelencia attention atencion
    """
)

_ORG_STARTS = _words(
    r"(?:the |la |le |l'|el |les |los )?(?:ministry|ministere|ministerio|permanent mission"
    r"|mission permanente|mision permanente|permanent delegation|delegation permanente"
    r"|delegacion permanente|mission of|embassy|ambassade|embajada|department|departement"
    r"|departamento|directorate|direction|direccion|division|office|bureau|oficina|agency"
    r"|agence|agencia|secretariat|secretaria de (?:relaciones|estado|la defensa|defensa|marina)"
    r"|armed forces|forces armees|fuerzas armadas"
    r"|army|navy|air force|armee|ejercito|armada|national authority|autorite nationale"
    r"|autoridad nacional|national commission|commission nationale|comision nacional"
    r"|national (?:centre|center|institute)|centre national|centro nacional|commission"
    r"|comision|institute|institut|instituto|presidency|presidence|presidencia|government"
    r"|gouvernement|gobierno|federal|foreign office|university|universite|universidad|mfa|mod"
    r"|mofa|cabinet|gabinete|authority|autorite|autoridad|parliament|parlement|parlamento"
    r"|senate|senat|senado|service|servicio|unit of|unite de|unidad de|police|policia)\b"
)
_TITLE_STARTS = _words(
    r"(?:ambassador|ambassadeur|ambassadrice|embajador|counsellor|counselor|conseill|consejer"
    r"|secretary|secretaire|secretari|attache|agregad|director|directeur|directrice|minister"
    r"|ministre|ministro|ministra|deputy|head|chef|jef[ea]|advis[eo]r|asesor|expert|officer"
    r"|representative|representant|first|second|third|premier|premiere|deuxieme|troisieme"
    r"|primer|segund|tercer|charge|chief|senior|legal|special|assistant|coordinat)"
)

_BOILERPLATE = re.compile(
    r"presents? (?:its|her|his) compliments|presente ses compliments|saluda (?:muy )?atentamente"
    r"|has the hono(?:u)?r|a l'honneur|tiene el honor|avails itself|saisit cette occasion"
    r"|se vale de|se prevale|aprovecha (?:la|esta) (?:oportunidad|ocasion)|renew(?:s)? to"
    r"|renouveler|reiterar|reitera|highest consideration|haute consideration|alta consideracion"
    r"|distinguida consideracion|palais des nations|ch-?\s?1211|avenue de la paix|case postale"
    r"|p\.? ?o\.? box|implementation support unit|unite d'appui|dependencia de apoyo"
    r"|secretariat of the|secretariat de la|secretaria de la|note verbale|nota verbal"
    r"|please find|veuillez trouver|ci-joint|se adjunta|enclosed|attached|kind regards"
    r"|best regards|yours sincerely|cordialement|dear (?:sir|madam|colleague)|^to:|^from:|^cc:"
    r"|^subject:|^objet ?:|^asunto:|^re:"
)
# "… will be composed as follows:": a list of people comes next, roles unknown.
_LIST_INTRO = re.compile(
    r"(?:as follows|comme suit|ci-apres|siguiente|a continuacion|composed of|composee? de"
    r"|integrada por|conformada por|compuesta por|composition|composicion|delegation|delegacion"
    r"|delegates|delegues|delegados|participants|participantes)[^:]{0,60}:$"
)
_NUMBERING = re.compile(
    r"^\s*(?:[-•*·▪◦–—>]+\s*|\(?\d{1,3}[.)]?(?=\s)\s*|\(?\d{1,3}[.)]\s*|\(?[ivx]{1,4}[.)]\s+"
    r"|\(?[a-h]\)\s*)",
    re.IGNORECASE,
)
_EMAIL = re.compile(
    r"(?:mailto:)?([A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,6})"
)
_EMAIL_LABEL = re.compile(
    r"(?<![a-z])(?:e-? ?mail|courriel|correo(?: electronico)?|adresse electronique|mel)"
    r"(?![a-z])\s*:?"
)
_PHONE = re.compile(
    r"(?:(?<![a-z])(?:tel|tfno|telephone|telefono|phone|fax|mobile|mob|cell|portable|movil"
    r"|celular)\.?\s*:?\s*)?\+?\(?\d[\d ()./-]{6,24}\d"
)
_PARENS = re.compile(r"\(([^()]{2,60})\)")
_SPLIT = re.compile(r"\t|\s*[,;|]\s*|\s+[-–—]\s+|\s*[–—]\s*")
_LABEL = re.compile(r"^([^:\t]{1,60}?)\s*(?::|\t|\s[-–—]\s)\s*(\S.*)?$")


def _role_of(
    text: str,
    table: tuple[tuple[str, re.Pattern[str]], ...] = _ROLE_WORDS,
    *,
    heading: bool = False,
) -> str:
    """The role a whole phrase names ('' if none); ``text`` in any case and accents.

    A heading may name the delegation too: "Head of the Delegation of France".
    """
    folded = _squash(_fold(text)).strip(" :.*-")
    if not folded or len(folded) > 80:
        return ""
    for role, pattern in table:
        if pattern.fullmatch(folded):
            return role
    if heading and "delega" in folded:
        for role, pattern in table:
            match = pattern.match(folded)
            if match and _OF_DELEGATION.match(folded, match.end()):
                return role
    return ""


_OF_DELEGATION = re.compile(r" (?:of|de|del|d'|to|a|au|pour|para|for|in|en|within|au sein) ")


def _role_in(text: str) -> str:
    """The role a "Role" cell names, also inside longer words ("Head of the Delegation (HoD)")."""
    role = _role_of(text)
    if role:
        return role
    folded = _squash(_fold(text))[:MAX_CELL]
    for role, pattern in _ROLE_WORDS:
        if re.search(r"(?<![a-z])" + pattern.pattern + r"(?![a-z])", folded):
            return role
    return ""


def _column_kind(cell: str) -> str:
    folded = _squash(re.sub(r"[*#:()\[\].]+$|^[*#]+", "", _squash(_fold(cell))))
    if not folded or len(folded) > 60:
        return ""
    parts = [folded, *(_squash(p) for p in re.split(r"[/|\n]|\s-\s", folded))]
    for part in parts:
        for kind, pattern in _COLUMN_WORDS:
            if pattern.fullmatch(part.strip(" .:*")):
                return kind
    return ""


# --- one person --------------------------------------------------------------------------------


def _split_honorific(text: str) -> tuple[str, str]:
    """("H.E. Mr", "Jean Dupont") from "H.E. Mr Jean Dupont"; ("", text) without one."""
    folded = _fold(text)
    pos, size = 0, len(text)
    parts: list[str] = []
    while pos < size and len(parts) < 5:
        while pos < size and text[pos] in " ,":
            pos += 1
        match = (_LATER_HONORIFIC if parts else _FIRST_HONORIFIC).match(folded, pos)
        if not match:
            break
        parts.append(text[pos : match.end()])
        pos = match.end()
    if not parts:
        return "", text.strip()
    return _squash(" ".join(parts)), text[pos:].strip(" ,.:")


def _is_caps(token: str) -> bool:
    letters = [c for c in token if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


def _caps_name(name: str) -> bool:
    """An ALL CAPS surname beside a name in ordinary case: "DUPONT Jean", "Jean-Luc DE LA ROSA"."""
    tokens = [t for t in name.split() if _fold(t) not in _PARTICLES]
    return any(_is_caps(t) for t in tokens) and any(not _is_caps(t) for t in tokens)


def _name_like(name: str, *, honorific: bool) -> bool:
    tokens = name.split()
    if not tokens or len(tokens) > 7 or len(name) > 80:
        return False
    if not honorific and len(tokens) < 2:
        return False
    words = common = 0
    for token in tokens:
        bare = token.strip(".,'()")
        folded = _fold(bare)
        if not bare or folded in _PARTICLES:
            continue
        if not all(c.isalpha() or c in "-'." for c in bare):
            return False
        first = bare[2] if folded[:2] in ("d'", "l'", "o'") and len(bare) > 2 else bare[0]
        if not first.isupper():
            return False
        words += 1
        if folded.rstrip(".") in _NOT_NAME:
            common += 1
    if not words:
        return False
    return common < words if honorific else common == 0


def _take_email(text: str) -> tuple[str, str]:
    """``text`` without its e-mail addresses (and their label), and the first address."""
    found = _EMAIL.search(text)
    if not found:
        return text, ""
    email = found.group(1).strip(".'")
    text = _EMAIL.sub(" ", text)
    folded = _fold(text)
    for match in reversed(list(_EMAIL_LABEL.finditer(folded))):
        text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end() :]
    return re.sub(r"[<>\[\]]|\(\s*\)", " ", text), email


def _drop_phones(text: str) -> str:
    folded = _fold(text)
    spans = [m.span() for m in _PHONE.finditer(folded)]
    for start, end in reversed(spans):
        text = text[:start] + " " + text[end:]
    return text


def _segments(text: str) -> list[str]:
    pieces = (p.strip(' .:;-–—*•"') for p in _SPLIT.split(text))
    return [p for p in pieces if p]


@dataclass(frozen=True, slots=True)
class _Described:
    title: str
    organisation: str
    role: str


def _describe(segments: Sequence[str], role: str) -> _Described:
    """Title, organisation and role from what follows a name ("Director, Ministry of X")."""
    titles: list[str] = []
    offices: list[str] = []
    in_office = False
    for segment in segments:
        folded = _fold(segment)
        said = _role_of(segment, _TRAILING_ROLE_WORDS)
        if said:
            if said not in _TITLE_LIKE_ROLES:
                role = said  # "Head of Delegation", "Alternate": always the role
            else:
                role = role or said  # "Adviser": the heading's role stands, if there is one
                titles.append(segment)
            continue
        if _ORG_STARTS.match(folded):
            in_office = True
        elif in_office and _TITLE_STARTS.match(folded):
            in_office = False
        (offices if in_office else titles).append(segment)
    return _Described(", ".join(titles), ", ".join(offices), role)


@dataclass(frozen=True, slots=True)
class _Pieces:
    honorific: str
    name: str
    rest: tuple[str, ...]
    email: str
    role: str  # from "(Head of Delegation)" in the line


def _pieces(line: str) -> _Pieces:
    text, email = _take_email(line)
    text = _drop_phones(text)
    role = ""
    for match in reversed(list(_PARENS.finditer(text))):
        said = _role_of(match.group(1))
        if said:
            role = role or said
            text = text[: match.start()] + "," + text[match.end() :]
    segments = _segments(text)
    if not segments:
        return _Pieces("", "", (), email, role)
    honorific, name = _split_honorific(segments[0])
    rest = segments[1:]
    # "DUPONT, Jean, Counsellor": a comma between the surname and the given name.
    if (
        rest
        and len(name.split()) == 1
        and _is_caps(name)
        and _name_like(rest[0], honorific=True)
        and len(rest[0].split()) <= 3
        and not _is_caps(rest[0])
    ):
        name, rest = f"{name} {rest[0]}", rest[1:]
    return _Pieces(honorific, _squash(name), tuple(rest), email, role)


def _person(line: str, role: str, *, loose: bool) -> Delegate | None:
    """The person on ``line``, or None when it is not a person's line."""
    pieces = _pieces(line)
    if not pieces.name:
        return None
    strong = bool(pieces.honorific) or _caps_name(pieces.name)
    if not (strong or loose) or not _name_like(pieces.name, honorific=bool(pieces.honorific)):
        return None
    described = _describe(pieces.rest, pieces.role or role)
    return Delegate(
        name=pieces.name,
        honorific=pieces.honorific,
        title=described.title,
        role=described.role,
        organisation=described.organisation,
        email=pieces.email,
    )


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


# A line that ends on one of these words goes on in the next line ("… auprès de la" /
# "Conférence du désarmement"): the two are one title, not two.
_RUNS_ON = _wordset(
    "of the to and for at on in de la le les du des et pour aupres a en d' l' del y para ante"
    " con el los las"
)


def _extend(person: Delegate, line: str) -> Delegate | None:
    """``person`` with what a line under their name adds (function, office, e-mail), or None."""
    text, email = _take_email(line)
    text = _drop_phones(text)
    segments = _segments(text)
    if not segments:
        return replace(person, email=person.email or email) if email else None
    if len(text.split()) > 14 or any(c.isdigit() for c in text):
        return None
    last = person.organisation or person.title
    words = _fold(last).split()
    if words and words[-1] in _RUNS_ON:
        joined = f"{last} {_squash(text).strip(' ,;')}"
        field = "organisation" if person.organisation else "title"
        return replace(person, **{field: joined}, email=person.email or email)
    if not segments[0][0].isupper():
        return None  # "to be confirmed", a sentence: not a title
    described = _describe(segments, person.role)
    return replace(
        person,
        title=_join(person.title, described.title),
        organisation=_join(person.organisation, described.organisation),
        role=described.role,
        email=person.email or email,
    )


# --- text --------------------------------------------------------------------------------------


def _heading(line: str) -> str | None:
    """The role a heading line opens ('' for "as follows:"), or None for any other line."""
    text = _NUMBERING.sub("", line, count=1).strip()
    if not text or "\t" in text:
        return None
    if len(text) <= 80:
        role = _role_of(text.rstrip(":").strip(), heading=True)
        if role:
            return role
    if _LIST_INTRO.search(_squash(_fold(text))):
        return ""
    return None


# A singular rank under a name is that person's title, not a heading: "Mr Z" / "Adviser".
_RANK_LINE = re.compile(
    r"(?:legal |special |technical |military )?(?:advis[eo]r|conseill(?:er|ere)|asesora?"
    r"|consejer[oa]|experte?|expert[oa])"
)


def _people_on_line(text: str) -> list[str]:
    """ "Ms Y, Counsellor; Mr Z, First Secretary" or "Ms A Smith, Mr B Jones": one piece a
    person, cut before each honorific that follows a ";" or a ","."""
    if ";" not in text and "," not in text:
        return [text]
    folded = _fold(text)
    cuts = [
        match.end()
        for match in re.finditer(r"[;,]\s*", folded)
        if _COURTESY.match(folded, match.end())
    ]
    if not cuts:
        return [text]
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return [p.strip(" ;,") for p in pieces if p.strip(" ;,")]


@dataclass(frozen=True, slots=True)
class _Found:
    delegates: tuple[Delegate, ...]
    warnings: tuple[str, ...]


class _Reader:
    """Reads one source line by line; its state is where in the list we are."""

    __slots__ = ("delegates", "last", "role", "touching", "warnings", "where")

    def __init__(self, where: str) -> None:
        self.where = where
        self.delegates: list[Delegate] = []
        self.warnings: list[str] = []
        self.role: str | None = None  # None: not in a list; '' a list of unknown roles
        self.last: int | None = None  # the person later lines may add to
        self.touching = False  # the line before was that person's (no blank line between)

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def add(self, person: Delegate) -> None:
        self.delegates.append(person)
        self.last = len(self.delegates) - 1
        self.touching = True

    def update(self, person: Delegate) -> None:
        if self.last is not None:
            self.delegates[self.last] = person
            self.touching = True

    def lines(self, lines: Sequence[str]) -> None:
        if len(lines) > MAX_LINES:
            self.warn(f"{self.where}: only the first {MAX_LINES} lines read")
        start = 0
        for index, raw in enumerate(lines[:MAX_LINES]):
            tabbed = "\t" in raw and bool(raw.strip())
            if not tabbed:
                if start < index:
                    self.tab_block(lines[start:index], start + 1)
                start = index + 1
                self.line(raw, index + 1)
        if start < min(len(lines), MAX_LINES):
            self.tab_block(lines[start:MAX_LINES], start + 1)

    def tab_block(self, block: Sequence[str], first: int) -> None:
        """Tab-separated lines: a flattened table when a header row names the columns."""
        rows = tuple(tuple(cell.strip() for cell in line.split("\t")) for line in block)
        if _find_header(rows) is not None:
            found = _read_table(rows, self.where)
            for person in found.delegates:
                self.add(person)
            for warning in found.warnings:
                self.warn(warning)
            self.role, self.last, self.touching = None, None, False
            return
        for offset, line in enumerate(block):
            self.line(line, first + offset)

    def line(self, raw: str, number: int) -> None:
        line = _squash_keep_tabs(_clean(raw))
        if not line:
            self.touching = False
            return
        if len(line) > MAX_LINE:
            # A paragraph: it may still end on "… will be composed as follows:".
            intro = _LIST_INTRO.search(_squash(_fold(line[-120:])))
            self.role, self.last, self.touching = ("" if intro else None), None, False
            return
        folded = _fold(line)
        text = _NUMBERING.sub("", line, count=1).strip()
        heading = _heading(line)
        if heading is not None and not (
            self.touching and not text.endswith(":") and _RANK_LINE.fullmatch(_squash(folded))
        ):
            self.role, self.last, self.touching = heading, None, False
            return
        if self.labelled(text, number):
            return
        if _BOILERPLATE.search(folded):
            self.role, self.last, self.touching = None, None, False
            return
        people = [
            _person(p, self.role or "", loose=self.role is not None) for p in _people_on_line(text)
        ]
        if people and all(people):
            for person in people:
                if person is not None:
                    self.add(person)
            return
        if self.last is not None and self.touching:
            extended = _extend(self.delegates[self.last], text)
            if extended is not None:
                self.update(extended)
                return
        if self.role is not None:
            if len(line.split()) > 10:
                self.role, self.last = None, None  # prose: the list has ended
            elif not any(c.isdigit() for c in line):
                self.warn(f'line {number} of {self.where} not understood: "{line[:80]}"')
        self.touching = False

    def labelled(self, text: str, number: int) -> bool:
        """ "Head of Delegation: Mr X" or "Name: X" / "Title: Y"; True when the line was one."""
        match = _LABEL.match(text)
        if not match:
            return False
        label, value = match.group(1).strip(), (match.group(2) or "").strip()
        if not value:
            return False
        role = _role_of(label, heading=True)
        if role:
            found = [_person(p, role, loose=True) for p in _people_on_line(value)]
            if not all(found):
                self.warn(f'line {number} of {self.where}: no name after "{label}": "{value[:60]}"')
                self.touching = False
            for person in found:
                if person is not None:
                    self.add(replace(person, role=role) if person.role != role else person)
            return True
        kind = _column_kind(label)
        if not kind:
            return False
        if kind in ("name", "given", "family"):
            person = _table_person({kind: value}, self.role or "")
            if person is None:
                return False
            previous = self.delegates[self.last] if self.last is not None else None
            if (
                kind in ("given", "family")
                and self.touching
                and previous is not None
                and len(previous.name.split()) == 1
            ):
                self.update(replace(previous, name=f"{previous.name} {person.name}"))
            else:
                self.add(person)
            return True
        if self.last is None:
            return False
        person = self.delegates[self.last]
        if kind == "email":
            self.update(replace(person, email=_take_email(value)[1] or person.email))
        elif kind == "title":
            self.update(replace(person, title=_join(person.title, value)))
        elif kind == "organisation":
            self.update(replace(person, organisation=_join(person.organisation, value)))
        elif kind == "honorific":
            self.update(replace(person, honorific=_squash(value)))
        elif kind == "role":
            role = _role_in(value)
            if not role:
                self.warn(f'line {number} of {self.where}: role "{value[:40]}" not understood')
            self.update(replace(person, role=role or person.role))
        return True


def _squash_keep_tabs(text: str) -> str:
    return "\t".join(_squash(cell) for cell in text.split("\t")).strip("\t ")


def _read_text(text: str, where: str) -> _Found:
    reader = _Reader(where)
    reader.lines(text.splitlines())
    return _Found(tuple(reader.delegates), tuple(reader.warnings))


# --- tables ------------------------------------------------------------------------------------


def _find_header(rows: Sequence[Sequence[str]]) -> tuple[int, dict[int, str]] | None:
    for index, row in enumerate(rows[:_HEADER_ROWS]):
        filled = [cell for cell in row if cell.strip()]
        if not filled or any(len(cell) > 60 for cell in filled):
            continue
        kinds = {col: kind for col, cell in enumerate(row) if (kind := _column_kind(cell))}
        names = [kind for kind in kinds.values() if kind in ("name", "given", "family")]
        if names and (len(kinds) >= 2 or len(filled) == 1) and 2 * len(kinds) >= len(filled):
            return index, kinds
    return None


def _honorific_only(value: str) -> bool:
    honorific, rest = _split_honorific(value)
    return bool(honorific) and not rest


def _table_person(fields: dict[str, str], section: str) -> Delegate | None:
    """A person from the cells of one row (or the fields of one "Name: …" block)."""
    name_text = fields.get("name", "")
    given, family = fields.get("given", ""), fields.get("family", "")
    if given or family:
        name_text = _squash(" ".join(p for p in (name_text, given, family) if p))
    pieces = _pieces(name_text)
    if not pieces.name or len(pieces.name) > 120:
        return None
    if not any(c.isalpha() for c in pieces.name) or _role_of(pieces.name):
        return None
    described = _describe(pieces.rest, pieces.role or section)
    role = described.role
    if fields.get("role"):
        role = _role_in(fields["role"]) or role
    honorific = _squash(" ".join(p for p in (fields.get("honorific", ""), pieces.honorific) if p))
    email = _take_email(fields.get("email", ""))[1] or pieces.email
    return Delegate(
        name=pieces.name,
        honorific=honorific,
        title=fields.get("title") or described.title,
        role=role,
        organisation=fields.get("organisation") or described.organisation,
        email=email,
    )


def _cell(value: object) -> str:
    return _squash(_clean(str(value)))[:MAX_CELL] if value is not None else ""


def _read_table(table: Sequence[Sequence[str]], where: str) -> _Found:
    rows = [tuple(_cell(c) for c in row[:MAX_COLUMNS]) for row in table[:MAX_ROWS]]
    warnings: list[str] = []
    if len(table) > MAX_ROWS:
        warnings.append(f"{where}: only the first {MAX_ROWS} rows read")
    header = _find_header(rows)
    if header is None:
        lines = ["\t".join(c for c in row if c and not c.isdigit()) for row in rows]
        reader = _Reader(where)
        for number, line in enumerate(lines, start=1):
            reader.line(line, number)  # one line a row, never re-read as a table
        return _Found(tuple(reader.delegates), tuple(warnings + reader.warnings))
    at, kinds = header
    present = set(kinds.values())
    # "Nom" beside "Prénom" is the surname; "Nombre" beside "Apellidos" the given name.
    if "name" in present and "given" in present and "family" not in present:
        kinds = {col: "family" if kind == "name" else kind for col, kind in kinds.items()}
    elif "name" in present and "family" in present and "given" not in present:
        kinds = {col: "given" if kind == "name" else kind for col, kind in kinds.items()}
    # A "Title" column holding Mr / Ms is the honorific.
    for col, kind in list(kinds.items()):
        values = [row[col] for row in rows[at + 1 :] if col < len(row) and row[col]]
        if kind == "title" and values and 2 * sum(map(_honorific_only, values)) > len(values):
            kinds[col] = "honorific"
    header_row = rows[at]
    section = ""
    delegates: list[Delegate] = []
    for number, row in enumerate(rows[at + 1 :], start=at + 2):
        filled = [c for c in row if c]
        if not filled or row == header_row:
            continue
        fields: dict[str, str] = {}
        names: list[str] = []
        for col, kind in sorted(kinds.items()):
            value = row[col] if col < len(row) else ""
            if not value:
                continue
            if kind in ("name", "given", "family"):
                names.append(value)  # in the order of the columns: "DUPONT | Jean" stays so
            else:
                fields[kind] = _join(fields.get(kind, ""), value)
        if len(set(filled)) == 1 and _role_of(filled[0]):
            section = _role_of(filled[0])  # "Alternates" across the whole row
            continue
        if not names:
            warnings.append(f'row {number} of {where} has no name: "{" | ".join(filled)[:80]}"')
            continue
        fields["name"] = _squash(" ".join(names))
        if "role" in fields and not _role_in(fields["role"]):
            warnings.append(f'row {number} of {where}: role "{fields["role"][:40]}" not understood')
        person = _table_person(fields, section)
        if person is None:
            warnings.append(f'row {number} of {where} not understood: "{fields["name"][:80]}"')
            continue
        delegates.append(person)
    return _Found(tuple(delegates), tuple(warnings))


# --- the meeting -------------------------------------------------------------------------------

_ORDINALS: dict[str, int] = {
    name: number
    for number, names in enumerate(
        (
            "first premier premiere primera primer primero",
            "second deuxieme seconde segunda segundo",
            "third troisieme tercera tercer tercero",
            "fourth quatrieme cuarta cuarto",
            "fifth cinquieme quinta quinto",
            "sixth sixieme sexta sexto",
            "seventh septieme septima septimo setima setimo",
            "eighth huitieme octava octavo",
            "ninth neuvieme novena noveno",
            "tenth dixieme decima decimo",
            "eleventh onzieme undecima undecimo decimoprimera decimoprimero",
            "twelfth douzieme duodecima duodecimo decimosegunda decimosegundo",
            "thirteenth treizieme decimotercera decimotercero",
            "fourteenth quatorzieme decimocuarta decimocuarto",
            "fifteenth quinzieme decimoquinta decimoquinto",
        ),
        start=1,
    )
    for name in names.split()
}
_ROMAN = {"i": 1, "v": 5, "x": 10}
_ORDINAL_RE = "|".join(sorted(_ORDINALS, key=len, reverse=True))
_MSP = (
    r"(?P<msp>meetings? of (?:the )?states? part(?:y|ies)|reunion (?:des |de l'ensemble des )?"
    r"etats parties|reunion de (?:los )?estados partes|msp)"
)
_RC = r"(?P<rc>review conference|conference d'examen|conferencia de examen)"
_SUFFIX = r"(?:\.?\s?(?:st|nd|rd|th|eme|ere|er|re|e|a|o)(?![a-z]))?"
_MEETING = re.compile(
    r"(?<![a-z0-9])(?:(?P<word>"
    + _ORDINAL_RE
    + r")|(?P<digits>\d{1,2})|(?P<roman>[ivx]{1,4}))"
    + _SUFFIX
    + r"\s?-?\s?(?:"
    + _MSP
    + r"|"
    + _RC
    + r"|(?P<rc2>rc)(?![a-z])|(?P<rep>rep)(?![a-z]))"
    + r"|(?<![a-z/])msp ?-? ?(?P<after>\d{1,2})(?![0-9])"
)


def _roman(text: str) -> int:
    total = 0
    for index, char in enumerate(text):
        value = _ROMAN[char]
        following = _ROMAN[text[index + 1]] if index + 1 < len(text) else 0
        total += -value if value < following else value
    return total


def meeting_from_text(text: str) -> str | None:
    """'7MSP' for "Seventh Meeting of States Parties", "7e REP", "VII Reunión…"; '2RC' for a
    Review Conference; None when no numbered meeting is named. The first one named wins."""
    folded = _squash(_fold(text[:MAX_CHARS]))
    for match in _MEETING.finditer(folded):
        if match.group("after"):
            number = int(match.group("after"))
            kind = "MSP"
        else:
            word, digits, roman = match.group("word", "digits", "roman")
            if match.group("rep") and not re.search(r"\d\s?(?:e|eme|er|ere|a|o)\s?rep$", match[0]):
                continue  # "rep" alone is a representative; "7e REP" is the meeting
            if (
                roman
                and not match.group("msp")
                and not match.group("rc")
                and not match.group("rep")
            ):
                continue  # "x rc"
            number = _ORDINALS[word] if word else int(digits) if digits else _roman(roman)
            kind = "RC" if match.group("rc") or match.group("rc2") else "MSP"
        if 1 <= number <= 30:
            return f"{number}{kind}"
    return None


# --- the roster --------------------------------------------------------------------------------


def _dedupe(delegates: Iterable[Delegate], warnings: list[str]) -> list[Delegate]:
    kept: list[Delegate] = []
    seen: set[str] = set()
    for person in delegates:
        key = _squash(_fold(person.name))
        if key in seen:
            warnings.append(f"{person.name} is listed twice")
            continue
        seen.add(key)
        kept.append(person)
    return kept


@dataclass(frozen=True, slots=True)
class _Candidate:
    source: str
    delegates: tuple[Delegate, ...]
    warnings: tuple[str, ...]


def extract_roster(
    *, body: str, texts: Sequence[tuple[str, str]], tables: Sequence[tuple[str, Table]]
) -> Roster:
    """The delegation listed in a mail: from the source that lists the most people (a table
    before a text before the body when they list as many), with what could not be read."""
    bounded = _bound(body, texts, tables)
    candidates: list[_Candidate] = []
    by_file: dict[str, list[_Found]] = {}
    for name, table in bounded.tables:
        by_file.setdefault(name, []).append(_read_table(table, f"table in {name}"))
    for name, found in by_file.items():
        candidates.append(
            _Candidate(
                f"table in {name}",
                tuple(p for f in found for p in f.delegates),
                tuple(w for f in found for w in f.warnings),
            )
        )
    for name, text in bounded.texts:
        in_text = _read_text(text, f"text of {name}")
        candidates.append(_Candidate(f"text of {name}", in_text.delegates, in_text.warnings))
    in_body = _read_text(bounded.body, "message body")
    candidates.append(_Candidate("message body", in_body.delegates, in_body.warnings))

    best = candidates[0]
    for candidate in candidates[1:]:
        if len(candidate.delegates) > len(best.delegates):
            best = candidate

    warnings = [*bounded.warnings, *best.warnings]
    delegates = _dedupe(best.delegates, warnings)
    if not delegates:
        warnings.insert(0, "no list of delegates found")
    else:
        if len(delegates) > MAX_DELEGATES:
            warnings.append(f"{len(delegates)} people listed: only the first {MAX_DELEGATES} kept")
            delegates = delegates[:MAX_DELEGATES]
        if not any(p.role == "head" for p in delegates):
            warnings.append("no head of delegation named")
        for other in candidates:
            count = len(other.delegates)
            if other is not best and count and count != len(best.delegates):
                warnings.append(
                    f"{other.source} lists {count} people, {best.source} "
                    f"{len(best.delegates)}: {best.source} used"
                )

    names = [name for name, _text in bounded.texts] + [name for name, _t in bounded.tables]
    sources = [
        bounded.body,
        *(text for _name, text in bounded.texts),
        *("\n".join(" ".join(row) for row in table[:50]) for _name, table in bounded.tables),
        *(re.sub(r"[_+.]+", " ", name) for name in names),
    ]
    # The first one named wins: the body, then the attachments, then their file names.
    meeting = next((m for text in sources if (m := meeting_from_text(text))), None)
    return Roster(
        delegates=tuple(delegates),
        meeting=meeting,
        source=best.source if delegates else "",
        warnings=tuple(dict.fromkeys(warnings))[:MAX_WARNINGS],
    )
