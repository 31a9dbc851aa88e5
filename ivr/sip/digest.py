"""Digest authentication of our requests (RFC 2617, RFC 3261 section 22): reading a
``WWW-Authenticate`` / ``Proxy-Authenticate`` challenge and answering it (MD5, qop=auth)."""

from __future__ import annotations

import hashlib
import re
import uuid


def parse_challenge(value: str) -> dict[str, str]:
    """Parameters of a ``Digest ...`` WWW-/Proxy-Authenticate header value."""
    value = re.sub(r"^\s*Digest\s+", "", value, flags=re.IGNORECASE)
    params: dict[str, str] = {}
    for key, quoted, token in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', value):
        params[key.lower()] = quoted if quoted else token
    return params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def digest_response(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
) -> str:
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def authorization_value(
    challenge: dict[str, str],
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str | None = None,
) -> str:
    """Value of the Authorization / Proxy-Authorization header answering ``challenge``.

    MD5 only; qop=auth is used when the challenge offers it."""
    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    offered = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in offered else None
    cnonce = cnonce or uuid.uuid4().hex[:16]
    response = digest_response(
        username=username,
        password=password,
        realm=realm,
        nonce=nonce,
        method=method,
        uri=uri,
        qop=qop,
        cnonce=cnonce,
    )
    parts = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        "algorithm=MD5",
    ]
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    if qop:
        parts += [f"qop={qop}", "nc=00000001", f'cnonce="{cnonce}"']
    return "Digest " + ",".join(parts)
