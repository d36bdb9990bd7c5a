"""Slow, salted hashes of till passwords and API-client secrets (argon2id)."""

from __future__ import annotations

import os

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

# PATRON_FAST_HASHES=1 picks argon2's cheapest profile: for test suites only, which apply many
# org files; a production hash must stay slow.
_hasher = PasswordHasher.from_parameters(
    profiles.CHEAPEST if os.environ.get("PATRON_FAST_HASHES") == "1" else profiles.RFC_9106_LOW_MEMORY
)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


# A valid hash to verify against when the user is unknown, so that an unknown till takes as
# long as a wrong password.
DECOY_HASH = _hasher.hash("patron-decoy")
