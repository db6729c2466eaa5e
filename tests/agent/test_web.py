"""TLS and basic auth from an exporter-toolkit web config, against a live server."""

import base64
import gzip
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devkit.pages import ScriptedSource, device
from nitrometer.agent.http11 import Limits
from nitrometer.agent.web import MetricsServer, load_web_config
from nitrometer.errors import ConfigError
from tests.support.processes import stop
from tests.support.prometheus import free_port


def self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def served(tmp_path, rig):
    cert, key = self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    config_file = tmp_path / "web.yml"
    config_file.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n"
                           f"  key_file: {key.name}\nbasic_auth_users:\n  prom: '{hashed}'\n")
    r = rig([ScriptedSource(device(), None, lambda b, i: b.advance(reads=10))])
    r.sampler.run(2)
    server = MetricsServer(("127.0.0.1", 0), r.exporter, load_web_config(str(config_file)))
    server.serve_in_thread()
    ctx = ssl.create_default_context(cafile=str(cert))
    yield server, ctx, r
    server.shutdown()
    server.server_close()


def get(server, ctx, path="/metrics", auth=None):
    conn = http.client.HTTPSConnection("127.0.0.1", server.server_address[1], context=ctx,
                                       timeout=10)
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read().decode(), dict(resp.getheaders())


def test_right_password_gets_metrics(served):
    server, ctx, _ = served
    status, body, _ = get(server, ctx, auth="prom:s3cret")
    assert status == 200
    assert "ec2_nvme_read_ops_total" in body
    status, body, _ = get(server, ctx, "/", auth="prom:s3cret")
    assert status == 200 and 'href="/metrics"' in body


@pytest.mark.parametrize("auth", [None, "prom:wrong", "other:s3cret", "prom"])
def test_wrong_or_missing_password_is_401(served, auth):
    server, ctx, _ = served
    status, _, headers = get(server, ctx, auth=auth)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")


def test_plain_http_to_the_tls_port_is_refused_and_polling_goes_on(served):
    server, ctx, r = served
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, OSError)):
        conn.request("GET", "/metrics")
        conn.getresponse().read()
    # A client that connects and never speaks TLS holds up no other client.
    idle = socket.create_connection(("127.0.0.1", server.server_address[1]))
    try:
        assert get(server, ctx, auth="prom:s3cret")[0] == 200
    finally:
        idle.close()


def test_bad_web_configs_are_one_line(tmp_path):
    bad = tmp_path / "web.yml"
    bad.write_text("basic_auth_users:\n  prom: plaintext\n")
    with pytest.raises(ConfigError, match="not a bcrypt hash"):
        load_web_config(str(bad))
    bad.write_text("tls_server_config:\n  cert_file: missing.pem\n")
    with pytest.raises(ConfigError, match="both cert_file and key_file"):
        load_web_config(str(bad))
    bad.write_text("tls_server_config:\n  cert_file: a.pem\n  key_file: b.pem\n")
    with pytest.raises(ConfigError, match="cannot load"):
        load_web_config(str(bad))
    bad.write_text("tls_config: {}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_web_config(str(bad))


@pytest.fixture
def plain(rig):
    r = rig([ScriptedSource(device(), None, lambda b, i: b.advance(reads=10))])
    r.sampler.run(2)
    server = MetricsServer(("127.0.0.1", 0), r.exporter, load_web_config(None), max_scrapes=2)
    server.serve_in_thread()
    yield server, r
    server.shutdown()
    server.server_close()


def plain_get(server, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request("GET", "/metrics", headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read(), dict(resp.getheaders())


def test_scrapes_past_the_limit_get_503_at_once(plain):
    server, r = plain
    for _ in range(2):  # two scrapes in flight, as if rendering
        server.scrapes.acquire()
    status, _, headers = plain_get(server)
    assert status == 503 and headers["Retry-After"] == "1"
    server.scrapes.release()
    status, body, _ = plain_get(server)
    assert status == 200 and body == r.exporter.body()
    server.scrapes.release()


def test_gzip_and_openmetrics_when_asked(plain):
    server, r = plain
    status, body, headers = plain_get(server, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == r.exporter.body()
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    status, body, headers = plain_get(
        server, {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert "Content-Encoding" not in headers and body.endswith(b"# EOF\n")


def raw_exchange(server, data: bytes, timeout=10) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError:  # the timeout (socket.timeout is no TimeoutError on 3.9)
            pass
        return b"".join(chunks)


def plain_request(server, method="GET", path="/metrics", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read(), dict(resp.getheaders())


def test_head_has_the_headers_of_get_and_no_body(plain):
    server, r = plain
    status, body, headers = plain_request(server, "HEAD")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == len(r.exporter.body())
    assert plain_request(server, "POST")[0] == 405


@pytest.mark.parametrize("accept, gzipped", [
    ("gzip", True), ("gzip;q=0", False), ("gzip; q=0.0, identity", False),
    ("deflate, gzip;q=0.5", True), ("*", True), ("*;q=0", False), ("identity", False),
    ("gzip;q=0, *;q=1", False), ("GZIP;Q=1", True)])
def test_accept_encoding_q_values(plain, accept, gzipped):
    server, r = plain
    status, body, headers = plain_get(server, {"Accept-Encoding": accept})
    assert status == 200
    assert ("Content-Encoding" in headers) == gzipped
    assert (gzip.decompress(body) if gzipped else body) == r.exporter.body()


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /metrics\r\n", b"400"),  # HTTP/0.9
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"505"),
    (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n", b"431"),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", b"414"),
    (b"GET / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n", b"413"),
    (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"501"),
    (b"GET / HTTP/1.1\r\n folded: header\r\n\r\n", b"400"),
])
def test_malformed_requests_get_an_error_and_the_connection_closes(plain, request_bytes,
                                                                   status):
    server, _ = plain
    answer = raw_exchange(server, request_bytes)
    assert answer.split(b" ")[1] == status, answer[:200]
    assert b"Connection: close" in answer


def test_keep_alive_then_idle_connections_are_closed(rig):
    r = rig([ScriptedSource(device(), None, lambda b, i: b.advance(reads=10))])
    r.sampler.run(2)
    server = MetricsServer(("127.0.0.1", 0), r.exporter, load_web_config(None),
                           limits=Limits(idle_timeout=1.0, header_timeout=1.0))
    server.serve_in_thread()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        for _ in range(3):  # one connection, three requests
            conn.request("GET", "/metrics")
            assert conn.getresponse().read() == r.exporter.body()
        assert server.connections == 1
        # Idle past idle_timeout, and a request line that never ends: both closed.
        stalled = socket.create_connection(("127.0.0.1", server.server_address[1]))
        stalled.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        stalled.settimeout(30)
        assert stalled.recv(100) == b""
        conn.sock.settimeout(30)
        assert conn.sock.recv(100) == b""
        # Headers trickling in a byte at a time: each recv is quick, the whole is too slow.
        trickle = socket.create_connection(("127.0.0.1", server.server_address[1]))
        trickle.sendall(b"GET /metrics HTTP/1.1\r\n")
        closed_after = None
        for sent in range(200):
            try:
                trickle.sendall(b"X")
            except OSError:
                closed_after = sent
                break
            time.sleep(0.1)
        assert closed_after is not None and server.expired >= 1
    finally:
        server.shutdown()
        server.server_close()


def test_a_nearer_deadline_wakes_the_reaper_asleep_towards_a_far_one(rig):
    """The reaper sleeps until the nearest deadline: here a keep-alive connection idle for
    up to 60 s. The same connection then starts a request that never ends: the header
    deadline, much nearer, is kept all the same."""
    r = rig([ScriptedSource(device(), None, lambda b, i: b.advance(reads=10))])
    r.sampler.run(2)
    server = MetricsServer(("127.0.0.1", 0), r.exporter, load_web_config(None),
                           limits=Limits(idle_timeout=60.0, header_timeout=1.0))
    server.serve_in_thread()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.request("GET", "/metrics")
        assert conn.getresponse().read() == r.exporter.body()
        time.sleep(0.5)  # the reaper is asleep towards the idle deadline
        conn.sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # and no more
        started = time.monotonic()
        conn.sock.settimeout(30)
        assert conn.sock.recv(100) == b""
        assert time.monotonic() - started < 20  # the header deadline, not the idle one
        assert server.expired >= 1
    finally:
        server.shutdown()
        server.server_close()


def test_past_the_connection_cap_the_longest_waiting_client_makes_room(rig):
    r = rig([ScriptedSource(device(), None, lambda b, i: b.advance(reads=10))])
    r.sampler.run(2)
    server = MetricsServer(("127.0.0.1", 0), r.exporter, load_web_config(None),
                           limits=Limits(max_connections=4, header_timeout=60))
    server.serve_in_thread()
    try:
        port = server.server_address[1]
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        deadline = time.monotonic() + 30
        while server.connections < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(3):  # a scrape evicts an idle connection, the oldest first
            assert plain_get(server)[0] == 200
        assert server.connections <= 4 and server.evicted >= 1
        idle[0].settimeout(30)
        assert idle[0].recv(10) == b""
        for s in idle:
            s.close()
    finally:
        server.shutdown()
        server.server_close()


def test_unknown_user_costs_one_bcrypt_like_a_known_one(monkeypatch):
    import nitrometer.agent.webauth as webauth

    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=5))
    auth = webauth.Authenticator({"prom": hashed})
    seen = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, h: seen.append(h[:7]) or real(pw, h))
    header = "Basic " + base64.b64encode(b"nobody:right").decode()
    assert auth.check(header) is False
    assert auth.check("Basic " + base64.b64encode(b"prom:wrong").decode()) is False
    assert seen == [b"$2b$05$", b"$2b$05$"]  # the dummy hash has the users' cost
    # Over bcrypt's 72 bytes: refused (a 401), not truncated, not an exception.
    long_pw = b"right" + b"x" * 80
    hashed_long = bcrypt.hashpw(long_pw[:72], bcrypt.gensalt(rounds=4))
    auth = webauth.Authenticator({"prom": hashed_long})
    assert auth.check("Basic " + base64.b64encode(b"prom:" + long_pw).decode()) is False
    assert auth.check("Basic " + base64.b64encode(b"prom:" + long_pw[:72]).decode()) is True


def test_long_password_gets_401_over_the_wire(served):
    server, ctx, _ = served
    status, _, _ = get(server, ctx, auth="prom:" + "s" * 100)
    assert status == 401


@pytest.mark.parametrize("text, message", [
    ("basic_auth_users:\n  - prom\n", "basic_auth_users must be a mapping"),
    ("basic_auth_users:\n  prom: '$2b$12$zl5PRYl0xVDYptW2LJ4W9eQfRJ59IM29sSyuF'\n",
     "not a bcrypt hash"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  sni: x\n",
     "unknown key tls_server_config.sni"),
    ("rate_limit:\n  interval: 1s\n  burst: 2\n", "rate_limit is not supported"),
    ("http_server_config:\n  http2: true\n", "http2 is not supported"),
    ("http_server_config:\n  headers:\n    X-Powered-By: me\n", "not one the web config"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "must be one of"),
    ("tls_server_config: [1]\n", "tls_server_config must be a mapping"),
    ("- 1\n", "must be a mapping"),
])
def test_structurally_wrong_web_configs_are_one_line(tmp_path, text, message):
    bad = tmp_path / "web.yml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_web_config(str(bad))
    assert "\n" not in str(info.value)


def test_tls_settings_need_their_partners(tmp_path):
    cert, key = self_signed(tmp_path)
    base = f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
    bad = tmp_path / "web.yml"
    for extra, message in [
        ("  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
        (f"  client_ca_file: {cert.name}\n", "client_ca_file is set but client_auth_type"),
        ("  client_auth_type: RequireAnyClientCert\n", "is not supported"),
        ("  min_version: TLS13\n  max_version: TLS12\n", "above max_version"),
        ("  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "unsupported value"),
        ("  prefer_server_cipher_suites: maybe\n", "true or false"),
    ]:
        bad.write_text(base + extra)
        with pytest.raises(ConfigError, match=message):
            load_web_config(str(bad))


def test_a_tls_handshake_trickling_in_is_cut_at_the_header_deadline(tmp_path, rig):
    cert, key = self_signed(tmp_path)
    config_file = tmp_path / "web.yml"
    config_file.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n"
                           f"  key_file: {key.name}\n")
    r = rig([ScriptedSource(device(), None, lambda b, i: b.advance(reads=10))])
    server = MetricsServer(("127.0.0.1", 0), r.exporter, load_web_config(str(config_file)),
                           limits=Limits(header_timeout=1.0))
    server.serve_in_thread()
    try:
        slow = socket.create_connection(("127.0.0.1", server.server_address[1]))
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 200
        closed = False
        for byte in hello:  # a byte every 0.1 s: each read is quick, the handshake never ends
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
        assert closed  # long before the 21 s the whole hello would take
        slow.close()
    finally:
        server.shutdown()
        server.server_close()


_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                  st.sampled_from(["TLS12", "TLS13", "RequireAndVerifyClientCert",
                                   "TLS_AES_128_GCM_SHA256", "deny", "$2b$04$" + "a" * 53]))
_shape = st.recursive(_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["cert_file", "key_file", "client_ca_file", "headers",
                                     "client_auth_type", "cipher_suites", "min_version",
                                     "X-Frame-Options", "prom", "http2", "curve_preferences"]),
                    inner, max_size=3)), max_leaves=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["tls_server_config", "basic_auth_users",
                                        "http_server_config", "rate_limit", "other"]),
                       _shape, max_size=3))
def test_any_shape_of_web_config_loads_or_is_one_line(tmp_path_factory, data):
    import yaml

    path = tmp_path_factory.mktemp("shape") / "web.yml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_web_config(str(path))
    except ConfigError as exc:
        assert "\n" not in str(exc)


def _basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


def test_every_attempt_does_one_bcrypt_at_each_cost_in_use():
    import nitrometer.agent.webauth as webauth

    users = {"fast": bcrypt.hashpw(b"f", bcrypt.gensalt(rounds=4)),
             "slow": bcrypt.hashpw(b"s", bcrypt.gensalt(rounds=6)),
             "also": bcrypt.hashpw(b"a", bcrypt.gensalt(rounds=4))}
    work = []

    def counting(password, hashed):  # bcrypt's work is 2^cost rounds: the cost says it all
        work.append(webauth.cost_of(hashed))
        return bcrypt.checkpw(password, hashed)

    auth = webauth.Authenticator(users, checkpw=counting)
    attempts = [(b"fast:f", True), (b"fast:x", False), (b"slow:s", True), (b"slow:x", False),
                (b"also:a", True), (b"nobody:f", False), (b"nobody:s", False),
                (b"slow:f", False), (b"fast:" + b"f" * 80, False)]
    for credentials, expected in attempts:
        work.clear()
        assert auth.check(_basic(credentials)) is expected, credentials
        assert sorted(work) == [4, 6], credentials  # the same work, whoever asks
    # A dummy never passes, whatever password: it is no one's hash.
    assert all(auth.plan(None)[i] not in users.values() for i in range(2))


def test_a_dummy_hash_is_one_bcrypt_accepts_at_its_cost():
    import nitrometer.agent.webauth as webauth

    for cost in (4, 5):
        dummy = webauth.dummy_hash(cost)
        assert webauth.cost_of(dummy) == cost
        assert bcrypt.checkpw(b"anything", dummy) is False  # no ValueError: a real check


def test_a_hash_with_an_invalid_salt_is_refused_at_load(tmp_path):
    good = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=12)).decode()
    bad = good[:28] + "a" + good[29:]  # the salt's last character holds stray bits
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: '{bad}'\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="basic_auth_users.prom: bcrypt refuses the hash") \
            as info:
        load_web_config(str(web))
    assert "\n" not in str(info.value)
    assert time.monotonic() - started < 30  # checked at the lowest cost, not at 12
    web.write_text(f"basic_auth_users:\n  prom: '{good}'\n")
    assert load_web_config(str(web)).users == {"prom": good.encode()}


def test_a_reload_with_an_invalid_hash_keeps_the_users_that_work(tmp_path):

    good = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: '{good}'\n")
    port, log = free_port(), tmp_path / "agent.log"

    def scrape_status(credentials: bytes) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                         headers={"Authorization": _basic(credentials)})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    with open(log, "w") as out:
        agent = subprocess.Popen(
            [sys.executable, "-m", "nitrometer", "run", "--source", "simulate:i3en.xlarge",
             "--no-collector.identity", f"--web.listen-address=127.0.0.1:{port}",
             f"--web.config.file={web}"],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while scrape_status(b"prom:s3cret") != 200:
            assert agent.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        web.write_text(f"basic_auth_users:\n  prom: '{good[:28]}a{good[29:]}'\n")
        agent.send_signal(signal.SIGHUP)
        while "reload failed" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert scrape_status(b"prom:s3cret") == 200  # the old users still work
        assert scrape_status(b"prom:wrong") == 401
    finally:
        stop(agent)
    text = log.read_text()
    assert "keeping the running config" in text and "bcrypt refuses the hash" in text, text


def test_a_web_config_that_is_not_utf8_or_endless_is_one_line(tmp_path):
    web = tmp_path / "web.yml"
    web.write_bytes(b"basic_auth_users:\n  pr\xffom: x\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xff at offset 22\)"):
        load_web_config(str(web))
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_web_config("/dev/zero")


def test_the_date_header_is_an_imf_fixdate_whatever_the_locale():
    import email.utils

    from nitrometer.agent.http11 import http_date

    # RFC 9110 section 5.6.7's own example, then a spread of instants against the stdlib.
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    for t in (0, 951782400, 1709208000, 1790000000.75, 4102444799):
        assert http_date(t) == email.utils.formatdate(t, usegmt=True)


def test_the_index_page_escapes_as_html_escape_does():
    import html

    from nitrometer.agent.web import escape

    for text in ("/metrics", "<script>alert('x')</script>", 'a "b" & c', "", "é&<>'\""):
        assert escape(text) == html.escape(text)
