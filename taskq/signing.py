"""Signed task packages in Django-Q2's format.

A package is ``django.core.signing.dumps`` of the pickled task dict, salted with the
project's ``name`` and keyed by ``SECRET_KEY``; ``SECRET_KEY_FALLBACKS`` are accepted
when reading, so keys can be rotated without losing queued tasks.

Every task is signed once and verified once, so both are on the hot path. Django
derives the HMAC key from the secret and the salt on every call; here the keyed HMAC
is derived once per (key, salt) and copied for each package. The packages are the
same, byte for byte (``taskq_tests/test_signing.py`` checks it against Django's own
functions). Anything the current key does not verify, or that does not decode, takes
Django's own path, which also tries the fallback keys and names what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import time
import zlib
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core import signing
from django.utils.encoding import force_bytes

from .exceptions import InvalidSignature

SEP = ":"


class PickleSerializer:
    """The serializer ``django.core.signing`` calls: pickle at the highest protocol."""

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


@lru_cache(maxsize=32)
def keyed_hmac(secret: str | bytes, salt: str) -> hmac.HMAC:
    """SHA-256 HMAC keyed as Django's ``Signer(salt=salt)`` keys it for ``secret``."""
    key = hashlib.sha256(force_bytes(salt + "signer") + force_bytes(secret)).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def signature(value: str, secret: str | bytes, salt: str) -> str:
    mac = keyed_hmac(secret, salt).copy()
    mac.update(value.encode())
    return signing.b64_encode(mac.digest()).decode()


def dumps(obj: Any, *, salt: str, compress: bool = False) -> str:
    """Sign and serialise ``obj`` (a task dict) as ``signing.dumps`` would."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    prefix = ""
    if compress:
        packed = zlib.compress(data)
        if len(packed) < len(data) - 1:
            data, prefix = packed, "."
    value = (
        f"{prefix}{signing.b64_encode(data).decode()}{SEP}{signing.b62_encode(int(time.time()))}"
    )
    return f"{value}{SEP}{signature(value, settings.SECRET_KEY, salt)}"


def loads(package: str, *, salt: str) -> Any:
    """Verify and deserialise a package; :class:`InvalidSignature` says why it cannot be read."""
    try:
        return quick_loads(package, salt)
    except Exception:  # not verified by the current key, or not decodable: Django decides
        pass
    try:
        return signing.loads(
            package,
            key=settings.SECRET_KEY,
            fallback_keys=list(getattr(settings, "SECRET_KEY_FALLBACKS", []) or []),
            salt=salt,
            serializer=PickleSerializer,
        )
    except signing.BadSignature as exc:
        raise InvalidSignature(f"bad signature: {exc}") from exc
    except Exception as exc:  # unpickling can raise anything a class's __setstate__ raises
        raise InvalidSignature(f"payload cannot be unpickled: {type(exc).__name__}: {exc}") from exc


def quick_loads(package: str, salt: str) -> Any:
    """The package's object if the current key verifies it; raises otherwise."""
    value, sep, sig = package.rpartition(SEP)
    expected = signature(value, settings.SECRET_KEY, salt)
    if not sep or not hmac.compare_digest(sig.encode(), expected.encode()):
        raise InvalidSignature("not signed with the current key")
    encoded, sep, timestamp = value.rpartition(SEP)
    if not sep:
        raise InvalidSignature("no timestamp")
    signing.b62_decode(timestamp)
    compressed = encoded[:1] == "."
    data = signing.b64_decode(encoded[1:].encode() if compressed else encoded.encode())
    return pickle.loads(zlib.decompress(data) if compressed else data)
