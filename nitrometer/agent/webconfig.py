"""The Prometheus exporter-toolkit web config file: TLS, mTLS, basic auth, response headers.

Every key the toolkit documents is either honoured or refused with one line; nothing is
silently ignored. A config that loads is complete: its SSL context is built at load time.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nitrometer.errors import ConfigError

if TYPE_CHECKING:
    import ssl

# ssl (OpenSSL, several MiB) is imported only to serve TLS: names of its constants here.
TLS_VERSIONS = {"TLS10": "TLSv1", "TLS11": "TLSv1_1", "TLS12": "TLSv1_2", "TLS13": "TLSv1_3"}
# Go's crypto/tls names -> OpenSSL's, for the suites up to TLS 1.2 that Go offers.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites are always on, in Go as in OpenSSL: naming them changes nothing.
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1",
          "X25519": "X25519"}
# client_auth_type -> (verify mode, needs client_ca); the two Go modes that take a client
# certificate without verifying it have no OpenSSL equivalent here and are refused.
CLIENT_AUTH = {
    "NoClientCert": ("CERT_NONE", False),
    "VerifyClientCertIfGiven": ("CERT_OPTIONAL", True),
    "RequireAndVerifyClientCert": ("CERT_REQUIRED", True),
}
RESPONSE_HEADERS = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
TLS_KEYS = {"cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type",
            "client_ca_file", "client_allowed_sans", "min_version", "max_version",
            "cipher_suites", "prefer_server_cipher_suites", "curve_preferences"}
# A well-formed bcrypt hash: $2a$/$2b$/$2y$, a two-digit cost, 22 salt + 31 hash chars.
BCRYPT_RE = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class WebConfig:
    cert_file: str | None = None
    key_file: str | None = None
    cert_pem: str | None = None
    key_pem: str | None = None
    client_ca_file: str | None = None
    client_ca_pem: str | None = None
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash

    @property
    def tls(self) -> bool:
        return bool(self.cert_file or self.cert_pem)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.minimum_version = getattr(ssl.TLSVersion, TLS_VERSIONS[self.min_version])
            ctx.maximum_version = getattr(ssl.TLSVersion, TLS_VERSIONS[self.max_version])
        except ValueError as exc:
            raise ConfigError(f"web.config.file: TLS versions {self.min_version}.."
                              f"{self.max_version} are not available here: {exc}") from None
        _load_cert_chain(ctx, self)
        if self.cipher_suites:
            names = [CIPHER_SUITES[s] for s in self.cipher_suites if s in CIPHER_SUITES]
            if names:
                try:
                    ctx.set_ciphers(":".join(names))
                except ssl.SSLError:
                    raise ConfigError("web.config.file: none of cipher_suites is available "
                                      "in this OpenSSL") from None
        if self.prefer_server_cipher_suites:
            ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        else:
            ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        if self.curve_preferences:
            # Python sets one ECDH curve; the first preference is the one offered for TLS 1.2.
            try:
                ctx.set_ecdh_curve(CURVES[self.curve_preferences[0]])
            except (ValueError, ssl.SSLError):
                raise ConfigError(f"web.config.file: curve {self.curve_preferences[0]} is "
                                  "not available in this OpenSSL") from None
        mode, _ = CLIENT_AUTH[self.client_auth_type]
        ctx.verify_mode = getattr(ssl, mode)
        if self.client_ca_file or self.client_ca_pem:
            try:
                ctx.load_verify_locations(cafile=self.client_ca_file, cadata=self.client_ca_pem)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConfigError(f"web.config.file: cannot load client CA: "
                                  f"{getattr(exc, 'strerror', None) or exc}") from None
        return ctx

    def allows_peer(self, cert: dict | None) -> bool:
        """client_allowed_sans: the verified client certificate names one of them."""
        if not self.client_allowed_sans:
            return True
        if not cert:
            return False
        sans = {value for _kind, value in cert.get("subjectAltName", ())}
        return any(san in sans for san in self.client_allowed_sans)


def _load_cert_chain(ctx: ssl.SSLContext, config: WebConfig) -> None:
    """From files, or from inline PEM through anonymous memory files (never the disk)."""
    import ssl

    fds = []
    try:
        cert, key = config.cert_file, config.key_file
        for attr, pem in (("cert", config.cert_pem), ("key", config.key_pem)):
            if pem:
                fd = os.memfd_create(f"nitrometer-{attr}", os.MFD_CLOEXEC)
                fds.append(fd)
                os.write(fd, pem.encode())
                path = f"/proc/self/fd/{fd}"
                cert, key = (path, key) if attr == "cert" else (cert, path)
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        what = config.cert_file or "inline cert"
        raise ConfigError(f"web.config.file: cannot load {what} / "
                          f"{config.key_file or 'inline key'}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    finally:
        for fd in fds:
            os.close(fd)


def _strings(where: str, key: str, value, allowed=None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    for v in value:
        if allowed is not None and v not in allowed:
            raise ConfigError(f"{where}: {key}: unknown or unsupported value {v!r}")
    return tuple(value)


def _mapping(where: str, key: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a mapping")
    return value


def _text(where: str, key: str, value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string")
    return value


def _parse_tls(where: str, tls: dict, base: Path) -> dict:
    unknown = set(tls) - TLS_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key tls_server_config.{sorted(unknown, key=str)[0]}")
    text = {k: _text(where, f"tls_server_config.{k}", tls.get(k))
            for k in ("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file",
                      "client_auth_type", "min_version", "max_version")}
    for inline in ("cert", "key", "client_ca"):
        if text[inline] and text[f"{inline}_file"]:
            raise ConfigError(f"{where}: tls_server_config has both {inline} and "
                              f"{inline}_file")
    has_cert = bool(text["cert"] or text["cert_file"])
    has_key = bool(text["key"] or text["key_file"])
    if has_cert != has_key:
        raise ConfigError(f"{where}: tls_server_config needs both cert_file and key_file")
    if tls and not has_cert:
        raise ConfigError(f"{where}: tls_server_config needs cert_file and key_file")
    min_version = text["min_version"] or "TLS12"
    max_version = text["max_version"] or "TLS13"
    for key, version in (("min_version", min_version), ("max_version", max_version)):
        if version not in TLS_VERSIONS:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(TLS_VERSIONS)}, "
                              f"got {version!r}")
    if list(TLS_VERSIONS).index(min_version) > list(TLS_VERSIONS).index(max_version):
        raise ConfigError(f"{where}: min_version {min_version} is above max_version "
                          f"{max_version}")
    auth = text["client_auth_type"] or "NoClientCert"
    if auth not in CLIENT_AUTH:
        raise ConfigError(f"{where}: client_auth_type {auth!r} is not supported (use "
                          f"{', '.join(CLIENT_AUTH)})")
    has_ca = bool(text["client_ca"] or text["client_ca_file"])
    if CLIENT_AUTH[auth][1] and not has_ca:
        raise ConfigError(f"{where}: client_auth_type {auth} needs client_ca_file")
    if has_ca and not CLIENT_AUTH[auth][1]:
        raise ConfigError(f"{where}: client_ca_file is set but client_auth_type is {auth}: "
                          "use RequireAndVerifyClientCert")
    sans = _strings(where, "client_allowed_sans", tls.get("client_allowed_sans"))
    if sans and auth != "RequireAndVerifyClientCert":
        raise ConfigError(f"{where}: client_allowed_sans needs client_auth_type "
                          "RequireAndVerifyClientCert")
    prefer = tls.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise ConfigError(f"{where}: prefer_server_cipher_suites must be true or false")

    def file(name):
        return str(base / text[name]) if text[name] else None

    return dict(
        cert_file=file("cert_file"), key_file=file("key_file"),
        cert_pem=text["cert"], key_pem=text["key"],
        client_ca_file=file("client_ca_file"), client_ca_pem=text["client_ca"],
        client_auth_type=auth, client_allowed_sans=sans,
        min_version=min_version, max_version=max_version,
        cipher_suites=_strings(where, "cipher_suites", tls.get("cipher_suites"),
                               set(CIPHER_SUITES) | set(TLS13_SUITES)),
        prefer_server_cipher_suites=prefer,
        curve_preferences=_strings(where, "curve_preferences", tls.get("curve_preferences"),
                                   CURVES),
    )


def _parse_http(where: str, http: dict) -> tuple[tuple[str, str], ...]:
    unknown = set(http) - {"headers", "http2"}
    if unknown:
        raise ConfigError(f"{where}: unknown key http_server_config.{sorted(unknown, key=str)[0]}")
    if http.get("http2") is True:
        raise ConfigError(f"{where}: http_server_config.http2 is not supported (this server "
                          "speaks HTTP/1.1): set it to false or leave it out")
    if "http2" in http and http["http2"] is not False:
        raise ConfigError(f"{where}: http_server_config.http2 must be true or false")
    headers = []
    for name, value in _mapping(where, "http_server_config.headers", http.get("headers")).items():
        if name not in RESPONSE_HEADERS:
            raise ConfigError(f"{where}: header {name!r} is not one the web config may set "
                              f"({', '.join(RESPONSE_HEADERS)})")
        value = _text(where, f"headers.{name}", value)
        if value is None:
            continue  # blank: unset
        allowed = RESPONSE_HEADERS[name]
        if allowed and value.lower() not in allowed:
            raise ConfigError(f"{where}: headers.{name} must be one of {', '.join(allowed)}")
        if any(c in value for c in "\r\n"):
            raise ConfigError(f"{where}: headers.{name} must be one line")
        headers.append((name, value))
    return tuple(headers)


def _parse_users(where: str, users) -> dict[str, bytes]:
    parsed = {}
    for user, hashed in _mapping(where, "basic_auth_users", users).items():
        if not isinstance(user, str) or ":" in user:
            raise ConfigError(f"{where}: basic_auth_users: {user!r} is not a user name")
        if not isinstance(hashed, str) or not BCRYPT_RE.fullmatch(hashed):
            raise ConfigError(f"{where}: basic_auth_users.{user} is not a bcrypt hash "
                              "($2b$COST$ then 53 characters)")
        cost = int(BCRYPT_RE.fullmatch(hashed).group(1))
        if not 4 <= cost <= 31:
            raise ConfigError(f"{where}: basic_auth_users.{user}: bcrypt cost {cost} is "
                              "out of range (4 to 31)")
        if not _bcrypt_accepts(hashed):
            raise ConfigError(f"{where}: basic_auth_users.{user}: bcrypt refuses the hash "
                              "(an invalid salt)")
        parsed[user] = hashed.encode()
    return parsed


def _bcrypt_accepts(hashed: str) -> bool:
    """bcrypt's own parser on the hash, run at the lowest cost: a hash it would refuse at
    every scrape (a bad salt) is refused at load, in about a millisecond whatever its cost."""
    import bcrypt

    cheapest = hashed[:4] + "04" + hashed[6:]
    try:
        bcrypt.checkpw(b"", cheapest.encode())
    except ValueError:
        return False
    return True


def load_web_config(path: str | None) -> WebConfig:
    """The web config at path (None: plain HTTP, no auth); ConfigError, one line, on any fault."""
    if path is None:
        return WebConfig()
    try:
        return _load(path)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a shape not foreseen
        raise ConfigError(f"web.config.file {path}: malformed ({exc})") from None


def _load(path: str) -> WebConfig:
    from nitrometer.configfile import parse_yaml, read_text

    where = f"web.config.file {path}"
    data = parse_yaml(read_text(path, "web.config.file"), where)
    data = _mapping(where, "the file", data)
    if "rate_limit" in data:
        raise ConfigError(f"{where}: rate_limit is not supported (the agent caps connections "
                          "and concurrent scrapes itself)")
    unknown = set(data) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown, key=str)[0]!r}")
    base = Path(path).resolve().parent
    tls = _parse_tls(where, _mapping(where, "tls_server_config", data.get("tls_server_config")),
                     base)
    headers = _parse_http(where, _mapping(where, "http_server_config",
                                          data.get("http_server_config")))
    config = WebConfig(**tls, headers=headers,
                       users=_parse_users(where, data.get("basic_auth_users")))
    config.ssl_context()  # fail now, with one line, rather than on the first scrape
    return config
