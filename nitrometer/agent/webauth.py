"""Basic auth against bcrypt hashes: the same work whether or not the user exists."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time

MAX_PASSWORD = 72  # bcrypt looks at 72 bytes; a longer password is refused, not truncated
CHECKS_AT_ONCE = 1  # bcrypt runs at most on one core: a password flood cannot take both
CHECK_WAIT = 5.0  # past this, a request waiting for its turn is refused (503)


class AuthBusy(Exception):
    """Too many password checks queued: answer 503 rather than wait."""


def _dummy_hash(users: dict[str, bytes]) -> bytes:
    """A hash of a random password at the highest cost in use, for unknown users."""
    import os

    import bcrypt

    cost = max(int(h[4:6]) for h in users.values())
    return bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=cost))


class Authenticator:
    """bcrypt is slow on purpose; remember the credentials that already passed."""

    def __init__(self, users: dict[str, bytes]):
        self.users = dict(users)
        self._dummy = _dummy_hash(self.users) if self.users else b""
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(CHECKS_AT_ONCE)
        self.closed = False

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
        hashed = hashed if known else self._dummy
        key = hashlib.sha256(user_bytes + b"\0" + password + b"\0" + hashed).digest()
        if known:
            with self._lock:
                if any(hmac.compare_digest(key, k) for k in self._passed):
                    return True
        ok = self._bcrypt(password[:MAX_PASSWORD], hashed)
        ok = ok and known and len(password) <= MAX_PASSWORD
        if ok:
            with self._lock:
                self._passed.add(key)
        return ok

    def _bcrypt(self, password: bytes, hashed: bytes) -> bool:
        import bcrypt

        deadline = time.monotonic() + CHECK_WAIT
        while not self._checks.acquire(timeout=0.05):
            if self.closed or time.monotonic() > deadline:
                raise AuthBusy("too many password checks at once")
        try:
            return bcrypt.checkpw(password, hashed)
        except ValueError:  # a hash bcrypt cannot use: never a pass, never a crash
            return False
        finally:
            self._checks.release()

