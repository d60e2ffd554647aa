"""Properties of parsers/ over generated mail, whatever its shape.

Hypothesis builds MIME trees — nested multipart/mixed, alternative, related, report,
attached messages inside attached messages — with real and bogus charsets, every transfer
encoding (broken base64 and quoted-printable included), encoded words, over-long and folded
header lines, and attachment names sent every way a mailer sends them (quoted, raw 8-bit,
RFC 2231 with continuations, RFC 2047), some of them hostile. Then:

* ``parse_message`` and ``analyse`` raise nothing but ``UnparseableMessage``, return frozen
  records, and give the same result for the same bytes;
* every file of a well-formed tree is found exactly once, under a safe name unique in the mail;
* ``safe_filename`` gives one safe path component; ``_unique`` never gives a taken name.

The default profile is quick (CI); ``--hypothesis-profile=fuzz`` runs far more examples
(the profiles are in tests/conftest.py). ``scripts/fuzz`` reuses :func:`mails`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import quopri
import unicodedata
from dataclasses import dataclass
from typing import TypeAlias

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from config.registry import load_directory, load_registry
from parsers.analysis import FILE, NOT_SUBMISSION, REVIEW, Analysis, analyse
from parsers.attachments import extract_all
from parsers.limits import OverLimit
from parsers.message import (
    MAX_NAME_BYTES,
    ParsedMessage,
    UnparseableMessage,
    _unique,
    parse_message,
    safe_filename,
)
from worker.store import safe_component

# --------------------------------------------------------------------------- the vocabulary

CHARSETS = (
    "utf-8",
    "UTF-8",
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "iso-8859-15",
    "koi8-r",
    "shift_jis",
    "iso-2022-jp",
    "gb2312",
    "big5",
    "euc-kr",
    "ks_c_5601-1987",
    "utf-16",
    "utf-16le",
    "utf-32",
    "utf-7",
    "utf-8*fr",
    '"utf-8"',
    "cp65001",
    "x-mac-roman",
    "iso-8859-8-i",
    "windows-874",
    "unknown-8bit",
    "x-unknown",
    "bogus-charset",
    "",
    "base64",
    "zlib",
    "rot13",
    "hex",
    "idna",
    "punycode",
    "été",
)
TRANSFER_ENCODINGS = (
    "7bit",
    "8bit",
    "binary",
    "base64",
    "quoted-printable",
    "x-uuencode",
    "BASE64 ",
    "bogus",
    "",
)
TEXT_TYPES = ("text/plain", "text/html", "text/csv", "text/calendar", "text/rtf", "text/enriched")
REPORT_TYPES = (
    "message/delivery-status",
    "message/disposition-notification",
    "message/feedback-report",
    "text/rfc822-headers",
)
FILE_TYPES = (
    "application/pdf",
    "application/octet-stream",
    "application/zip",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/ms-tnef",
    "application/vnd.ms-outlook",
    "image/png",
    "image/jpeg",
    "audio/x-bogus",
    "application/x-made-up",
)
MULTIPART_SUBTYPES = ("mixed", "alternative", "related", "report", "signed", "digest", "x-bogus")
HEADER_NAMES = (
    "Subject",
    "Comments",
    "Keywords",
    "X-Mailer",
    "Reply-To",
    "Cc",
    "In-Reply-To",
    "References",
    "Date",
    "Auto-Submitted",
    "Precedence",
    "X-Spam-Flag",
    "List-Id",
    "Authentication-Results",
    "Content-Language",
    "X-Autoreply",
    "Return-Path",
)
SENDERS = (
    "Mission permanente de la France <dfra.geneve@diplomatie.gouv.fr>",
    "mision.ginebra@sre.gob.mx",
    "someone@example.org",
    "MAILER-DAEMON@mx.example.org",
    "=?utf-8?b?w4l0YXQ=?= <x@y.example>",
    '"unterminated <a@b',
    "<>",
    "",
    "a@b@c, , @@",
)
NAME_TOKENS = (
    "..",
    ".",
    "/",
    "\\",
    "C:",
    "con",
    "NUL",
    "aux",
    "com1",
    "LPT¹",
    " ",
    "\t",
    "\x00",
    "\r\n",
    "\u202e",
    "\u200b",
    "\ufeff",
    "é",
    "e\u0301",
    "ß",
    "İ",
    "Σ",
    "日本",
    "😀",
    ".pdf",
    ".PDF",
    ".tar.gz",
    "x",
    "report",
    ":",
    "*",
    "?",
    '"',
    "<",
    ">",
    "|",
    "%",
    "=?",
    "?=",
    "''",
    "\x7f",
    "\x85",
    "\u2028",
    "a" * 130,
    "é" * 130,
)

names = st.one_of(
    st.lists(st.sampled_from(NAME_TOKENS), max_size=10).map("".join),
    st.text(max_size=60),
    st.text(st.characters(codec="utf-8"), min_size=200, max_size=600),
)
header_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=80)

Node: TypeAlias = "Leaf | Multi | Attached"


@dataclass(frozen=True, slots=True)
class Leaf:
    """A part with content. ``is_file``: it must be found as an attachment."""

    head: tuple[bytes, ...]  # its header lines, Content-Type first
    body: bytes  # as sent (already transfer-encoded)
    is_file: bool = False
    clean: bool = True  # nothing in it that may change the tree's structure


@dataclass(frozen=True, slots=True)
class Multi:
    subtype: str
    children: tuple[Node, ...]
    head: tuple[bytes, ...] = ()  # extra header lines
    preamble: bytes = b""
    epilogue: bytes = b""
    broken: str = ""  # "", "no-close", "wrong-boundary", "no-boundary"


@dataclass(frozen=True, slots=True)
class Attached:
    mail: Mail
    head: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Mail:
    head: tuple[bytes, ...]  # header lines, MIME-Version and Content-Type excluded
    root: Node
    newline: bytes = b"\r\n"


# --------------------------------------------------------------------------- strategies


def _encode_text(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset.strip('"').split("*")[0] or "ascii")
    except (LookupError, UnicodeError, TypeError, ValueError):
        return text.encode("utf-8", errors="surrogatepass")


@st.composite
def encoded_words(draw: st.DrawFn) -> bytes:
    """RFC 2047 words, right or wrong: any charset, B or Q, payload valid or not."""
    charset = draw(st.sampled_from(CHARSETS)) or "utf-8"
    raw = draw(st.binary(max_size=30) | header_text.map(lambda t: _encode_text(t, charset)))
    kind = draw(st.sampled_from("BbQq"))
    if kind in "Bb":
        payload = base64.b64encode(raw)
        if draw(st.booleans()):
            payload = payload[: draw(st.integers(0, len(payload)))]  # broken padding
    else:
        payload = b"".join(b"=%02X" % b for b in raw)
        if draw(st.booleans()):
            payload += b"=Z"  # a broken escape
    return b"=?" + charset.encode() + b"?" + kind.encode() + b"?" + payload + b"?="


header_values = st.one_of(
    header_text.map(lambda t: t.encode()),
    st.binary(max_size=60).map(lambda b: b.translate(None, b"\r\n")),
    st.lists(encoded_words(), min_size=1, max_size=4).map(b" ".join),
    st.integers(900, 5_000).map(lambda n: b"long " + b"x" * n),  # one over-long line
    st.lists(header_text.map(lambda t: t.encode()), min_size=2, max_size=5).map(
        b"\r\n\t".join
    ),  # folded
)


@st.composite
def extra_headers(draw: st.DrawFn) -> tuple[bytes, ...]:
    pairs = draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=4))
    return tuple(name.encode() + b": " + value for name, value in pairs)


@st.composite
def name_params(draw: st.DrawFn, name: str) -> bytes:
    """``name`` as a Content-Disposition / Content-Type parameter, sent some way."""
    how = draw(st.sampled_from(("quoted", "raw", "2231", "2231-split", "word", "token")))
    if how == "quoted" or (how in ("raw", "token") and ("\r" in name or "\n" in name)):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
        return b'"' + escaped.encode("ascii", errors="replace") + b'"'
    if how == "raw":  # 8-bit UTF-8 in the header, as many mailers send it
        return b'"' + name.replace('"', "").encode("utf-8", errors="surrogatepass") + b'"'
    if how == "token":
        return name.encode("utf-8", errors="surrogatepass")
    if how == "word":
        return b'"' + draw(encoded_words()) + b'"'
    charset = draw(st.sampled_from(CHARSETS))
    octets = _encode_text(name, charset)
    pct = b"".join(b"%%%02X" % b for b in octets)
    if how == "2231":
        return b"*=" + charset.encode() + b"''" + pct
    cut = draw(st.integers(0, len(pct))) // 3 * 3  # between two escapes
    return b"*0*=" + charset.encode() + b"''" + pct[:cut] + b"; {param}*1*=" + pct[cut:]


def _with_param(param: str, value: bytes) -> bytes:
    """``value`` from :func:`name_params` for parameter ``param``."""
    value = value.replace(b"{param}", param.encode())
    return param.encode() + (value if value.startswith(b"*") else b"=" + value)


def _quopri(data: bytes) -> bytes:
    return quopri.encodestring(data)


@st.composite
def file_leaves(draw: st.DrawFn) -> Leaf:
    """An attachment sent properly: base64, named (or not), any file type."""
    ctype = draw(st.sampled_from(FILE_TYPES))
    data = draw(st.binary(max_size=300))
    name = draw(names)
    where = draw(st.sampled_from(("disposition", "type", "both", "none")))
    disposition = draw(st.sampled_from(("attachment", "inline", "ATTACHMENT")))
    type_line = b"Content-Type: " + ctype.encode()
    disp_line = b"Content-Disposition: " + disposition.encode()
    if where in ("type", "both"):
        type_line += b"; " + _with_param("name", draw(name_params(name)))
    if where in ("disposition", "both"):
        disp_line += b"; " + _with_param("filename", draw(name_params(name)))
    body = base64.encodebytes(data)
    return Leaf(
        head=(type_line, b"Content-Transfer-Encoding: base64", disp_line, *draw(extra_headers())),
        body=body,
        is_file=True,
    )


@st.composite
def noise_leaves(draw: st.DrawFn) -> Leaf:
    """Anything else: bodies in any charset and transfer encoding, broken or not."""
    ctype = draw(
        st.sampled_from(TEXT_TYPES + REPORT_TYPES + FILE_TYPES)
        | st.sampled_from(("multipart/mixed", "message/rfc822", "text", "/", "x/y/z", ""))
        | header_text
    )
    charset = draw(st.sampled_from(CHARSETS))
    cte = draw(st.sampled_from(TRANSFER_ENCODINGS))
    text = draw(st.text(max_size=200))
    data = draw(st.binary(max_size=200) | st.just(_encode_text(text, charset)))
    if cte.strip().lower() == "base64":
        body = base64.encodebytes(data)
        if draw(st.booleans()):
            body = body[: draw(st.integers(0, len(body)))] + draw(
                st.sampled_from((b"", b"!*", b"="))
            )
    elif cte == "quoted-printable":
        body = _quopri(data)
        if draw(st.booleans()):
            body += draw(st.sampled_from((b"=ZZ", b"=", b"=\r\n=4", b"=C3")))
    elif cte == "x-uuencode":
        body = draw(st.sampled_from((b"begin 644 x.txt\n#86)C\n`\nend\n", b"begin 644\n", b"")))
    else:
        body = data
    head = [b"Content-Type: " + ctype.encode() + (b'; charset="' + charset.encode() + b'"')]
    if cte or draw(st.booleans()):
        head.append(b"Content-Transfer-Encoding: " + cte.encode())
    if draw(st.booleans()):
        head.append(b"Content-Disposition: " + draw(st.sampled_from((b"inline", b"attachment"))))
    if draw(st.booleans()):
        head = head[1:]  # no Content-Type at all
    clean = not any(word in ctype.lower() for word in ("multipart", "message", "rfc822"))
    return Leaf(head=tuple(head) + draw(extra_headers()), body=body, clean=clean)


@st.composite
def mail_headers(draw: st.DrawFn) -> tuple[bytes, ...]:
    head = [
        b"From: " + draw(st.sampled_from(SENDERS)).encode(),
        b"To: CCM Secretariat <ccm@unog.ch>",
        b"Subject: " + draw(header_values),
    ]
    if draw(st.booleans()):
        head.append(b"Date: " + draw(st.sampled_from((b"Mon, 14 Aug 2017 09:00:00 +0200", b"x"))))
    if draw(st.booleans()):
        head.append(b"Message-ID: <" + draw(st.binary(max_size=20)).translate(None, b"\r\n") + b">")
    return tuple(head) + draw(extra_headers())


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    multis = st.builds(
        Multi,
        subtype=st.sampled_from(MULTIPART_SUBTYPES),
        children=st.lists(children, max_size=4).map(tuple),
        head=extra_headers(),
        preamble=st.sampled_from((b"", b"This is a multi-part message in MIME format.\r\n")),
        epilogue=st.sampled_from((b"", b"epilogue\r\n")),
        broken=st.sampled_from(("", "", "", "", "no-close", "wrong-boundary", "no-boundary")),
    )
    attached = st.builds(
        Attached,
        mail=st.builds(Mail, head=mail_headers(), root=children),
        head=st.sampled_from(
            ((), (b'Content-Disposition: attachment; filename="fwd.eml"',), (b"X-A: 1",))
        ),
    )
    return multis | attached


nodes: st.SearchStrategy[Node] = st.recursive(file_leaves() | noise_leaves(), _extend, max_leaves=8)


@st.composite
def mails(draw: st.DrawFn) -> Mail:
    return Mail(
        head=draw(mail_headers()),
        root=draw(nodes),
        newline=draw(st.sampled_from((b"\r\n", b"\r\n", b"\n"))),
    )


# --------------------------------------------------------------------------- rendering


@dataclass(slots=True)
class Rendered:
    raw: bytes
    files: list[bytes]  # the decoded bytes of every file that must be found once
    clean: bool  # the tree is well formed, so ``files`` is a promise
    boundaries: int = 0


def render(mail: Mail) -> Rendered:
    out = Rendered(b"", [], True)
    out.raw = _render_mail(mail, out, mail.newline, depth=0)
    return out


def _render_mail(mail: Mail, out: Rendered, nl: bytes, depth: int) -> bytes:
    head, body = _render_node(mail.root, out, nl, depth)
    lines = [*mail.head, b"MIME-Version: 1.0", *head]
    return nl.join(line.replace(b"\r\n", nl) for line in lines) + nl + nl + body


def _render_node(node: Node, out: Rendered, nl: bytes, depth: int) -> tuple[list[bytes], bytes]:
    if isinstance(node, Leaf):
        if not node.is_file:
            # A body that happens to hold a delimiter line would change the tree.
            out.clean = out.clean and node.clean and b"--=_b" not in node.body
            return list(node.head), node.body
        # Distinct bytes per file, so that each can be told apart by its content.
        data = b"file %d:" % len(out.files) + base64.decodebytes(node.body)
        out.files.append(data)
        return list(node.head), base64.encodebytes(data).replace(b"\n", nl)
    if isinstance(node, Attached):
        inner = _render_mail(node.mail, out, nl, depth + 1)
        return [b"Content-Type: message/rfc822", *node.head], inner
    boundary = b"=_b%d_ccm" % out.boundaries
    out.boundaries += 1
    declared = {"wrong-boundary": b"=_elsewhere", "no-boundary": b""}.get(node.broken, boundary)
    ctype = b"Content-Type: multipart/" + node.subtype.encode()
    if declared:
        ctype += b'; boundary="' + declared + b'"'
    out.clean = out.clean and not node.broken
    chunks = [node.preamble]
    for child in node.children:
        head, body = _render_node(child, out, nl, depth)
        chunks.append(b"--" + boundary + nl + nl.join(head) + nl + nl + body + nl)
    if node.broken != "no-close":
        chunks.append(b"--" + boundary + b"--" + nl + node.epilogue)
    return [ctype, *node.head], b"".join(chunks)


# --------------------------------------------------------------------------- checks


def assert_safe_component(name: str) -> None:
    """One path component: no separator, control or format character, hidden or device name."""
    assert name and name not in (".", ".."), repr(name)
    assert "/" not in name and "\\" not in name and "\x00" not in name, repr(name)
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")]
    assert not bad, f"{name!r}: {bad!r}"
    assert not name.startswith((".", " ")) and not name.endswith((".", " ")), repr(name)
    assert len(name.encode()) <= MAX_NAME_BYTES, (len(name.encode()), name)
    assert unicodedata.normalize("NFC", name) == name, repr(name)
    assert name.split(".", 1)[0].lower() not in {"con", "prn", "aux", "nul"}, repr(name)


def assert_frozen(record: object) -> None:
    assert dataclasses.is_dataclass(record) and not isinstance(record, type)
    field = dataclasses.fields(record)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, None)


def assert_parsed_well(msg: ParsedMessage) -> None:
    assert_frozen(msg)
    for value in (msg.reply_to, msg.to, msg.cc, msg.references, msg.headers, msg.attachments):
        assert isinstance(value, tuple)
    for att in msg.attachments:
        assert_frozen(att)
        assert_safe_component(att.safe_name)
    assert len({a.safe_name.lower() for a in msg.attachments}) == len(msg.attachments)


REGISTRY = load_registry()
DIRECTORY = load_directory()


def decide(raw: bytes) -> Analysis | str:
    """The analysis, or the reason of the ``OverLimit`` that ``analyse`` documents."""
    try:
        return analyse(
            raw,
            registry=REGISTRY,
            directory=DIRECTORY,
            own_addresses=("ccm@unog.ch",),
            extract=lambda msg: extract_all(msg, ocr=False),
        )
    except OverLimit as exc:
        return str(exc)


# --------------------------------------------------------------------------- the properties


@given(mails())
def test_every_file_of_a_well_formed_tree_is_found_once_under_a_safe_unique_name(
    mail: Mail,
) -> None:
    rendered = render(mail)
    msg = parse_message(rendered.raw)
    assert_parsed_well(msg)
    if rendered.clean:
        found = [a.data for a in msg.attachments]
        for data in rendered.files:
            assert found.count(data) == 1, (data[:20], [f[:20] for f in found])


@given(mails())
def test_parsing_is_total_and_deterministic(mail: Mail) -> None:
    raw = render(mail).raw
    first = parse_message(raw)
    assert_parsed_well(first)
    assert parse_message(raw) == first


@given(mails())
def test_analysis_never_raises_and_decides_the_same_way_twice(mail: Mail) -> None:
    raw = render(mail).raw
    first = decide(raw)
    assert decide(raw) == first
    if isinstance(first, str):
        assert first.startswith("over a limit: ")  # quarantined with this reason
        return
    assert_frozen(first)
    assert first.outcome in (FILE, REVIEW, NOT_SUBMISSION)
    assert not first.ack or first.outcome == FILE
    assert first.outcome != FILE or first.state.iso3 in REGISTRY
    assert 0.0 <= first.confidence <= 1.0
    assert [x.name for x in first.extractions] == [a.safe_name for a in first.message.attachments]
    for record in (first.state, first.kind, first.sender, *first.extractions):
        assert_frozen(record)
    json.dumps(first.summary(), ensure_ascii=False)  # what the worker stores
    for kind in first.kinds:
        json.loads(first.details_json(kind) or "null")


@given(st.binary(max_size=2_000) | mails().map(lambda m: render(m).raw), st.data())
def test_any_bytes_parse_or_are_unparseable_never_anything_else(
    raw: bytes, data: st.DataObject
) -> None:
    if raw and data.draw(st.booleans()):  # a damaged copy: a cut, a flipped byte, a repeat
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = data.draw(
            st.sampled_from(
                (raw[:at], raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :], raw[:at] * 2)
            )
        )
    try:
        msg = parse_message(raw)
    except UnparseableMessage as exc:
        assert str(exc)
        return
    assert_parsed_well(msg)


@given(names, st.integers(1, 10_000), st.sampled_from(("application/pdf", "x/y", "")))
@example(".. .pdf", 1, "")  # once a hidden ".pdf"
@example("0" * 117 + ".." + "0" * 81, 1, "")  # once cut to "0…0..0", then to "0…0.0"
@example("U\ud7fc\u0300", 1, "")  # the unassigned U+D7FC went after NFC: "U\u0300" was left
def test_safe_filename_is_one_safe_component_that_the_archive_keeps_as_is(
    name: str, index: int, content_type: str
) -> None:
    safe = safe_filename(name, index, content_type)
    assert_safe_component(safe)
    # Stable: an attached mail's files are named again when it is unpacked, and must agree.
    assert safe_filename(safe, index, content_type) == safe
    assert safe_component(safe) == safe  # the archive stores the name the parser chose


@given(st.lists(names, max_size=30), st.sets(names.map(lambda n: n.lower()), max_size=10))
def test_unique_never_returns_a_taken_name(wanted: list[str], already: set[str]) -> None:
    taken = set(already)
    for index, name in enumerate(wanted, start=1):
        before = set(taken)
        got = _unique(safe_filename(name, index, "application/pdf"), taken)
        assert got.lower() not in before
        assert taken == before | {got.lower()}
        assert_safe_component(got)
