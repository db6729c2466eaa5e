"""Client certificates, cipher suites and response headers, with a CA made here."""

from __future__ import annotations

import http.client
import ssl
import subprocess

import pytest

from devkit.pages import ScriptedSource, device
from nitrometer.agent.web import MetricsServer, load_web_config


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(tmp_path, stem, cn):
    # Key usage marked as a real CA has it: Python 3.13 verifies strictly (X509_STRICT).
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "1", "-subj", f"/CN={cn}", "-keyout", f"{stem}.key", "-out", f"{stem}.crt",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tmp_path)


def issue(tmp_path, ca, stem, cn, san, usage):
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={cn}", "-keyout", f"{stem}.key", "-out", f"{stem}.csr", cwd=tmp_path)
    ext = tmp_path / f"{stem}.ext"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n"
                   "keyUsage=critical,digitalSignature\n"
                   "authorityKeyIdentifier=keyid,issuer\n")
    openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "1", "-extfile", ext.name, "-out", f"{stem}.crt",
            cwd=tmp_path)
    return tmp_path / f"{stem}.crt", tmp_path / f"{stem}.key"


@pytest.fixture
def pki(tmp_path):
    make_ca(tmp_path, "ca", "nitrometer test CA")
    make_ca(tmp_path, "other_ca", "someone else")
    files = {
        "ca": tmp_path / "ca.crt",
        "server": issue(tmp_path, "ca", "server", "127.0.0.1", "IP:127.0.0.1", "serverAuth"),
        "prometheus": issue(tmp_path, "ca", "prometheus", "prometheus",
                            "DNS:prometheus.example", "clientAuth"),
        "other": issue(tmp_path, "ca", "other", "other", "DNS:other.example", "clientAuth"),
        "stranger": issue(tmp_path, "other_ca", "stranger", "prometheus",
                          "DNS:prometheus.example", "clientAuth"),
    }
    return tmp_path, files


def serve(rig, tmp_path, text):
    config = tmp_path / "web.yml"
    config.write_text(text)
    r = rig([ScriptedSource(device(), None, lambda b, i: b.advance(reads=10))])
    r.sampler.run(2)
    server = MetricsServer(("127.0.0.1", 0), r.exporter, load_web_config(str(config)))
    server.serve_in_thread()
    return server


def fetch(server, ca, client=None, *, ciphers=None, max_tls12=False):
    ctx = ssl.create_default_context(cafile=str(ca))
    if client:
        ctx.load_cert_chain(*map(str, client))
    if ciphers:
        ctx.set_ciphers(ciphers)
    if max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    conn = http.client.HTTPSConnection("127.0.0.1", server.server_address[1], context=ctx,
                                       timeout=10)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    resp.read()
    cipher = conn.sock.cipher()[0]
    conn.close()
    return resp.status, dict(resp.getheaders()), cipher


TLS = ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")


def test_require_and_verify_client_cert(rig, pki):
    tmp_path, files = pki
    server = serve(rig, tmp_path, TLS + "  client_auth_type: RequireAndVerifyClientCert\n"
                   "  client_ca_file: ca.crt\n")
    try:
        assert fetch(server, files["ca"], files["prometheus"])[0] == 200
        for client in (None, files["stranger"]):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                fetch(server, files["ca"], client)
    finally:
        server.shutdown()
        server.server_close()


def test_client_allowed_sans(rig, pki):
    tmp_path, files = pki
    server = serve(rig, tmp_path, TLS + "  client_auth_type: RequireAndVerifyClientCert\n"
                   "  client_ca_file: ca.crt\n  client_allowed_sans: [prometheus.example]\n")
    try:
        assert fetch(server, files["ca"], files["prometheus"])[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionError, OSError, http.client.HTTPException)):
            fetch(server, files["ca"], files["other"])
    finally:
        server.shutdown()
        server.server_close()


def test_cipher_suites_versions_and_headers(rig, pki):
    tmp_path, files = pki
    server = serve(rig, tmp_path, TLS + "  max_version: TLS12\n  cipher_suites:\n"
                   "    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n"
                   "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                   "    X-Content-Type-Options: nosniff\n    Content-Security-Policy: ''\n")
    try:
        status, headers, cipher = fetch(server, files["ca"])
        assert status == 200 and cipher == "ECDHE-ECDSA-AES256-GCM-SHA384"
        assert headers["X-Frame-Options"] == "deny"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in headers  # blank: unset
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            fetch(server, files["ca"], ciphers="ECDHE-ECDSA-AES128-GCM-SHA256",
                  max_tls12=True)
    finally:
        server.shutdown()
        server.server_close()


def test_inline_pem_cert_and_key(rig, pki):
    tmp_path, files = pki
    cert, key = files["server"]
    indent = "\n    ".join
    server = serve(rig, tmp_path, "tls_server_config:\n  cert: |\n    "
                   + indent(cert.read_text().splitlines()) + "\n  key: |\n    "
                   + indent(key.read_text().splitlines()) + "\n")
    try:
        assert fetch(server, files["ca"])[0] == 200
    finally:
        server.shutdown()
        server.server_close()
