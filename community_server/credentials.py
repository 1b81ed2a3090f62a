"""Secrets the server hands out: household passwords and join codes, stored only hashed.

Passwords are hashed in mosquitto's own `$7$` format (PBKDF2-HMAC-SHA512), which its
dynamic-security plugin stores too, so the broker's accounts file is generated from the
database without ever storing a password.
Both kinds of secret are random and long, so a fast hash is enough: nothing to guess.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_SALT_BYTES = 12
_HASH_BYTES = 64
# Passwords are 256 random bits, so stretching adds nothing but CPU on every broker login.
PBKDF2_ITERATIONS = 1000
_JOIN_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
JOIN_CODE_LENGTH = 12  # 60 bits, single use and expiring


def new_password() -> str:
    return secrets.token_urlsafe(32)


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _HASH_BYTES)
    encoded_salt = base64.b64encode(salt).decode()
    return f"$7${iterations}${encoded_salt}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(expected))
    return hmac.compare_digest(digest, expected)


def new_join_code() -> str:
    """A code a person can read aloud, shown as XXXX-XXXX-XXXX."""
    raw = "".join(secrets.choice(_JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, JOIN_CODE_LENGTH, 4))


def normalise_join_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


def hash_join_code(code: str) -> str:
    return hashlib.sha256(normalise_join_code(code).encode()).hexdigest()
