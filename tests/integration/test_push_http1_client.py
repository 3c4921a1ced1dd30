"""The push senders' HTTP/1.1 client against a scripted TLS server on 127.0.0.1: what it
sends, the answers it reads (Content-Length, chunked, to the end of the connection, after
an interim 100), keep-alive reuse, a connection the server closed, and bad answers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from parley_push.providers.http import Unreachable, post
from parley_push.providers.http1_client import BadAnswer, ConnectionLost, Http1Client
from tests.support.providers.tls import LocalTls

# What the server answers to the n-th request on a connection (n from 0), and whether it
# then closes that connection.
Script = Callable[[int], tuple[bytes, bool]]


class ScriptedServer:
    def __init__(self, tls: LocalTls, script: Script) -> None:
        self._tls = tls
        self.script = script
        self.requests: list[bytes] = []  # each request as received (head and body)
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            for n in range(1_000):
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer, close = self.script(n)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1/send?x=1"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return LocalTls.create(tmp_path_factory.mktemp("tls"))


@pytest_asyncio.fixture
async def serve(tls: LocalTls) -> AsyncIterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(script: Script) -> ScriptedServer:
        server = ScriptedServer(tls, script)
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


def always(answer: bytes, close: bool = False) -> Script:
    return lambda _n: (answer, close)


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"name":1}\n'


async def test_a_post_sends_host_headers_and_body_and_reads_the_answer(
    tls: LocalTls, serve: Callable[[Script], ScriptedServer]
) -> None:
    server = serve(always(OK))
    await server.start()
    client = Http1Client(tls.ca_file)
    try:
        answer = await post(
            client, server.url, content='{"a":1}', headers={"authorization": "Bearer t"}
        )
        form = await post(client, server.url, data={"grant_type": "x y", "assertion": "a&b"})
    finally:
        await client.aclose()
    assert answer.status_code == 200 and answer.json() == {"name": 1}
    assert answer.headers["content-type"] == "application/json"
    first, second = server.requests
    assert first.startswith(b"POST /v1/send?x=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n".encode() in first
    assert b"authorization: Bearer t\r\n" in first
    assert first.endswith(b'content-length: 7\r\n\r\n{"a":1}')
    assert b"content-type: application/x-www-form-urlencoded\r\n" in second
    assert second.endswith(b"\r\n\r\ngrant_type=x+y&assertion=a%26b")
    assert form.status_code == 200
    assert server.connections == 1  # kept alive and reused


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\n\r\n",
            b"Wikipedia ",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n",
            b"abc",
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            b"ok",
        ),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", b""),
    ],
)
async def test_answers_of_every_framing_are_read_whole(
    tls: LocalTls, serve: Callable[[Script], ScriptedServer], answer: bytes, body: bytes
) -> None:
    server = serve(always(answer))
    await server.start()
    client = Http1Client(tls.ca_file)
    try:
        for _ in range(2):  # and the connection stays in step for the next one
            got = await post(client, server.url, content=b"x")
            assert got.content == body
    finally:
        await client.aclose()
    assert server.connections == 1


async def test_an_answer_that_runs_to_the_end_of_the_connection_or_says_close(
    tls: LocalTls, serve: Callable[[Script], ScriptedServer]
) -> None:
    server = serve(always(b"HTTP/1.1 503 Unavailable\r\nRetry-After: 3\r\n\r\nbusy", close=True))
    await server.start()
    client = Http1Client(tls.ca_file)
    try:
        first = await post(client, server.url, content=b"x")
        second = await post(client, server.url, content=b"x")
    finally:
        await client.aclose()
    assert (first.status_code, first.headers["retry-after"], first.content) == (503, "3", b"busy")
    assert second.content == b"busy"
    assert server.connections == 2  # a connection that ended is not reused


async def test_a_reused_connection_the_server_closed_is_sent_again_on_a_new_one(
    tls: LocalTls, serve: Callable[[Script], ScriptedServer]
) -> None:
    # The server answers and then drops the connection without saying so.
    server = serve(lambda n: (OK, True))
    await server.start()
    client = Http1Client(tls.ca_file)
    try:
        await post(client, server.url, content=b"1")
        await asyncio.sleep(0.1)  # the close reaches the client
        again = await post(client, server.url, content=b"2")
    finally:
        await client.aclose()
    assert again.status_code == 200
    assert server.connections == 2 and len(server.requests) == 2


async def test_a_connection_lost_before_any_answer_is_connection_lost(
    tls: LocalTls, serve: Callable[[Script], ScriptedServer]
) -> None:
    server = serve(always(b"", close=True))  # reads the request, answers nothing, closes
    await server.start()
    client = Http1Client(tls.ca_file)
    try:
        with pytest.raises(ConnectionLost):
            await client.post(server.url, content=b"x")
        with pytest.raises(Unreachable, match="ConnectionLost"):
            await post(client, server.url, content=b"x")  # sent twice, then given up
    finally:
        await client.aclose()
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"SPDY/3 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "middle of the answer"),
    ],
)
async def test_a_bad_answer_is_refused_with_its_reason(
    tls: LocalTls, serve: Callable[[Script], ScriptedServer], answer: bytes, why: str
) -> None:
    server = serve(always(answer, close=True))
    await server.start()
    client = Http1Client(tls.ca_file)
    try:
        with pytest.raises(BadAnswer, match=why):
            await client.post(server.url, content=b"x")
    finally:
        await client.aclose()


async def test_a_plain_http_url_and_an_untrusted_server_are_refused(
    tmp_path: Path, serve: Callable[[Script], ScriptedServer]
) -> None:
    server = serve(always(OK))
    await server.start()
    other_ca = LocalTls.create(tmp_path / "other")
    client = Http1Client(other_ca.ca_file)
    try:
        with pytest.raises(ValueError, match="not an https URL"):
            await client.post(f"http://127.0.0.1:{server.port}/", content=b"x")
        with pytest.raises(Unreachable, match="SSL"):
            await post(client, server.url, content=b"x")
    finally:
        await client.aclose()
