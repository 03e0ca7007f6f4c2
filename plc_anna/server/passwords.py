"""Password hashes for the server's users: scrypt with a random salt, compared in constant time.

Stored as ``scrypt$N$r$p$SALT$HASH`` (salt and hash in base64); ``plc-anna
hash-password`` prints one. A malformed stored hash raises ``ValueError``:
a damaged configuration is not a wrong password.

Examples
--------
>>> stored = hash_password("correct horse")
>>> stored.startswith("scrypt$16384$8$1$")
True
>>> verify_password("correct horse", stored), verify_password("wrong", stored)
(True, False)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

#: scrypt cost parameters of new hashes: N = 2^14, r = 8, p = 1 (16 MiB, about 50 ms).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
_SCRYPT_MAX_MEMORY = 256 * 2 ** 20  # a stored hash may ask for at most 256 MiB (128 r N bytes)


# ---------------------------------------------------------------- password hashes

def hash_password(plain: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Hash a password for ``security.users[].password_hash``.

    The result reads ``scrypt$N$r$p$SALT$HASH`` (salt and hash in base64), with
    a fresh random 16-byte salt each call, so hashing the same password twice
    gives two different strings that both verify.

    Raises
    ------
    ValueError
        For an empty password or impossible scrypt parameters.
    """
    if not isinstance(plain, str) or not plain:
        raise ValueError("the password must be a non-empty string")
    _check_scrypt_params(n, r, p)
    salt = os.urandom(_SALT_BYTES)
    digest = _scrypt(plain, salt, n, r, p, _HASH_BYTES)
    return "$".join(["scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode("ascii"),
                     base64.b64encode(digest).decode("ascii")])


def verify_password(plain: str, stored: str) -> bool:
    """True if ``plain`` is the password ``stored`` (from :func:`hash_password`) was made from.

    The comparison takes the same time wherever the digests differ.

    Raises
    ------
    ValueError
        If ``stored`` is not such a hash (a configuration error, not a wrong password).
    """
    n, r, p, salt, expected = parse_password_hash(stored)
    if not isinstance(plain, str):
        return False
    return hmac.compare_digest(_scrypt(plain, salt, n, r, p, len(expected)), expected)


def parse_password_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """Split a stored hash into ``(n, r, p, salt, digest)``.

    Raises
    ------
    ValueError
        If ``stored`` is not a well-formed ``scrypt$N$r$p$SALT$HASH`` string.
    """
    parts = stored.split("$") if isinstance(stored, str) else []
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a password hash of the form scrypt$N$r$p$SALT$HASH")
    try:
        n, r, p = (int(v) for v in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("not a password hash of the form scrypt$N$r$p$SALT$HASH (bad number or base64)") from None
    _check_scrypt_params(n, r, p)
    if len(salt) < 8:
        raise ValueError(f"the password hash's salt is too short ({len(salt)} bytes, at least 8)")
    if not 16 <= len(digest) <= 64:
        raise ValueError(f"the password hash's digest has {len(digest)} bytes, expected 16 to 64")
    return n, r, p, salt, digest


def _check_scrypt_params(n: int, r: int, p: int) -> None:
    if not (isinstance(n, int) and n >= 2 and n & (n - 1) == 0):
        raise ValueError(f"scrypt N must be a power of 2 >= 2, got {n!r}")
    if not (isinstance(r, int) and 1 <= r <= 64 and isinstance(p, int) and 1 <= p <= 16):
        raise ValueError(f"scrypt r must be 1..64 and p 1..16, got r={r!r}, p={p!r}")
    if 128 * r * n > _SCRYPT_MAX_MEMORY:
        raise ValueError(f"scrypt N={n}, r={r} needs more than {_SCRYPT_MAX_MEMORY // 2 ** 20} MiB")


def _scrypt(plain: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 2 ** 20
    return hashlib.scrypt(plain.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


# ---------------------------------------------------------------- the key table
