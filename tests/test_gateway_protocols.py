"""Protocol identification from the first client bytes, on real byte samples."""

from __future__ import annotations

import json
import random
import ssl

import pytest

from rollcage.gateway.protocols import MAX_INSPECT, Identification, identify

PROTOCOLS = {"stratum", "ssh", "tls", "http", "unknown"}


def client_hello(server_hostname: str | None = "pypi.org", alpn: list[str] | None = None, tls12: bool = False) -> bytes:
    """A real ClientHello, as Python's OpenSSL sends it."""
    ctx = ssl.create_default_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def split_into_records(hello: bytes, first: int) -> bytes:
    """The same handshake message carried in two TLS records (``first`` bytes in the first)."""
    body = hello[5:]
    head, tail = body[:first], body[first:]
    return b"".join(b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part for part in (head, tail))


SUBSCRIBE = b'{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.10.0"]}\n'
AUTHORIZE = b'{"params": ["bc1qexampleworkerwallet.rig01", "x"], "id": 2, "method": "mining.authorize"}\n'
XMRIG_LOGIN = (
    b'{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqg'
    b'zYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 '
    b'gcc/12.2.0","rigid":"","algo":["cn/1","cn/2","cn/r","cn/fast","cn/half","cn/xao","cn/rto","cn/rwz","cn/zls",'
    b'"cn/double","cn/ccx","cn-lite/1","cn-heavy/0","cn-heavy/tube","cn-heavy/xhv","cn-pico","cn-pico/tlo","cn/upx2",'
    b'"rx/0","rx/wow","rx/arq","rx/graft","rx/sfx","rx/yada","argon2/chukwa","argon2/chukwav2","argon2/ninja",'
    b'"ghostrider"]}}\n'
)
ETH_LOGIN = b'{"worker": "rig1", "jsonrpc": "2.0", "params": ["0xb2930b35844a230f00e51431acae96fe543a0347", "x"], "id": 1, "method": "eth_submitLogin"}\n'  # noqa: E501
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
CURL_GET = b"GET /simple/requests/ HTTP/1.1\r\nHost: pypi.org\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
PIP_GET = (
    b"GET /packages/a/b/requests-2.32.3-py3-none-any.whl HTTP/1.1\r\nHost: files.pythonhosted.org:8080\r\n"
    b'User-Agent: pip/24.0 {"installer":{"name":"pip"}}\r\nAccept-Encoding: gzip, deflate\r\n'
    b"Accept: */*\r\nConnection: keep-alive\r\n\r\n"
)
CONNECT = b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\nUser-Agent: curl/8.5.0\r\n\r\n"
GETWORK_BODY = b'{"method": "getwork", "params": [], "id": 0}\n'
GETWORK_POST = (
    b"POST / HTTP/1.1\r\nHost: 192.0.2.10:8332\r\nUser-Agent: cpuminer/2.5.1\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"
    b"Content-Type: application/json\r\nContent-Length: " + str(len(GETWORK_BODY)).encode() + b"\r\n\r\n" + GETWORK_BODY
)


def test_tls_client_hello_sni_alpn_and_version() -> None:
    found = identify(client_hello(alpn=["h2", "http/1.1"]))
    assert found == Identification("tls", True, {"sni": "pypi.org", "alpn": ["h2", "http/1.1"], "tls_version": "1.3"})


def test_tls_12_only_client_and_no_sni() -> None:
    assert identify(client_hello(tls12=True)).fields["tls_version"] == "1.2"
    found = identify(client_hello(server_hostname=None))
    assert (found.protocol, found.final, found.fields["sni"], found.fields["alpn"]) == ("tls", True, None, [])


def test_tls_hello_reassembled_across_records() -> None:
    hello = client_hello(server_hostname="files.pythonhosted.org")
    split = split_into_records(hello, 100)
    assert not identify(split[: len(split) - 1]).final
    assert identify(split).fields["sni"] == "files.pythonhosted.org"


def test_tls_trailing_bytes_after_the_record_are_ignored() -> None:
    assert identify(client_hello() + b"\x17\x03\x03\x00\x10garbage").fields["sni"] == "pypi.org"


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",  # a ServerHello: no client opens with that
        b"\x16\x03\x01\x00\x00",  # an empty record
        b"\x16\x03\x07\x00\x05abcde",  # no such TLS version
        b"\x16\x02\x00",  # not TLS at all
        b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00",  # ClientHello cut short inside its own length
    ],
)
def test_tls_malformed_is_final_unknown(data: bytes) -> None:
    assert identify(data) == Identification("unknown", True, identify(data).fields)


def test_tls_lying_sni_length_is_unknown_not_an_exception() -> None:
    hello = bytearray(client_hello())
    at = hello.find(b"pypi.org")
    hello[at - 2 : at] = (0xFFFF).to_bytes(2, "big")  # the name now claims to run past its extension
    assert identify(bytes(hello)).protocol == "unknown"


def test_stratum_subscribe_and_authorize() -> None:
    assert identify(SUBSCRIBE) == Identification(
        "stratum", True, {"method": "mining.subscribe", "agent": "cgminer/4.10.0"}
    )
    found = identify(SUBSCRIBE + AUTHORIZE)
    assert found.fields == {
        "method": "mining.subscribe",
        "agent": "cgminer/4.10.0",
        "user": "bc1qexampleworkerwallet.rig01",
    }


def test_xmrig_login() -> None:
    found = identify(XMRIG_LOGIN)
    assert (found.protocol, found.final, found.fields["method"]) == ("stratum", True, "login")
    assert found.fields["user"].startswith("48edfHu7V9Z84")
    assert found.fields["agent"].startswith("XMRig/6.21.0")


def test_ethereum_stratum_login() -> None:
    found = identify(ETH_LOGIN)
    assert found.protocol == "stratum" and found.fields["method"] == "eth_submitLogin"
    assert found.fields["user"] == "0xb2930b35844a230f00e51431acae96fe543a0347"


@pytest.mark.parametrize("method", ["submit", "keepalived", "getjob", "mining.configure", "getblocktemplate"])
def test_other_mining_methods(method: str) -> None:
    line = json.dumps({"id": 3, "method": method, "params": {"id": "w", "job_id": "1"}}).encode() + b"\n"
    assert identify(line).protocol == "stratum"


def test_whole_json_message_without_newline_is_enough() -> None:
    assert identify(SUBSCRIBE.rstrip(b"\n")) == identify(SUBSCRIBE)


def test_non_mining_json_rpc_is_unknown() -> None:
    line = b'{"jsonrpc": "2.0", "method": "eth_blockNumber", "params": [], "id": 1}\n'
    assert identify(line) == Identification("unknown", True, {"jsonrpc_method": "eth_blockNumber"})
    plain_login = b'{"id": 1, "method": "login", "params": ["alice", "secret"]}\n'
    assert identify(plain_login).protocol == "unknown"


def test_partial_json_is_not_final_but_hints_mining() -> None:
    found = identify(SUBSCRIBE[:45])
    assert (found.protocol, found.final) == ("stratum", False)
    assert identify(b'{"id": 1, "par') == Identification("unknown", False, {})
    assert identify(b"{not json}\n").final


def test_ssh_banner() -> None:
    found = identify(SSH_BANNER)
    assert found == Identification(
        "ssh",
        True,
        {
            "banner": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3",
            "proto_version": "2.0",
            "software": "OpenSSH_9.2p1",
            "comment": "Debian-2+deb12u3",
        },
    )
    assert identify(b"SSH-1.99-PuTTY_Release_0.80\r\n").fields["software"] == "PuTTY_Release_0.80"
    assert identify(b"SSH-1.5-OldClient\r\n").protocol == "unknown"


def test_ssh_banner_without_newline_is_capped() -> None:
    found = identify(b"SSH-2.0-" + b"x" * 400)
    assert found.final and found.protocol == "ssh" and len(found.fields["banner"]) == 255


def test_http_get() -> None:
    found = identify(CURL_GET)
    assert found == Identification(
        "http",
        True,
        {
            "method": "GET",
            "path": "/simple/requests/",
            "version": "1.1",
            "host": "pypi.org",
            "user_agent": "curl/8.5.0",
        },
    )
    pip = identify(PIP_GET)
    assert pip.fields["host"] == "files.pythonhosted.org"
    assert pip.fields["user_agent"].startswith("pip/24.0")


@pytest.mark.parametrize(
    ("host_header", "host"),
    [("Example.COM.", "example.com"), ("[2001:db8::1]:8080", "2001:db8::1"), ("10.0.0.1:80", "10.0.0.1")],
)
def test_http_host_without_port(host_header: str, host: str) -> None:
    request = f"HEAD / HTTP/1.0\r\nHost: {host_header}\r\n\r\n".encode()
    assert identify(request).fields["host"] == host


def test_http_connect_target_is_the_host() -> None:
    found = identify(CONNECT)
    assert (found.fields["method"], found.fields["host"], found.fields["port"]) == ("CONNECT", "pypi.org", 443)
    spoof = identify(b"CONNECT evil.example:22 HTTP/1.1\r\nHost: pypi.org\r\n\r\n")
    assert spoof.fields["host"] == "evil.example"


def test_http_absolute_form_without_host_header() -> None:
    found = identify(b"GET http://user@example.org:8080/x HTTP/1.1\r\nAccept: */*\r\n\r\n")
    assert found.fields["host"] == "example.org"


def test_http_headers_incomplete_is_not_final() -> None:
    found = identify(CURL_GET[:40])
    assert (found.protocol, found.final) == ("http", False)
    assert found.fields["path"] == "/simple/requests/"


def test_getwork_over_http_post() -> None:
    found = identify(GETWORK_POST)
    assert (found.protocol, found.final, found.fields["mining_method"]) == ("http", True, "getwork")
    headers_only = GETWORK_POST[: -len(GETWORK_BODY)]
    assert identify(headers_only) == Identification("http", False, identify(headers_only).fields)


def test_post_with_non_json_body_is_final_without_mining() -> None:
    request = b"POST /form HTTP/1.1\r\nHost: example.org\r\nContent-Length: 100\r\n\r\na=1&b=2"
    found = identify(request)
    assert found.final and "mining_method" not in found.fields


def test_http2_prior_knowledge() -> None:
    assert identify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").fields == {"method": "PRI", "version": "2"}
    assert not identify(b"PRI * HTTP/2.0\r\n").final


@pytest.mark.parametrize(
    "data",
    [
        b"get / HTTP/1.1\r\n\r\n",
        b"GET / FTP/1.0\r\n\r\n",
        b"GET  / HTTP/1.1\r\n",
        b"GETX / HTTP/1.1\r\n",
        b"GET / HTTP/2",
    ],
)
def test_not_quite_http_is_unknown(data: bytes) -> None:
    found = identify(data)
    assert (found.protocol, found.final) == ("unknown", True)


def test_unknown_and_empty() -> None:
    assert identify(b"") == Identification("unknown", False, {})
    assert identify(b"\x00\x01\x02\x03" * 4) == Identification("unknown", True, {"head": "00010203" * 4})
    assert identify(b"EHLO mail.example.org\r\n").protocol == "unknown"
    assert not identify(b"GE").final  # could still be GET


def test_work_is_capped() -> None:
    found = identify(b"GET /" + b"a" * (2 * MAX_INSPECT))
    assert found.final and found.protocol == "http"
    assert identify(b"[" * 20_000).final  # too deep for json is not an exception


@pytest.mark.parametrize(
    ("name", "data", "protocol"),
    [
        ("tls", client_hello(alpn=["h2"]), "tls"),
        ("tls split", split_into_records(client_hello(), 60), "tls"),
        ("stratum", SUBSCRIBE + AUTHORIZE, "stratum"),
        ("xmrig", XMRIG_LOGIN, "stratum"),
        ("eth", ETH_LOGIN, "stratum"),
        ("ssh", SSH_BANNER, "ssh"),
        ("curl", CURL_GET, "http"),
        ("pip", PIP_GET, "http"),
        ("connect", CONNECT, "http"),
        ("getwork", GETWORK_POST, "http"),
    ],
)
def test_byte_at_a_time_never_gives_a_wrong_final_answer(name: str, data: bytes, protocol: str) -> None:
    full = identify(data)
    assert full.protocol == protocol and full.final, name
    for end in range(len(data)):
        partial = identify(data[:end])
        assert partial.protocol in PROTOCOLS
        if partial.final:
            assert partial.protocol == protocol, (name, end, partial)


def test_prefixes_of_one_record_hello_are_never_final() -> None:
    hello = client_hello()
    assert not any(identify(hello[:end]).final for end in range(len(hello)))


def test_random_bytes_never_raise() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(0, 300))
        found = identify(data)
        assert found.protocol in PROTOCOLS and isinstance(found.fields, dict)


@pytest.mark.parametrize(
    "prefix",
    [b"\x16\x03\x01", b"SSH-2.0-", b"GET / HTTP/1.1\r\n", b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n", b"{"],
)
def test_random_tails_after_real_prefixes_never_raise(prefix: bytes) -> None:
    rng = random.Random(prefix)
    for _ in range(2000):
        found = identify(prefix + rng.randbytes(rng.randrange(0, 200)))
        assert found.protocol in PROTOCOLS


def test_mutated_client_hellos_never_raise() -> None:
    rng = random.Random(99)
    hello = client_hello(alpn=["h2", "http/1.1"])
    outcomes = set()
    for _ in range(2000):
        mutated = bytearray(hello)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(5, len(mutated))] = rng.randrange(256)
        found = identify(bytes(mutated))
        assert found.protocol in {"tls", "unknown"}
        outcomes.add((found.protocol, found.final))
        truncated = identify(bytes(mutated[: rng.randrange(5, len(mutated))]))
        assert truncated.protocol in {"tls", "unknown"}
    assert {("tls", True), ("unknown", True)} <= outcomes  # the mutations did reach the parser's error paths
