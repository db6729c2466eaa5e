"""TLS and basic auth from an exporter-toolkit web config, against a live server."""

import base64
import gzip
import http.client
import socket
import ssl
import subprocess
import threading

import bcrypt
import pytest

from nitrometer.agent.web import MetricsServer, load_web_config
from nitrometer.errors import ConfigError
from tests.agent.pages import ScriptedSource, device


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
    # A client that connects and never speaks TLS holds nothing up.
    idle = socket.create_connection(("127.0.0.1", server.server_address[1]))
    ticks = threading.Thread(target=r.sampler.run, args=(3,))
    ticks.start()
    ticks.join(10)
    assert r.state.ticks == 5
    assert get(server, ctx, auth="prom:s3cret")[0] == 200
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
