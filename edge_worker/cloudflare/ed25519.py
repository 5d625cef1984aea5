"""Ed25519 signature verification in pure Python (RFC 8032, section 5.1.7).

For one check only: the release signature that the Worker verifies when its module is
imported. That runs once, when Cloudflare takes the memory snapshot of a new version, where
neither PyNaCl (no Pyodide build) nor WebCrypto (asynchronous, and reachable only from a
handler) can be used; a few milliseconds there cost no request anything. Everything checked
per request (customer tokens) and every signature the PoP makes go through WebCrypto.

Stricter than the RFC in one way, like libsodium: a public key of small order is refused,
since any signature "verifies" under it.
"""

from __future__ import annotations

import hashlib

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z
_IDENTITY: _Point = (0, 1, 1, 0)
_BASE_Y = 4 * pow(5, _P - 2, _P) % _P


def _add(p: _Point, q: _Point) -> _Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _multiply(scalar: int, point: _Point) -> _Point:
    result = _IDENTITY
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _same(p: _Point, q: _Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _decompress(data: bytes) -> _Point | None:
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return None
    square = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(square, (_P + 3) // 8, _P)
    if (x * x - square) % _P:
        x = x * _SQRT_M1 % _P
        if (x * x - square) % _P:
            return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


def _base() -> _Point:
    point = _decompress(_BASE_Y.to_bytes(32, "little"))
    assert point is not None
    return point


_B = _base()


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is the holder of `public_key`'s over `message`."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decompress(public_key)
    r = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L or _same(_multiply(8, a), _IDENTITY):
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(),
                       "little") % _L
    return _same(_multiply(s, _B), _add(r, _multiply(k, a)))
