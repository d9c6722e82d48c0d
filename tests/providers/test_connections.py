"""The pooled connection layer (HTTP/1.1 on asyncio protocols, parsed by
httptools, requests handed to the transport): HTTPS, keep-alive reuse and its
bound, a server that closes an idle connection, bodies larger than every
buffer both ways, untrusted certificates and proxies from the environment."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator.errors import ModelError
from orchestrator.integrations import ClientPool
from orchestrator.integrations.openai_model import OpenAIModel
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[OpenAIServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    server = OpenAIServer(tls=context)
    with server:
        yield server


async def test_https_answers_and_streams_over_one_connection(
    https_server: OpenAIServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # read as the client is made
    pool = ClientPool()
    model = OpenAIModel("gpt-4o-mini", base_url=https_server.url, api_key="sk-t", client_pool=pool)
    assert await model.generate_response("Hello") == "Hello from the OpenAI loopback server."
    streamed = "".join([chunk async for chunk in model.stream_response("Hello")])
    assert streamed == "Hello from the OpenAI loopback server."
    assert await model.generate_response("Again") == "Hello from the OpenAI loopback server."
    assert https_server.connections == 1
    await pool.aclose()


async def test_https_bodies_larger_than_every_buffer(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flow control under TLS: reading pauses past the backend's high-water
    mark and must resume on the TLS transport, or a large answer stalls."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    reply = "z" * (3 * 1024 * 1024)
    pool = ClientPool()
    server = OpenAIServer(tls=context, reply=reply)
    with server:
        model = OpenAIModel("gpt-4o-mini", base_url=server.url, api_key="sk-t", client_pool=pool)
        assert await model.generate_response("y" * (2 * 1024 * 1024)) == reply
        assert "".join([c async for c in model.stream_response("stream")]) == reply
    await pool.aclose()


async def test_an_untrusted_certificate_is_a_connection_error(https_server: OpenAIServer) -> None:
    pool = ClientPool()
    model = OpenAIModel(
        "gpt-4o-mini", base_url=https_server.url, api_key="sk-t", client_pool=pool, max_retries=0
    )
    with pytest.raises(ModelError, match=r"(?i)certificate"):
        await model.generate_response("Hello")
    assert https_server.requests == []
    await pool.aclose()


async def test_keep_alive_is_reused_and_bounded() -> None:
    pool = ClientPool(max_connections=50, max_keepalive_connections=3)
    with OpenAIServer(answer_delay=0.05) as server:
        model = OpenAIModel("gpt-4o-mini", base_url=server.url, api_key="sk-t", client_pool=pool)
        await asyncio.gather(*(model.generate_response(f"q{i}") for i in range(12)))
        assert server.connections == 12  # all at once: one connection each
        transport = pool.direct(model.endpoint.url)
        assert transport is not None and transport.idle_connections() == 3
        for i in range(6):
            await model.generate_response(f"again {i}")
        assert server.connections == 12  # one after the other: a kept one each time
    await pool.aclose()


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    """The server answers each request, then closes the connection without
    saying so (no ``Connection: close``): the next request must open a new
    one, not fail on the dead one."""
    body = (
        b'{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"fresh"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
    )
    opened = 0

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = ClientPool()
    model = OpenAIModel(
        "gpt-4o-mini", base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-t", client_pool=pool
    )
    try:
        for _ in range(3):
            assert await model.generate_response("Hello") == "fresh"
            await asyncio.sleep(0.05)  # the server's close arrives while idle
        assert opened == 3
    finally:
        await pool.aclose()
        server.close()
        await server.wait_closed()


async def test_bodies_larger_than_every_buffer_flow_both_ways() -> None:
    reply = "x" * (3 * 1024 * 1024)  # above the backend's 256 KiB read high-water mark
    prompt = "y" * (5 * 1024 * 1024)  # above the transport's write buffer
    pool = ClientPool()
    with OpenAIServer(reply=reply) as server:
        model = OpenAIModel("gpt-4o-mini", base_url=server.url, api_key="sk-t", client_pool=pool)
        assert await model.generate_response(prompt) == reply
        assert server.requests[-1].json()["messages"][0]["content"] == prompt
        assert "".join([c async for c in model.stream_response("stream")]) == reply
    await pool.aclose()


async def test_a_proxy_in_the_environment_goes_through_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "")
    pool = ClientPool()
    with OpenAIServer() as server:
        model = OpenAIModel(
            "gpt-4o-mini", base_url=server.url, api_key="sk-t", client_pool=pool, max_retries=0
        )
        assert pool.direct(model.endpoint.url) is None
        with pytest.raises(ModelError):  # the proxy was used (and is not there)
            await model.generate_response("Hello")
        assert server.requests == []
    await pool.aclose()


async def test_the_pooled_client_still_sends_a_request_of_its_own() -> None:
    pool = ClientPool()
    with OpenAIServer() as server:
        response = await pool.get(server.url).get(f"{server.url}/models")
        assert response.status_code == 200 and isinstance(response, httpx.Response)
    await pool.aclose()


def test_threads_with_their_own_loops_share_a_pool_without_sharing_clients() -> None:
    """The pool finds a loop's client without its lock: eight threads, each
    with its own event loop, racing on one pool, each get a client of their
    own (never another loop's), and every request is answered."""
    pool = ClientPool()
    with OpenAIServer() as server:
        model = OpenAIModel("gpt-4o-mini", base_url=server.url, api_key="sk-t", client_pool=pool)
        barrier = threading.Barrier(8)
        clients: dict[int, list[httpx.AsyncClient]] = {}  # kept alive: their ids stay theirs
        answers: list[str] = []

        async def work(index: int) -> None:
            barrier.wait()
            for i in range(20):
                answers.append(await model.generate_response(f"t{index} q{i}"))
                clients.setdefault(index, []).append(pool.get(model.endpoint.url))
            await pool.aclose()

        threads = [threading.Thread(target=asyncio.run, args=(work(i),)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        assert len(answers) == 160 and all(answers)
        per_loop = [{id(client) for client in kept} for kept in clients.values()]
        assert all(len(ids) == 1 for ids in per_loop)  # one client per loop, kept
        assert len(set().union(*per_loop)) == 8  # and no two loops share one
