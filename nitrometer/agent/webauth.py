"""Basic auth against bcrypt hashes: the same work whether or not the user exists, and
whatever the cost of the user's hash.

Every attempt runs one bcrypt at each cost among the configured hashes, in the same order:
the user's own hash at its cost, a dummy hash at every other cost (all of them for an
unknown user). So the time an attempt takes says nothing about the user name, nor about
which cost its hash has.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time

MAX_PASSWORD = 72  # bcrypt looks at 72 bytes; a longer password is refused, not truncated
CHECKS_AT_ONCE = 1  # bcrypt runs at most on one core: a password flood cannot take both
CHECK_WAIT = 5.0  # past this, a request waiting for its turn is refused (503)
# bcrypt's base64 alphabet, and the last characters of a 22-character salt and a
# 31-character digest that hold no stray bits.
_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_SALT_ENDS = _ALPHABET[::16]
_DIGEST_ENDS = _ALPHABET[::4]


class AuthBusy(Exception):
    """Too many password checks queued: answer 503 rather than wait."""


def cost_of(hashed: bytes) -> int:
    """$2b$12$... -> 12."""
    return int(hashed[4:6])


def dummy_hash(cost: int) -> bytes:
    """A well-formed hash at `cost` that no password matches, made without running bcrypt
    (a hashpw at a high cost would hold up the load)."""
    import secrets

    def chars(n: int, last: str) -> str:
        return "".join(secrets.choice(_ALPHABET) for _ in range(n - 1)) + secrets.choice(last)

    return f"$2b${cost:02d}${chars(22, _SALT_ENDS)}{chars(31, _DIGEST_ENDS)}".encode()


def _checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a hash bcrypt cannot use: never a pass, never a crash
        return False


class Authenticator:
    """bcrypt is slow on purpose; remember the credentials that already passed.

    `checkpw(password, hash)` is bcrypt's check (tests count the work through it)."""

    def __init__(self, users: dict[str, bytes], checkpw=_checkpw):
        self.users = dict(users)
        self.costs = sorted({cost_of(h) for h in self.users.values()})
        self._dummies = {cost: dummy_hash(cost) for cost in self.costs}
        self._checkpw = checkpw
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(CHECKS_AT_ONCE)
        self.closed = False

    def plan(self, hashed: bytes | None) -> list[bytes]:
        """The hashes one attempt checks: one per cost in use, the user's own at its cost."""
        own = cost_of(hashed) if hashed is not None else None
        return [hashed if cost == own else self._dummies[cost] for cost in self.costs]

    def close(self) -> None:
        """No new password checks: the agent is stopping (a waiting request gets 503)."""
        self.closed = True

    @property
    def required(self) -> bool:
        return bool(self.users)

    def check(self, header: str | None) -> bool:
        """True when the Authorization header holds a known user's password.

        Raises AuthBusy when the password checks are saturated.
        """
        if not self.users:
            return True
        # Loaded with the first password (OpenSSL behind hashlib): none without users.
        import hashlib
        import hmac

        if not header or not header.startswith("Basic "):
            return False
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user_bytes, _, password = raw.partition(b":")
        user = user_bytes.decode("utf-8", "replace")
        hashed = self.users.get(user)
        known = hashed is not None
        key = hashlib.sha256(user_bytes + b"\0" + password + b"\0" + (hashed or b"")).digest()
        if known:
            with self._lock:
                if any(hmac.compare_digest(key, k) for k in self._passed):
                    return True
        matched = self._bcrypt(password[:MAX_PASSWORD], self.plan(hashed), hashed)
        ok = matched and known and len(password) <= MAX_PASSWORD
        if ok:
            with self._lock:
                self._passed.add(key)
        return ok

    def _bcrypt(self, password: bytes, plan: list[bytes], hashed: bytes | None) -> bool:
        """Every hash of the plan checked, none skipped; whether the user's own matched."""
        deadline = time.monotonic() + CHECK_WAIT
        while not self._checks.acquire(timeout=0.05):
            if self.closed or time.monotonic() > deadline:
                raise AuthBusy("too many password checks at once")
        try:
            matched = False
            for candidate in plan:
                ok = self._checkpw(password, candidate)
                matched = matched or (ok and candidate is hashed)
            return matched
        finally:
            self._checks.release()
