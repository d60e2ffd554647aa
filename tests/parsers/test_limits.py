"""parsers.limits: what one message may ask for, checked before anything expensive runs."""

from __future__ import annotations

import sys
from email.message import EmailMessage

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from config.registry import load_directory, load_registry
from parsers.analysis import analyse
from parsers.limits import (
    Limits,
    OverLimit,
    check_attachments,
    check_raw,
    header_size,
    in_file,
    is_over_limit,
    mime_depth,
    over_limit,
)


def nested(depth: int, *, crlf: bool = False) -> bytes:
    """A message whose multiparts sit ``depth`` deep, a text part at the bottom."""
    body = b"Content-Type: text/plain\n\nDelegation of France\n"
    for level in range(depth, 0, -1):
        b = f"b{level}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="' + b + b'"\n\n'
            b"preamble\n--" + b + b"\n" + body + b"--" + b + b"--\n"
        )
    raw = b"From: a@example.org\nSubject: deep\nMIME-Version: 1.0\n" + body
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def test_a_plain_message_is_not_nested() -> None:
    assert mime_depth(b"From: a@example.org\n\nhello\n--not a boundary\n", stop_above=5) == 0


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("depth", [1, 2, 7])
def test_it_counts_nesting_from_the_raw_lines(depth: int, crlf: bool) -> None:
    assert mime_depth(nested(depth, crlf=crlf), stop_above=50) == depth


def test_parts_side_by_side_are_not_nesting() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="outer"\n\n'
        b'--outer\nContent-Type: multipart/alternative; boundary="a1"\n\n'
        b"--a1\nContent-Type: text/plain\n\nx\n--a1--\n"
        b'--outer\nContent-Type: multipart/alternative; boundary="a2"\n\n'
        b"--a2\nContent-Type: text/plain\n\ny\n--a2--\n"
        b"--outer--\n"
    )
    assert mime_depth(raw, stop_above=10) == 2


def test_an_attached_mail_is_a_level_and_its_own_parts_count_below_it() -> None:
    inner = nested(2).replace(b"From: a@example.org\n", b"From: b@example.org\n")
    raw = (
        b'Content-Type: multipart/mixed; boundary="top"\n\n'
        b"--top\nContent-Type: text/plain\n\nsee below\n"
        b"--top\nContent-Type: message/rfc822\n\n" + inner + b"--top--\n"
    )
    assert mime_depth(raw, stop_above=10) == 4  # top, the mail, its two multiparts


def test_a_folded_content_type_and_an_unquoted_boundary_are_read() -> None:
    raw = (
        b"Content-Type: multipart/mixed;\n\tboundary=xyz\n\n"
        b"--xyz\nContent-Type: text/plain\n\nx\n--xyz--\n"
    )
    assert mime_depth(raw, stop_above=10) == 1


def test_counting_stops_past_the_limit() -> None:
    assert mime_depth(nested(500), stop_above=20) == 21


def test_the_python_parser_is_never_asked_to_recurse_through_a_nesting_bomb() -> None:
    raw = nested(sys.getrecursionlimit())
    reason = check_raw(raw, Limits())
    assert reason == "over a limit: MIME parts nested more than 20 deep"


def test_header_size_is_the_top_block_only() -> None:
    assert header_size(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore") == len(b"A: 1\r\nB: 2")
    assert header_size(b"A: 1\nB: 2") == len(b"A: 1\nB: 2")  # no body: all header


def test_check_raw_names_the_limit_and_the_figure() -> None:
    small = Limits(message_bytes=1000, header_bytes=100, mime_depth=3)
    assert check_raw(b"From: a@example.org\n\n" + b"x" * 2000, small) == (
        "over a limit: the message is 2 KB (limit 1000 bytes)"
    )
    assert check_raw(b"X-Pad: " + b"y" * 200 + b"\n\nhi", small) == (
        "over a limit: the header block is 207 bytes (limit 100 bytes)"
    )
    assert check_raw(nested(4), Limits(mime_depth=3)) == (
        "over a limit: MIME parts nested more than 3 deep"
    )
    assert check_raw(nested(3), Limits(mime_depth=3)) is None


def test_check_attachments_counts_and_sizes() -> None:
    limits = Limits(attachments=2, attachment_bytes=3 * 1024 * 1024)
    assert check_attachments([("a.pdf", 10), ("b.pdf", 20)], limits) is None
    assert check_attachments([("a", 1)] * 3, limits) == "over a limit: 3 attachments (limit 2)"
    assert check_attachments([("big.pdf", 4 * 1024 * 1024)], limits) == (
        "over a limit: attachment 'big.pdf' is 4 MB (limit 3 MB)"
    )


def test_reasons_carry_their_mark_through_plain_strings() -> None:
    reason = over_limit("x")
    assert is_over_limit(reason) and over_limit(reason) == reason
    assert not is_over_limit("corrupt PDF") and not is_over_limit(None)
    assert in_file("pack.zip", reason) == "over a limit: pack.zip: x"


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="zip_ratio"):
        Limits(zip_ratio=0)


def mail_with(attachments: list[tuple[str, bytes]]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "mission.france@diplomatie.gouv.fr"
    msg["To"] = "ccm@unog.ch"
    msg["Subject"] = "Délégation française"
    msg.set_content("Veuillez trouver ci-joint la liste.")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


def run(raw: bytes, limits: Limits) -> str:
    with pytest.raises(OverLimit) as caught:
        analyse(raw, registry=load_registry(), directory=load_directory(), limits=limits)
    return str(caught.value)


def test_analyse_refuses_each_limit_in_turn_with_its_reason() -> None:
    raw = mail_with([("a.bin", b"1" * 5000), ("b.bin", b"2"), ("c.bin", b"3")])
    assert run(raw, Limits(message_bytes=1000)).startswith("over a limit: the message is")
    assert run(raw, Limits(attachments=2)) == "over a limit: 3 attachments (limit 2)"
    assert run(raw, Limits(attachment_bytes=4000)) == (
        "over a limit: attachment 'a.bin' is 5 KB (limit 4 KB)"
    )
    assert run(nested(30), Limits()) == "over a limit: MIME parts nested more than 20 deep"
    # Within every limit, the same mail is analysed as usual.
    analysis = analyse(raw, registry=load_registry(), directory=load_directory())
    assert analysis.state.iso3 == "FRA"


def _depth_line_by_line(raw: bytes, stop_above: int) -> int:
    """mime_depth as it was first written, every line cut out: the oracle for the version that
    skips a body's lines."""
    from parsers.limits import _BOUNDARY, _content_type

    stack: list[bytes | None] = []
    deepest, in_header, block = 0, True, []
    for line in raw.splitlines():
        if in_header:
            if line.strip():
                block.append(line)
                continue
            ctype = _content_type(block)
            in_header, block = False, []
            if ctype.startswith(b"multipart/"):
                match = _BOUNDARY.search(ctype)
                if match:
                    stack.append(match.group(1) or match.group(2))
            elif ctype.startswith((b"message/rfc822", b"message/global")):
                stack.append(None)
                in_header = True
            deepest = max(deepest, len(stack))
            if deepest > stop_above:
                return deepest
            continue
        if not line.startswith(b"--"):
            continue
        token = line.rstrip()[2:]
        closing = token.endswith(b"--")
        for level in range(len(stack) - 1, -1, -1):
            boundary = stack[level]
            if boundary is not None and (token == boundary or (closing and token[:-2] == boundary)):
                del stack[level + 1 :]
                if closing:
                    stack.pop()
                else:
                    in_header = True
                break
    return deepest


PIECES = [
    b"Content-Type: multipart/mixed; boundary=b\n",
    b'Content-Type: multipart/mixed; boundary="c"\r\n',
    b"Content-Type: message/rfc822\n",
    b"--b\r\n", b"--b--\n", b"--c\n", b"\r--b\r", b"\n\n", b"\r\n", b"\r", b"\n",
    b"-", b"--", b"a-b", b"QUJD", b"x",
]  # fmt: skip


@settings(max_examples=500)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.integers(1, 6))
@example(  # a delimiter line after a lone CR: a line of its own for splitlines too
    [PIECES[0], b"\n", b"x", b"\r--b\r", PIECES[1], b"\n"], 5
)
def test_mime_depth_skipping_body_lines_counts_as_reading_every_line(
    pieces: list[bytes], stop_above: int
) -> None:
    raw = b"".join(pieces)
    assert mime_depth(raw, stop_above=stop_above) == _depth_line_by_line(raw, stop_above)
