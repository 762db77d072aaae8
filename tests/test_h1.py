"""The HTTP/1.1 wire format of the keep-alive transport (``_transport.h1``): pure bytes in, bytes out."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from airflow_provider_together._transport import h1

NEXT_RESPONSE = b"HTTP/1.1 204 No Content\r\n\r\n"


def head(status_line: bytes = b"HTTP/1.1 200 OK", *headers: bytes) -> h1.ResponseHead:
    return h1.parse_response_head(b"\r\n".join([status_line, *headers]))


def splits(wire: bytes) -> Iterator[list[int]]:
    """Cut points to feed ``wire`` at: one piece, every two-piece split, byte by byte, and random cuts."""
    yield []
    for cut in range(1, len(wire)):
        yield [cut]
    yield list(range(1, len(wire)))
    rng = random.Random(len(wire))
    for _ in range(20):
        yield sorted(rng.sample(range(1, len(wire)), min(len(wire) - 1, rng.randint(1, 8))))


def feed(decoder: h1.BodyDecoder, wire: bytes, cuts: list[int]) -> tuple[bytes, bytes]:
    """Feed ``wire`` cut at ``cuts`` as a transport would; return the body and what is left in the buffer."""
    buffer = bytearray()
    body = b""
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        buffer += wire[start:end]
        body += b"".join(decoder.feed(buffer))
    return body, bytes(buffer)


def decoder_for(*headers: bytes) -> Callable[[], h1.BodyDecoder]:
    return lambda: h1.body_decoder(head(b"HTTP/1.1 200 OK", *headers), "GET")


# -- request head -----------------------------------------------------------------------------------


def test_request_head_is_byte_exact() -> None:
    """The request line, the headers in order with their casing, then the blank line: nothing else."""
    wire = h1.encode_request_head(
        "GET", b"/v1/fine-tunes/ft-1?x=1", [(b"Host", b"api.together.ai"), (b"X-Trace-ID", b"a b")]
    )
    assert wire == (
        b"GET /v1/fine-tunes/ft-1?x=1 HTTP/1.1\r\nHost: api.together.ai\r\nX-Trace-ID: a b\r\n\r\n"
    )


@pytest.mark.parametrize("value", [b"a\rb", b"a\nb", b"a\r\nX-Injected: 1", b"a\x00b"])
def test_request_header_value_that_would_split_the_message_is_refused(value: bytes) -> None:
    """CR, LF or NUL in a value would let a caller inject headers or end the head early."""
    with pytest.raises(h1.ProtocolError):
        h1.encode_request_head("GET", b"/", [(b"X-Value", value)])


@pytest.mark.parametrize("name", [b"X Name", b"X:Name", b"", b"X-Name\r\n"])
def test_request_header_with_invalid_name_is_refused(name: bytes) -> None:
    """A header name must be an RFC 9110 token, or the server would read another header than we meant."""
    with pytest.raises(h1.ProtocolError):
        h1.encode_request_head("GET", b"/", [(name, b"v")])


@pytest.mark.parametrize("method", ["GET /x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "G ET", "", "GÉT"])
def test_request_method_that_is_not_a_token_is_refused(method: str) -> None:
    """httpx does not validate the method; an injected one would smuggle a second request."""
    with pytest.raises(h1.ProtocolError):
        h1.encode_request_head(method, b"/", [])


@pytest.mark.parametrize("target", [b"/a b", b"/a\r\nX-Injected: 1", b"/a\nb", b"/a\x00"])
def test_request_target_with_space_or_line_break_is_refused(target: bytes) -> None:
    """A space or CRLF in the target would change the request line (request smuggling)."""
    with pytest.raises(h1.ProtocolError):
        h1.encode_request_head("GET", target, [(b"Host", b"h")])


# -- response head ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_line", "version", "code", "reason"),
    [
        (b"HTTP/1.1 200 OK", b"HTTP/1.1", 200, b"OK"),
        (b"HTTP/1.1 404 Not Found", b"HTTP/1.1", 404, b"Not Found"),
        (b"HTTP/1.1 204", b"HTTP/1.1", 204, b""),
        (b"HTTP/1.1 204 ", b"HTTP/1.1", 204, b""),
        (b"HTTP/1.0 503 Service Unavailable", b"HTTP/1.0", 503, b"Service Unavailable"),
    ],
)
def test_status_line_is_parsed_with_or_without_reason(
    status_line: bytes, version: bytes, code: int, reason: bytes
) -> None:
    """The reason phrase is optional (RFC 9112 4) and may contain spaces; HTTP/1.0 servers are read too."""
    parsed = head(status_line)
    assert (parsed.http_version, parsed.status_code, parsed.reason, parsed.headers) == (
        version,
        code,
        reason,
        [],
    )


def test_header_values_are_stripped_and_names_keep_their_casing_and_order() -> None:
    """Optional whitespace around a value is not part of it; the server's casing and order are kept."""
    parsed = head(
        b"HTTP/1.1 200 OK", b"Content-Type: \t application/json \t", b"X-Request-ID:abc", b"x-empty:"
    )
    assert parsed.headers == [
        (b"Content-Type", b"application/json"),
        (b"X-Request-ID", b"abc"),
        (b"x-empty", b""),
    ]


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b"ICY 200 OK", id="not-http"),
        pytest.param(b"HTTP/2 200 OK", id="http2"),
        pytest.param(b"", id="empty"),
        pytest.param(b"HTTP/1.1", id="no-status"),
        pytest.param(b"HTTP/1.1 20 OK", id="two-digit-status"),
        pytest.param(b"HTTP/1.1 2000 OK", id="four-digit-status"),
        pytest.param(b"HTTP/1.1 2x0 OK", id="non-digit-status"),
        pytest.param(b"HTTP/1.1 200 OK\r\nNo colon here", id="header-without-colon"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length : 5", id="space-before-colon"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n continued", id="obs-fold-without-colon"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\tX-B: 2", id="obs-fold-with-colon"),
    ],
)
def test_malformed_response_head_is_a_protocol_error(block: bytes) -> None:
    """A head we cannot read exactly fails the request instead of being guessed at (RFC 9112 5.2, 5.1)."""
    with pytest.raises(h1.ProtocolError):
        h1.parse_response_head(block)


def test_values_splits_comma_lists_across_fields_and_lower_cases() -> None:
    """Connection and Transfer-Encoding decisions compare tokens, however the server spelled and split them."""
    parsed = head(
        b"HTTP/1.1 200 OK", b"Connection: Keep-Alive, ,Upgrade", b"X-Other: a", b"CONNECTION: Close"
    )
    assert parsed.values(b"connection") == [b"keep-alive", b"upgrade", b"close"]
    assert parsed.values(b"missing") == []


# -- body framing (RFC 9112 6.3) ---------------------------------------------------------------------


def test_head_request_has_no_body_even_with_content_length() -> None:
    """A HEAD answer's Content-Length describes the GET body, which is not sent: reading it would hang."""
    decoder = h1.body_decoder(head(b"HTTP/1.1 200 OK", b"Content-Length: 10"), "HEAD")
    buffer = bytearray(NEXT_RESPONSE)
    assert (decoder.done, decoder.feed(buffer), bytes(buffer), decoder.keep_alive) == (
        True,
        [],
        NEXT_RESPONSE,
        True,
    )


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified", b"100 Continue", b"199 Odd"])
def test_bodyless_statuses_have_an_empty_body(status: bytes) -> None:
    """204, 304 and 1xx never carry a body, whatever the framing headers say (RFC 9112 6.3 rule 1)."""
    decoder = h1.body_decoder(head(b"HTTP/1.1 " + status, b"Content-Length: 10"), "GET")
    buffer = bytearray(NEXT_RESPONSE)
    assert (decoder.done, decoder.feed(buffer), bytes(buffer), decoder.keep_alive) == (
        True,
        [],
        NEXT_RESPONSE,
        True,
    )


def test_switching_protocols_is_not_reusable() -> None:
    """After a 101 the socket speaks another protocol: it must not go back to the pool."""
    decoder = h1.body_decoder(head(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket"), "GET")
    assert (decoder.done, decoder.keep_alive) == (True, False)


def test_chunked_wins_over_content_length_and_drops_the_connection() -> None:
    """Both headers is a smuggling vector: decode chunked (RFC 9112 6.3 rule 3), then close the socket."""
    decoder = decoder_for(b"Content-Length: 3", b"Transfer-Encoding: chunked")()
    body, left = feed(decoder, b"5\r\nhello\r\n0\r\n\r\n" + NEXT_RESPONSE, [])
    assert (body, left, decoder.done, decoder.keep_alive) == (b"hello", NEXT_RESPONSE, True, False)


@pytest.mark.parametrize("coding", [b"gzip", b"chunked, gzip", b"Chunked, GZIP"])
def test_final_coding_other_than_chunked_reads_until_close(coding: bytes) -> None:
    """Without chunked last, only the close ends the body (RFC 9112 6.3 rule 4): not reusable."""
    decoder = decoder_for(b"Transfer-Encoding: " + coding, b"Content-Length: 2")()
    body, left = feed(decoder, b"abcdef", [3])
    assert (body, left, decoder.done, decoder.keep_alive) == (b"abcdef", b"", False, False)
    decoder.at_eof()
    assert decoder.done


def test_chunked_last_after_other_codings_is_chunked() -> None:
    """``gzip, chunked`` is framed by the chunks; the transport leaves the gzip to httpx's decoder."""
    decoder = decoder_for(b"Transfer-Encoding: gzip, chunked")()
    body, left = feed(decoder, b"3\r\nabc\r\n0\r\n\r\n", [])
    assert (body, left, decoder.done, decoder.keep_alive) == (b"abc", b"", True, True)


@pytest.mark.parametrize(
    "headers",
    [(b"Content-Length: 5", b"Content-Length: 5"), (b"Content-Length: 5, 5",), (b"Content-Length:  5 ",)],
)
def test_duplicate_equal_content_lengths_are_accepted(headers: tuple[bytes, ...]) -> None:
    """RFC 9112 6.3 rule 5 allows repeated identical lengths: a proxy may have merged two fields."""
    decoder = decoder_for(*headers)()
    body, left = feed(decoder, b"hello" + NEXT_RESPONSE, [])
    assert (body, left, decoder.done, decoder.keep_alive) == (b"hello", NEXT_RESPONSE, True, True)


@pytest.mark.parametrize(
    "headers",
    [
        (b"Content-Length: 5", b"Content-Length: 6"),
        (b"Content-Length: 5, 6",),
        (b"Content-Length: five",),
        (b"Content-Length: -1",),
        (b"Content-Length: +5",),
        (b"Content-Length: 0x10",),
    ],
)
def test_conflicting_or_non_numeric_content_length_is_a_protocol_error(headers: tuple[bytes, ...]) -> None:
    """Guessing which length is right is how responses get desynchronised (RFC 9112 6.3 rule 5)."""
    with pytest.raises(h1.ProtocolError):
        decoder_for(*headers)()


def test_empty_content_length_is_a_protocol_error() -> None:
    """An empty Content-Length is invalid (1*DIGIT), not absent: the framing is unknown, so fail."""
    with pytest.raises(h1.ProtocolError):
        decoder_for(b"Content-Length: ")()


def test_no_length_reads_until_close_and_is_not_reusable() -> None:
    """With neither header the close ends the body (RFC 9112 6.3 rule 8): the socket cannot be reused."""
    decoder = decoder_for(b"Content-Type: text/plain")()
    body, left = feed(decoder, b"all of it", [2, 5])
    assert (body, left, decoder.done, decoder.keep_alive) == (b"all of it", b"", False, False)
    decoder.at_eof()
    assert decoder.done


@pytest.mark.parametrize("connection", [b"Connection: close", b"Connection: Keep-Alive, CLOSE"])
def test_connection_close_is_not_reusable(connection: bytes) -> None:
    """A server that says close will close: sending the next request on that socket would fail."""
    decoder = decoder_for(b"Content-Length: 2", connection)()
    assert (feed(decoder, b"ok", []), decoder.done, decoder.keep_alive) == ((b"ok", b""), True, False)


def test_http_10_response_is_not_reusable() -> None:
    """HTTP/1.0 closes by default; the transport does not speak its keep-alive extension."""
    decoder = h1.body_decoder(head(b"HTTP/1.0 200 OK", b"Content-Length: 2"), "GET")
    assert (feed(decoder, b"ok", []), decoder.done, decoder.keep_alive) == ((b"ok", b""), True, False)


def test_keep_alive_response_with_content_length_is_reusable() -> None:
    """The common case stays pooled: every other keep_alive=False above would be pointless otherwise."""
    decoder = decoder_for(b"Content-Length: 0")()
    assert (decoder.done, decoder.keep_alive) == (True, True)


# -- decoders, whatever the split -------------------------------------------------------------------


def test_length_decoder_leaves_the_next_response_in_the_buffer_at_any_split() -> None:
    """Bytes past Content-Length belong to the next response on the connection; they must stay put."""
    wire = b"hello world" + NEXT_RESPONSE
    for cuts in splits(wire):
        decoder = decoder_for(b"Content-Length: 11")()
        assert feed(decoder, wire, cuts) == (b"hello world", NEXT_RESPONSE), cuts
        assert decoder.done, cuts


CHUNKED = (
    b"5;ext=1\r\nhello\r\n"
    b"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    b'1a ; name="quoted"\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n'
    b"0\r\nX-Checksum: 123\r\nX-Other: x\r\n\r\n"
)


def test_chunked_decoder_gives_the_same_body_at_any_split() -> None:
    """TCP delivers chunks cut anywhere: extensions, hex case and trailers must not depend on where."""
    wire = CHUNKED + NEXT_RESPONSE
    expected = b"hello" + b"abcdefghijklmnopqrstuvwxyz" + b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for cuts in splits(wire):
        decoder = decoder_for(b"Transfer-Encoding: chunked")()
        assert feed(decoder, wire, cuts) == (expected, NEXT_RESPONSE), cuts
        assert (decoder.done, decoder.keep_alive) == (True, True), cuts
        decoder.at_eof()  # a close right after the last chunk is fine


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"zz\r\nhello\r\n0\r\n\r\n", id="non-hex-size"),
        pytest.param(b"\r\nhello\r\n0\r\n\r\n", id="empty-size"),
        pytest.param(b";ext\r\nhello\r\n0\r\n\r\n", id="only-extension"),
        pytest.param(b"-5\r\nhello\r\n0\r\n\r\n", id="negative-size"),
        pytest.param(b"0x5\r\nhello\r\n0\r\n\r\n", id="prefixed-size"),
        pytest.param(b"1" * 17 + b"\r\n", id="size-over-16-digits"),
        pytest.param(b"5\r\nhelloXY\r\n0\r\n\r\n", id="no-crlf-after-data"),
        pytest.param(b"5\r\nhello0\r\n\r\n", id="next-size-where-crlf-belongs"),
        pytest.param(b"1" * (16 * 1024 + 100), id="size-line-over-16kib"),
        pytest.param(b"5;" + b"x" * (16 * 1024 + 100), id="extension-over-16kib"),
        pytest.param(
            b"5\r\nhello\r\n0\r\nX-Big: " + b"a" * (16 * 1024 + 100) + b"\r\n\r\n", id="trailer-over-16kib"
        ),
    ],
)
def test_malformed_chunked_body_is_a_protocol_error_at_any_split(wire: bytes) -> None:
    """A chunked body we cannot frame exactly fails, and an endless size line cannot grow the buffer."""
    for cuts in splits(wire):
        with pytest.raises(h1.ProtocolError):
            feed(decoder_for(b"Transfer-Encoding: chunked")(), wire, cuts)


def test_long_trailer_line_has_the_same_outcome_at_any_split() -> None:
    """Whether a response decodes must not depend on how the network cut it into reads."""
    wire = b"5\r\nhello\r\n0\r\nX-Checksum: " + b"a" * 1100 + b"\r\n\r\n"
    outcomes: set[object] = set()
    for cuts in splits(wire):
        try:
            outcomes.add(feed(decoder_for(b"Transfer-Encoding: chunked")(), wire, cuts))
        except h1.ProtocolError:
            outcomes.add("ProtocolError")
    assert len(outcomes) == 1, outcomes


@pytest.mark.parametrize(
    ("framing", "wire"),
    [
        pytest.param(b"Content-Length: 10", b"hello", id="length"),
        pytest.param(b"Transfer-Encoding: chunked", b"5\r\nhello\r\n", id="chunked-no-last-chunk"),
        pytest.param(b"Transfer-Encoding: chunked", b"5\r\nhel", id="chunked-mid-data"),
        pytest.param(
            b"Transfer-Encoding: chunked", b"5\r\nhello\r\n0\r\nX-T: 1\r\n", id="chunked-mid-trailer"
        ),
    ],
)
def test_close_before_the_framed_end_is_a_protocol_error(framing: bytes, wire: bytes) -> None:
    """A truncated body must not pass as a complete one: the caller would parse half a JSON document."""
    decoder = decoder_for(framing)()
    feed(decoder, wire, [])
    assert not decoder.done
    with pytest.raises(h1.ProtocolError):
        decoder.at_eof()


def test_close_after_a_complete_length_body_is_fine() -> None:
    """The server may close right after the last byte; only an early close is an error."""
    decoder = decoder_for(b"Content-Length: 5")()
    feed(decoder, b"hello", [])
    decoder.at_eof()
    assert decoder.done


@pytest.mark.parametrize(
    ("wire", "head_bytes"),
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\nbody\n\nmore", 25, id="crlf"),
        pytest.param(b"HTTP/1.1 200 OK\nA: 1\n\nbody\r\n\r\nmore", 22, id="bare-lf-with-crlf-in-body"),
        pytest.param(b"HTTP/1.1 200 OK\r\nA: 1\n\r\nbody", 24, id="mixed"),
        pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n", 27, id="no-headers"),
    ],
)
def test_head_ends_at_the_first_empty_line_whatever_the_line_breaks(wire: bytes, head_bytes: int) -> None:
    """A bare-LF server must not hang the read, and body bytes must never be taken for the head's end."""
    end, size = h1.find_head_end(bytearray(wire))
    assert end + size == head_bytes
    head = h1.parse_response_head(wire[:end])
    assert head.status_code in (200, 204)
    assert head.headers in ([(b"A", b"1")], [])


def test_incomplete_head_has_no_end() -> None:
    """Until the empty line arrives the transport keeps reading."""
    assert h1.find_head_end(bytearray(b"HTTP/1.1 200 OK\r\nA: 1\r\n")) == (-1, 0)
