"""Password and join-code hashing."""

from __future__ import annotations

from community_server.credentials import (
    hash_join_code,
    hash_password,
    new_join_code,
    new_password,
    verify_password,
)

# Made by `mosquitto_passwd -c -b file alice secret` (mosquitto 2.0.11).
MOSQUITTO_HASH = (
    "$7$101$uhoB3/w1BpYOPm17$gaulwLsiKoFovBl+qqh3sLo6a9z5RPgnLksWrifHAJz7++hYOvNpOHwm3zUNkJ5f"
    "OuOEvqhILCpGpUjvkMWMrg=="
)


def test_hashes_are_mosquitto_compatible() -> None:
    assert verify_password("secret", MOSQUITTO_HASH)
    assert not verify_password("Secret", MOSQUITTO_HASH)
    ours = hash_password("secret")
    assert ours.startswith("$7$1000$")
    assert verify_password("secret", ours)
    assert hash_password("secret") != ours  # salted


def test_malformed_hashes_never_verify() -> None:
    for hashed in ("", "plain", "$6$1$abc$def", "$7$x$abc$def", "$7$10$!!!$def", "$7$10$YQ==$@@"):
        assert not verify_password("secret", hashed)


def test_join_codes_are_readable_and_hash_forgivingly() -> None:
    code = new_join_code()
    assert len(code) == 14
    assert code.count("-") == 2
    assert not set(code) & set("01OI")
    assert hash_join_code(code) == hash_join_code(f" {code.lower().replace('-', ' ')} ")
    assert hash_join_code(code) != hash_join_code(new_join_code())
    assert len(new_password()) >= 40
