"""Is this mail from a robot? Answering one starts a mail loop (DESIGN invariant 4).

RFC 3834 §2 is the reference: never answer a message with ``Auto-Submitted`` other than
``no``, a null or mailer-daemon sender, list or bulk mail. On top of it come what real
autoresponders send instead of the RFC: vendor headers (``X-Autoreply``…), out-of-office,
bounce and acknowledgement-of-receipt subjects in the languages missions write in, and —
only when no header or subject spoke, and only for a mail that brings no document — the
sender's own words: "I am out of the office until…", "ce message a été envoyé
automatiquement" (``CONTENT_RULES``). A robot that gets past all of this and answers our
mail is held by the store's loop guard: one acknowledgement a day for a reply to our mail.

``X-Auto-Response-Suppress`` alone proves nothing: it asks the *recipient's* Exchange not
to answer, and Outlook puts it on ordinary mail too (helpdesks that trusted it lost real
mail). It counts only beside a header that Exchange sets on mail it generated itself.

``classify_automatic`` also says *which* robot (STYLE §10: each rule names a kind or, for
signs every robot leaves such as ``Auto-Submitted`` or a null sender, none):

* ``bounce`` — a delivery status notification. The recipients that failed come from the
  ``message/delivery-status`` part (RFC 3464) when there is one, else from the text that
  Exchange, Postfix, Sendmail, Exim, Gmail and others write;
* ``auto_reply`` — out-of-office and other autoresponders, read receipts;
* ``spam`` — only when a spam filter said so in its headers (``X-Spam-Flag: YES``,
  ``X-Spam-Status: Yes``, a score or level at the threshold) or the GTUBE test string is
  there. Nothing about how a mail *looks* counts: missions write from Outlook, free mail
  and old gateways, and a mission filed as spam is a submission lost;
* ``list`` — list and bulk mail (``List-Id``, ``Precedence: bulk``…).

When several kinds fire, a bounce wins (its failed recipient is what the secretariat
needs), then an auto-reply, spam, and list last: a newsletter flagged by the spam filter
is spam, an out-of-office sent through a list is an out-of-office.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from parsers.message import ParsedMessage, decode_bytes
from parsers.text import unaccented

AUTO_REPLY = "auto_reply"
BOUNCE = "bounce"
LIST = "list"
SPAM = "spam"
# Strongest first: the order in which a kind wins when several rules fire.
AUTOMATIC_KINDS = (BOUNCE, AUTO_REPLY, SPAM, LIST)
# A sign every robot leaves; the kind is decided by the other rules or the content.
_ANY = ""

DEFAULT_SPAM_THRESHOLD = 5.0  # SpamAssassin's own default "required" score


@dataclass(frozen=True, slots=True)
class Automatic:
    """A mail no human wrote, what kind of robot sent it, and for a bounce who failed."""

    kind: str  # one of AUTOMATIC_KINDS
    reason: str  # the first rule of that kind that fired, in the words of auto_reply_reason
    failed_recipients: tuple[str, ...] = ()
    # Bounces only: True when the mail will not arrive (a failed action, a 5.x.x status, "failed
    # permanently"), False when it is only delayed and still retried (4.x.x), None when the
    # report does not say.
    permanent: bool | None = None


@dataclass(frozen=True, slots=True)
class _Context:
    own: frozenset[str]
    spam_threshold: float


_Fired = tuple[str, str]  # (kind or _ANY, reason)
Rule = Callable[[ParsedMessage, _Context], _Fired | None]


def _fold(text: str) -> str:
    """Lower case without accents, so 'Réponse automatique' equals 'reponse automatique'."""
    return unaccented(text).casefold()


def _auto_submitted(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    for value in msg.header_all("auto-submitted"):
        keyword = value.split(";", 1)[0].split("(", 1)[0].strip().lower()
        if keyword and keyword != "no":
            # auto-replied is a response to a message (RFC 3834 §5); auto-generated and
            # the rest are notifications of any kind, bounces among them.
            kind = AUTO_REPLY if keyword == "auto-replied" else _ANY
            return kind, f"Auto-Submitted: {keyword}"
    return None


_REPORT_KINDS = {
    "delivery-status": (BOUNCE, "bounce"),
    "disposition-notification": (AUTO_REPLY, "read receipt"),
    "feedback-report": (AUTO_REPLY, "abuse report"),
}


def _report(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    ctype = (msg.header("content-type") or "").lower()
    if ctype.startswith("message/delivery-status"):
        return BOUNCE, "bounce (message/delivery-status)"
    if not ctype.startswith("multipart/report"):
        return None
    match = re.search(r'report-type\s*=\s*"?([\w.-]+)', ctype)
    report_type = match.group(1) if match else "unknown"
    kind, what = _REPORT_KINDS.get(report_type, (_ANY, "report"))
    return kind, f"{what} (multipart/report {report_type})"


def _null_sender(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    # Bounces and RFC 3834 auto-replies alike come from the null sender.
    for value in msg.header_all("return-path"):
        if re.fullmatch(r"\s*<\s*>\s*", value):
            return _ANY, "null sender (Return-Path <>)"
    if not msg.from_addr and not msg.reply_to:
        return _ANY, "null sender (no From address)"
    return None


_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)(\+.*)?$")
_NO_REPLY = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|ne[-_.]?pas[-_.]?repondre"
    r"|no[-_.]?responder|no[-_.]?contestar|bounces?|notifications?|mailer)([-_.+].*)?$"
)


def _local(addr: str) -> str:
    return _fold(addr.rsplit("@", 1)[0])


def _daemon_sender(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    if _DAEMON.match(_local(msg.from_addr)):
        return BOUNCE, f"bounce sender {msg.from_addr}"
    return None


def _no_reply_sender(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    # Our answer goes to Reply-To when there is one, so that is the address that counts.
    targets = msg.reply_to or ((msg.from_addr,) if msg.from_addr else ())
    for addr in targets:
        if _NO_REPLY.match(_local(addr)):
            return _ANY, f"no-reply sender {addr}"
    return None


def _own_address(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    if msg.from_addr and msg.from_addr in ctx.own:
        return _ANY, "sender is our own address"
    if msg.reply_to and all(addr in ctx.own for addr in msg.reply_to):
        return _ANY, "sender is our own address (Reply-To)"
    return None


# The Message-ID every mail we send carries (worker.compose.stable_message_id).
_OUR_MESSAGE_ID = re.compile(r"<ccm\.[0-9a-f]{24}@([^>\s]+)>", re.I)


def _our_mail_back(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    """Our own mail come back: it carries our X-Loop, or our Message-ID as its own."""
    for value in msg.header_all("X-Loop"):
        if any(addr in value.lower() for addr in ctx.own):
            return _ANY, f"our own mail came back (X-Loop: {value.strip()})"
    match = _OUR_MESSAGE_ID.fullmatch((msg.message_id or "").strip())
    domains = {addr.rpartition("@")[2] for addr in ctx.own}
    if match and match.group(1).lower() in domains:
        return _ANY, "our own mail came back (its Message-ID is ours)"
    return None


_LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post", "Mailing-List", "X-Mailing-List")


def _mailing_list(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    for name in _LIST_HEADERS:
        if msg.header(name) is not None:
            return LIST, f"mailing list ({name})"
    return None


def _precedence(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    for name in ("precedence", "x-precedence"):
        value = (msg.header(name) or "").strip().lower()
        if value in ("bulk", "junk", "list"):
            return LIST, f"Precedence: {value}"
        if value in ("auto_reply", "auto-reply"):
            return AUTO_REPLY, f"Precedence: {value}"
    return None


def _vendor_headers(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-AutoReply-From"):
        value = msg.header(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return AUTO_REPLY, f"{name}: {value.strip()[:40]}"
    for name in ("x-autogenerated", "x-auto-generated"):
        value = (msg.header(name) or "").strip().lower()
        if value and value not in ("no", "false"):
            kind = AUTO_REPLY if value == "reply" else _ANY
            return kind, f"X-Autogenerated: {value[:40]}"
    if (msg.header("x-fc-machinegenerated") or "").strip().lower() == "true":
        return _ANY, "X-FC-MachineGenerated: true"
    if msg.header("x-failed-recipients") is not None:
        return BOUNCE, "bounce (X-Failed-Recipients)"
    return None


def _exchange_generated(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    suppress = (msg.header("x-auto-response-suppress") or "").lower()
    tokens = {t.strip() for t in suppress.split(",")}
    if not tokens & {"all", "oof", "autoreply"}:
        return None
    source = msg.header("x-ms-exchange-generated-message-source")
    if source is not None:
        return _ANY, f"Exchange-generated ({source.strip()[:40]}, X-Auto-Response-Suppress)"
    if msg.header("x-ms-exchange-inbox-rules-loop") is not None and msg.in_reply_to:
        return (
            AUTO_REPLY,
            "Exchange inbox rule reply (X-MS-Exchange-Inbox-Rules-Loop, X-Auto-Response-Suppress)",
        )
    return None


# Subjects of out-of-office replies, bounces and read receipts, folded (no accents, lower case).
_OOF_SUBJECTS = (
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "autoresponse",
    "away from the office",
    "reponse automatique",
    "absence du bureau",
    "absent du bureau",
    "message d'absence",
    "respuesta automatica",
    "fuera de la oficina",
    "ausente de la oficina",
    "automatische antwort",
    "abwesenheitsnotiz",
    "risposta automatica",
    "resposta automatica",
    "автоматический ответ",
    "自动回复",
)
_BOUNCE_SUBJECTS = (
    "undeliverable",
    "undelivered mail",
    "delivery status notification",
    "delivery failure",
    "delivery has failed",
    "delivery notification",
    "mail delivery failed",
    "mail delivery failure",
    "mail delivery subsystem",
    "returned mail",
    "failure notice",
    "message not delivered",
    "non remis",
    "non distribuable",
    "echec de la remise",
    "notification d'etat de remise",
    "no se puede entregar",
    "no entregado",
    "notificacion de estado de entrega",
    "error en la entrega",
    "unzustellbar",
)
_RECEIPT_SUBJECTS = (
    "read:",
    "lu :",
    "lu:",
    "leido:",
    "read receipt",
    "accuse de lecture",
    "confirmacion de lectura",
)


def _starts_with(phrases: tuple[str, ...]) -> re.Pattern[str]:
    # An optional "[tag]" first: list software and gateways prefix subjects.
    alternatives = "|".join(re.escape(p) for p in phrases)
    return re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:" + alternatives + r")(?!\w)")


# An acknowledgement of receipt is a robot's genre: ours ("Acknowledgement of receipt
# CCM/7MSP/DEL/FRA/001: …") and the ones ministries' registries send back when our
# acknowledgement reaches them. Answering one is the loop of two receipt robots. A person
# who writes about one replies to it ("Re: Accusé de réception …"), which does not match.
_ACK_SUBJECTS = (
    "acknowledgement of receipt",
    "acknowledgment of receipt",
    "receipt acknowledgement",
    "receipt acknowledgment",
    "confirmation of receipt",
    "accuse de reception",
    "accuse reception",
    "confirmation de reception",
    "acuse de recibo",
    "acuse de recepcion",
    "confirmacion de recepcion",
    "confirmacion de recibo",
)


# Matched on the folded subject and only at its start: "Re: out of office hours" in a human
# thread must not be silenced.
_SUBJECT_RULES = (
    (AUTO_REPLY, "out-of-office subject", _starts_with(_OOF_SUBJECTS)),
    (BOUNCE, "bounce subject", _starts_with(_BOUNCE_SUBJECTS)),
    (AUTO_REPLY, "read-receipt subject", _starts_with(_RECEIPT_SUBJECTS)),
    (AUTO_REPLY, "acknowledgement-of-receipt subject", _starts_with(_ACK_SUBJECTS)),
)


def _subject(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    folded = _fold(msg.subject)
    for kind, label, pattern in _SUBJECT_RULES:
        if pattern.match(folded):
            return kind, f"{label} ({msg.subject.strip()[:60]})"
    return None


# --------------------------------------------------------------------------- what it says

# Vacation responders that ignore RFC 3834 send no header at all and keep the subject
# ("RE: Accusé de réception …"): only their words give them away. Read are the sender's own
# words (above the quoted mail), and only when the mail carries no document: a mission
# that writes "I am out of the office from tomorrow, here is our list" has submitted a
# list, and a submission set aside as a robot's is a submission lost. (A robot that
# attaches files is held by the store's limits on acknowledgements instead.)
_OWN_SCAN = 20_000  # characters of the body searched for where the quoted mail starts
_OWN_CHARS = 1_500  # characters of the sender's own words that are read
_QUOTE_START = re.compile(
    r"^[ \t]*(?:>|-{2,} ?(?:original message|message d'origine|mensaje original"
    r"|forwarded message|message transfere|mensaje reenviado)"
    r"|_{10,}|on .{5,200} wrote:|le .{5,200} a ecrit ?:|el .{5,200} escribio:"
    r"|(?:from|de|von) ?: .{1,200}$)",
    re.MULTILINE,
)
# "I am out of the office" and its kin, first person: a note about someone else's absence
# ("the Ambassador will be away") is a person's news, not a responder's.
_ABSENT = re.compile(
    r"\bi(?: am|'m| will be| shall be)(?: currently| now| presently)? (?:out of (?:the )?office"
    r"|away from (?:the |my )?(?:office|desk)|on (?:[a-z]+ )?leave|on (?:holidays?|vacation"
    r"|mission|official travel|travel)|travell?ing|absent|away)\b"
    r"|\bje (?:suis|serai)(?: actuellement| en ce moment| absente? et)? (?:absente?"
    r"|en (?:conges?|vacances|mission|deplacement)|hors du bureau|en dehors du bureau)\b"
    r"|\b(?:estoy|estare|me encuentro|me encontrare)(?: actualmente)? (?:fuera de la oficina"
    r"|ausente|de (?:vacaciones|licencia|permiso|viaje|mision)|en (?:mision|viaje|comision))\b"
)
# … and what every responder adds: until when, limited access, whom to write meanwhile.
_ABSENCE_DETAIL = re.compile(
    r"\b(?:until|till|back (?:on|in)|return|limited access|no access|urgent|in my absence"
    r"|will (?:reply|respond|answer|get back)"
    r"|jusqu|retour|acces limite|urgen|en mon absence|repondrai|traiterai"
    r"|hasta|regreso|vuelta|acceso limitado|en mi ausencia|respondere|contestare)"
)
# "This message was sent automatically", "ne pas répondre à ce message"…: what robots say
# of themselves, our own acknowledgement among them.
_SELF_AUTOMATIC = re.compile(
    r"\bthis (?:message|e-?mail|mail|acknowledge?ment|reply|response|notification"
    r"|confirmation|receipt) (?:was|has been|is|is being) (?:sent|generated|produced|issued)"
    r" automatically"
    r"|\b(?:automatically|system|auto)[- ]generated (?:message|e-?mail|mail|reply|response"
    r"|notification|acknowledge?ment)"
    r"|\bthis is an? (?:automated|automatic|auto-generated|automatically generated)"
    r" (?:message|e-?mail|mail|reply|response|notification|acknowledge?ment)"
    r"|\bdo not reply to this (?:message|e-?mail|mail|address)"
    r"|\b(?:ce|cet|cette) (?:message|courriel|e-?mail|mail|accuse de reception|reponse)"
    r" (?:a ete|est) (?:envoyee?|generee?|emise?) automatiquement"
    r"|\b(?:message|courriel|reponse) (?:genere|envoye)e? automatiquement"
    r"|\bne pas repondre a (?:ce|cet|cette) (?:message|courriel|e-?mail|mail|adresse)"
    r"|\b(?:este|el presente) (?:mensaje|correo(?: electronico)?|acuse de recibo)"
    r" (?:ha sido|fue|es|se ha|se) (?:enviado|generado|emitido) automaticamente"
    r"|\b(?:mensaje|correo|respuesta) (?:generad|enviad)[oa] automaticamente"
    r"|\bno (?:responda|conteste) a este (?:mensaje|correo)"
)
_ATTACHED_FILE = re.compile(rb"filename\*?=", re.IGNORECASE)


def _carries_documents(msg: ParsedMessage) -> bool:
    """Does the mail bring a file a person may have meant to submit?

    Inline images (logos) and text parts are the message itself. An attached mail counts
    when it has files of its own: a responder that sends back what it got sends our
    acknowledgement, which has none.
    """
    for att in msg.attachments:
        ctype = att.content_type.lower()
        if ctype.startswith("message/") or ctype == "text/rfc822-headers":
            if _ATTACHED_FILE.search(att.data[:_MAX_ATTACHED_MAIL]):
                return True
            continue
        if att.inline and (ctype.startswith("image/") or ctype.startswith("text/")):
            continue
        return True
    return False


_MAX_ATTACHED_MAIL = 5_000_000


def _own_text(msg: ParsedMessage) -> str:
    """The start of what the sender wrote (the quoted mail cut off), folded, one line."""
    folded = _fold(msg.text[:_OWN_SCAN]).replace("\u2019", "'")
    quote = _QUOTE_START.search(folded)
    own = folded[: quote.start()] if quote else folded
    return " ".join(own.split())[:_OWN_CHARS]


_OOF_HEADING = _starts_with(_OOF_SUBJECTS)


def _vacation_text(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    if _carries_documents(msg):
        return None
    own = _own_text(msg)
    heading = _OOF_HEADING.match(own)
    if heading is not None:
        return AUTO_REPLY, f"out-of-office text ({heading.group().strip()[:40]})"
    absent = _ABSENT.search(own[:600])
    if absent is not None and _ABSENCE_DETAIL.search(own[:800]):
        return AUTO_REPLY, f"out-of-office text ({absent.group()})"
    return None


def _says_automatic(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    if _carries_documents(msg):
        return None
    found = _SELF_AUTOMATIC.search(_own_text(msg))
    if found is not None:
        return _ANY, f"says it was sent automatically ({found.group()[:50]})"
    return None


# --------------------------------------------------------------------------- spam

# The GTUBE line (spamassassin.apache.org/gtube): every spam filter must flag it.
_GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
_SCORE = re.compile(r"[-+]?\d{1,4}(?:[.,]\d+)?")


def _spam_flag(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    """What a spam filter wrote (SpamAssassin and the many that copy its headers).

    Only a verdict counts: ``X-Spam-Status: No, score=4.9`` is a pass, and nothing here
    looks at how the mail is written.
    """
    for value in msg.header_all("x-spam-flag"):
        if value.strip().lower().startswith("yes"):
            return SPAM, "spam filter verdict (X-Spam-Flag: YES)"
    for value in msg.header_all("x-spam-status"):
        if re.match(r"\s*yes\b", value, re.IGNORECASE):
            return SPAM, f"spam filter verdict (X-Spam-Status: {value.strip()[:40]})"
    for value in msg.header_all("x-spam-score"):
        match = _SCORE.search(value)
        if match is not None:
            score = float(match.group().replace(",", "."))
            if score >= ctx.spam_threshold:
                return SPAM, f"spam score {score:g} ≥ {ctx.spam_threshold:g} (X-Spam-Score)"
    for value in msg.header_all("x-spam-level"):
        stars = len(value.strip()) if set(value.strip()) == {"*"} else 0
        if stars and stars >= ctx.spam_threshold:
            return SPAM, f"spam level {'*' * stars} (X-Spam-Level)"
    return None


def _gtube(msg: ParsedMessage, ctx: _Context) -> _Fired | None:
    if _GTUBE in msg.subject or _GTUBE in msg.text[:200_000]:
        return SPAM, "GTUBE spam test string"
    return None


# Cheapest and surest first: auto_reply_reason names the first rule that fired. The spam
# rules come last, so every reason given before they existed is still given.
RULES: tuple[Rule, ...] = (
    _our_mail_back,
    _auto_submitted,
    _report,
    _null_sender,
    _daemon_sender,
    _own_address,
    _mailing_list,
    _precedence,
    _vendor_headers,
    _exchange_generated,
    _no_reply_sender,
    _subject,
    _spam_flag,
    _gtube,
)
# What the mail says is read only when no header or subject spoke: it never changes the kind
# or the reason those give, and the body is not searched for a mail already known.
CONTENT_RULES: tuple[Rule, ...] = (_vacation_text, _says_automatic)


def _context(own_addresses: Iterable[str], spam_threshold: float) -> _Context:
    own = frozenset(a.strip().lower() for a in own_addresses if a.strip())
    return _Context(own, spam_threshold)


def auto_reply_reason(
    msg: ParsedMessage,
    own_addresses: Iterable[str] = (),
    *,
    spam_threshold: float = DEFAULT_SPAM_THRESHOLD,
) -> str | None:
    """None when a human may be answered automatically, else why not, in a few words."""
    ctx = _context(own_addresses, spam_threshold)
    for rule in RULES + CONTENT_RULES:
        fired = rule(msg, ctx)
        if fired is not None:
            return fired[1]
    return None


def classify_automatic(
    msg: ParsedMessage,
    own_addresses: Iterable[str] = (),
    *,
    spam_threshold: float = DEFAULT_SPAM_THRESHOLD,
) -> Automatic | None:
    """None for a mail a human wrote; else what kind of robot sent it and why we think so.

    It is None exactly when :func:`auto_reply_reason` is. ``spam_threshold`` is the
    ``X-Spam-Score`` at which, and the number of ``X-Spam-Level`` stars from which, a mail
    is spam.
    """
    ctx = _context(own_addresses, spam_threshold)
    fired = [f for f in (rule(msg, ctx) for rule in RULES) if f is not None] or [
        f for f in (rule(msg, ctx) for rule in CONTENT_RULES) if f is not None
    ]
    if not fired:
        return None
    kinds = {kind for kind, _ in fired}
    kind = next((k for k in AUTOMATIC_KINDS if k in kinds), _ANY)
    recipients: tuple[str, ...] = ()
    permanent: bool | None = None
    if kind in (BOUNCE, _ANY):
        report = bounce_report(msg, ctx.own)
        if kind == BOUNCE or report.is_bounce:
            kind, recipients, permanent = BOUNCE, report.recipients, report.permanent
        else:
            kind = AUTO_REPLY
    reason = next((r for k, r in fired if k == kind), fired[0][1])
    return Automatic(kind, reason, recipients, permanent)


# --------------------------------------------------------------------------- bounces


@dataclass(frozen=True, slots=True)
class BounceReport:
    """What a delivery report says: who failed, whether for good, and is it one at all."""

    recipients: tuple[str, ...]
    permanent: bool | None
    is_bounce: bool  # a DSN part, or bounce wording in the text


_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDRESS = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + _LABEL + r"(?:\." + _LABEL + r")+"
_ADDRESS_RE = re.compile(_ADDRESS)
_STATUS_RE = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_FIELD_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_MAX_RECIPIENTS = 50
_MAX_DSN_CHARS = 100_000
_MAX_LINE = 1_000  # a bounce's lines are short; a longer one is cut, so no regex runs long


def _dsn_records(text: str) -> list[dict[str, str]]:
    """The per-recipient field groups of a delivery-status body (RFC 3464 §2.3).

    Tolerant of what real MTAs send: folded lines, blank lines missing between groups or
    doubled, any case. A group starts at a blank line or when a field repeats.
    """
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text[:_MAX_DSN_CHARS].replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            if current:
                records.append(current)
            current, last = {}, ""
            continue
        if line[:1] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        match = _FIELD_RE.match(line)
        if match is None:
            last = ""
            continue
        name, value = match.group(1).lower(), match.group(2).strip()
        starts_recipient = name in ("final-recipient", "original-recipient") and (
            name in current or "final-recipient" in current
        )
        if name in current or starts_recipient:
            records.append(current)
            current = {}
        current[name] = value
        last = name
    if current:
        records.append(current)
    return [r for r in records if "final-recipient" in r or "original-recipient" in r]


def _dsn_address(value: str) -> str | None:
    """``rfc822; <a@b.org>`` → ``a@b.org``."""
    address = value[:_MAX_LINE].split(";", 1)[1] if ";" in value else value[:_MAX_LINE]
    match = _ADDRESS_RE.search(address)
    return match.group().lower() if match else None


def _dsn_texts(msg: ParsedMessage) -> Iterator[str]:
    for att in msg.attachments:
        if att.content_type not in _DSN_TYPES:
            continue
        text = decode_bytes(att.data[:_MAX_DSN_CHARS])[0]
        yield text
        # Some MTAs base64-encode the per-recipient groups inside the part.
        tail = text.rsplit("\n\n", 1)[-1].strip()
        if tail and "recipient" not in tail.lower() and re.fullmatch(r"[A-Za-z0-9+/=\s]+", tail):
            try:
                inner = base64.b64decode(tail)
            except (binascii.Error, ValueError):
                inner = b""
            if inner:
                yield decode_bytes(inner)[0]
    if "final-recipient" in msg.text[:_MAX_DSN_CHARS].lower():
        yield msg.text


def _from_dsn(msg: ParsedMessage) -> tuple[list[str], list[bool | None], bool]:
    recipients: list[str] = []
    permanence: list[bool | None] = []
    found = False
    for text in _dsn_texts(msg):
        found = True
        for record in _dsn_records(text):
            action = record.get("action", "").split()[0].lower() if record.get("action") else ""
            if action in ("delivered", "relayed", "expanded"):
                continue
            status = _STATUS_RE.search(record.get("status", ""))
            if status is None and not action:
                continue
            address = _dsn_address(record.get("original-recipient", "")) or _dsn_address(
                record.get("final-recipient", "")
            )
            if address is not None and address not in recipients:
                recipients.append(address)
            # "failed" is final whatever the code (4.x.x after days of retries); "delayed"
            # is still being retried. Without an action, the status class says it.
            if action in ("failed", "delayed"):
                permanence.append(action == "failed")
            elif status is not None:
                permanence.append(status.group(1) == "5")
    return recipients, permanence, found


# Where the returned original starts: what comes after is the mail we sent, not the report.
_ORIGINAL_RE = re.compile(
    r"^[ \t>]*(?:-{3,}[ \t]*)?(?:original message|original message follows"
    r"|this is a copy of the message|below this line is a copy of the message"
    r"|message d'origine|mensaje original|original message headers|en-tetes du message d'origine"
    r"|encabezados del mensaje original|return-path:|received: from)",
    re.MULTILINE,
)
# After these, the failed recipients are listed, one per line (perhaps with a name or a reason).
_INTRO_RE = re.compile(
    r"delivery has failed to these recipients(?: or groups)?"
    r"|did not reach some or all of the intended recipients"
    r"|delivery to the following recipients? (?:failed|has been delayed|has failed)"
    r"|the following address(?:\(es\)|es)? (?:failed|had (?:permanent fatal|transient"
    r" non-fatal) errors|had delivery problems|have delivery notifications)"
    r"|(?:could not|cannot|can't|couldn't) be delivered to the following recipients?"
    r"|to deliver (?:the|your) (?:mail|message) to the following (?:recipients?|address(?:es)?)"
    r"|delivery problems\s+to the following recipient"
    r"|failed recipients?"
    r"|the delivery status notification errors"
    r"|la remise a echoue pour ces destinataires(?: ou groupes)?"
    r"|n'a pas pu etre remis aux destinataires suivants"
    r"|error (?:al entregar|en la entrega) a estos destinatarios(?: o grupos)?"
    r"|la entrega ha fallado para estos destinatarios(?: o grupos)?"
    r"|no se pudo entregar a los siguientes destinatarios",
)
# One line each: "<a@b>: host … said", "<a@b>... User unknown", "Recipient address: a@b"…
_LINE_RES = (
    re.compile(r"^[ \t]*<(" + _ADDRESS + r")>[ \t]*(?::|\.\.\.|\(|$)", re.MULTILINE),
    re.compile(
        r"(?:recipient address|was addressed to|original-recipient|final-recipient)"
        r"[ \t]*:?[ \t]*(?:rfc822[ \t]*;)?[ \t]*<?(" + _ADDRESS + r")"
    ),
    re.compile(r"delivery failed \d+ attempts?:[ \t]*<?(" + _ADDRESS + r")"),
    re.compile(
        r"your message to <?(" + _ADDRESS + r")>? (?:couldn't|could not|can't|cannot)"
        r" be delivered"
    ),
    re.compile(
        r"(?:wasn't|was not|has not been|couldn't be|could not be) delivered to <?("
        + _ADDRESS
        + r")"
    ),
    re.compile(r"votre message (?:a|pour) <?(" + _ADDRESS + r")>? n'a pas pu etre (?:remis|livre)"),
    re.compile(
        r"su mensaje (?:a|para) <?(" + _ADDRESS + r")>? no (?:se )?(?:pudo|ha podido)"
        r" (?:ser )?entregar"
    ),
)
_LISTED_RE = re.compile(r"^[ \t*•-]*(?:[^@\n]{0,80}?[(<\[][ \t]*)?(" + _ADDRESS + r")")
_LIST_STOP_RE = re.compile(
    r"^[ \t]*(?:diagnostic information|technical details|informations de diagnostic"
    r"|informacion de diagnostico|generating server|reporting-mta|-{2,}|_{5,})",
)
_DELAY_RE = re.compile(
    r"this is a warning|delivery to the following recipients? has been delayed|will be retried"
    r"|will (?:continue to )?retry|has been delayed|delivery (?:status notification )?\(delay\)"
    r"|delayed mail|could not send message for past|remise differee|entrega retrasada"
)
_PERMANENT_RE = re.compile(
    r"failed permanently|permanent (?:error|failure|fatal)|non-recoverable|unrecoverable error"
    r"|echec permanent|error permanente|delivery status notification \(failure\)"
)
_SMTP_RE = re.compile(r"\b(5[45]\d|4[25]\d)[ -]")


def _report_text(text: str) -> str:
    """The report part of a bounce's text: folded, lines cut short, the returned mail cut off."""
    folded = "\n".join(line[:_MAX_LINE] for line in _fold(text[:_MAX_DSN_CHARS]).split("\n"))
    cut = _ORIGINAL_RE.search(folded)
    return folded[: cut.start()] if cut else folded


def _from_text(text: str, exclude: frozenset[str]) -> tuple[list[str], bool]:
    """Failed recipients named in a bounce's text, and whether it reads like a bounce."""
    report = _report_text(text)
    found: list[str] = []

    def add(address: str) -> None:
        address = address.lower().strip(".")
        if address not in exclude and address not in found and len(found) < _MAX_RECIPIENTS:
            local = address.rsplit("@", 1)[0]
            if not _DAEMON.match(local):
                found.append(address)

    for pattern in _LINE_RES:
        for hit in pattern.finditer(report):
            add(hit.group(1))
    lines = report.split("\n")
    intro = False
    for i, line in enumerate(lines):
        match = _INTRO_RE.search(line)
        if match is None:
            continue
        intro = True
        rest = line[match.end() :]
        for address in _ADDRESS_RE.findall(rest):
            add(address)
        for following in lines[i + 1 : i + 40]:
            if _LIST_STOP_RE.match(following) or _INTRO_RE.search(following):
                break
            listed = _LISTED_RE.match(following)
            if listed is not None:
                add(listed.group(1))
    return found, intro or bool(found)


def _text_permanence(text: str) -> bool | None:
    report = _report_text(text)
    if _DELAY_RE.search(report):
        return False
    codes = {m.group(1) for m in _STATUS_RE.finditer(report)}
    if "5" in codes:
        return True
    if "4" in codes:
        return False
    if _PERMANENT_RE.search(report):
        return True
    smtp = {m.group(1)[0] for m in _SMTP_RE.finditer(report)}
    if "5" in smtp:
        return True
    if "4" in smtp:
        return False
    return None


def bounce_report(msg: ParsedMessage, own_addresses: Iterable[str] = ()) -> BounceReport:
    """Who failed, and for good or not, in a delivery report of any make.

    The ``message/delivery-status`` part is read first; the text (Exchange's "Delivery has
    failed to these recipients or groups", Postfix's "<x@y>: host … said", Sendmail's
    "The following addresses had permanent fatal errors", Gmail's "Delivery to the
    following recipient failed permanently"…) only when the part names nobody. The
    returned original and our own addresses never count as failed recipients.
    """
    own = frozenset(a.strip().lower() for a in own_addresses)
    recipients, permanence, has_dsn = _from_dsn(msg)
    exclude = own | {msg.from_addr} | set(msg.to)
    recipients = [r for r in recipients if r not in own]
    text_bounce = False
    if not recipients:
        recipients, text_bounce = _from_text(msg.text, frozenset(exclude))
    for value in msg.header_all("x-failed-recipients"):
        for address in _ADDRESS_RE.findall(value[:_MAX_LINE]):
            if address.lower() not in recipients and address.lower() not in own:
                recipients.append(address.lower())
    if any(p is True for p in permanence):
        permanent: bool | None = True
    elif permanence and all(p is False for p in permanence):
        permanent = False
    else:
        permanent = _text_permanence(f"{msg.subject}\n{msg.text}")
    return BounceReport(tuple(recipients[:_MAX_RECIPIENTS]), permanent, has_dsn or text_bounce)
