"""taskq's packages are Django's ``signing.dumps`` format, byte for byte, both ways."""

from __future__ import annotations

import datetime
import time

import pytest
from django.core import signing as django_signing
from django.test import override_settings

from taskq import signing
from taskq.exceptions import InvalidSignature

OBJECTS = [
    {"id": "a" * 32, "func": "math.floor", "args": (1.5,), "kwargs": {}},
    {"id": "b", "args": ("é" * 300,), "kwargs": {"when": datetime.datetime(2026, 1, 1)}},
    {"id": "c", "args": (b"\x00" * 5000,)},  # compresses well
    [],
]


def django_dumps(obj, *, salt: str, compress: bool = False) -> str:
    return django_signing.dumps(
        obj, salt=salt, compress=compress, serializer=signing.PickleSerializer
    )


def django_loads(package: str, *, salt: str):
    return django_signing.loads(package, salt=salt, serializer=signing.PickleSerializer)


@pytest.mark.parametrize("obj", OBJECTS)
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("salt", ["default", "ünïcode-project"])
def test_packages_are_djangos_byte_for_byte(monkeypatch, obj, compress, salt) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_790_000_000.25)  # both read the clock
    ours = signing.dumps(obj, salt=salt, compress=compress)
    assert ours == django_dumps(obj, salt=salt, compress=compress)
    assert django_loads(ours, salt=salt) == obj
    assert signing.loads(django_dumps(obj, salt=salt, compress=compress), salt=salt) == obj


def test_compression_is_used_only_when_it_saves_space() -> None:
    assert signing.dumps(OBJECTS[2], salt="s", compress=True).startswith(".")
    assert not signing.dumps([], salt="s", compress=True).startswith(".")


def test_another_salt_or_key_does_not_verify() -> None:
    package = signing.dumps(OBJECTS[0], salt="one")
    with pytest.raises(InvalidSignature, match="bad signature"):
        signing.loads(package, salt="two")
    with override_settings(SECRET_KEY="another-key-" * 4), pytest.raises(InvalidSignature):
        signing.loads(package, salt="one")


def test_a_rotated_key_is_accepted_from_the_fallbacks() -> None:
    package = signing.dumps(OBJECTS[0], salt="s")
    from django.conf import settings

    old = settings.SECRET_KEY
    with override_settings(SECRET_KEY="the-new-key-" * 4, SECRET_KEY_FALLBACKS=[old]):
        assert signing.loads(package, salt="s") == OBJECTS[0]
        # and what the new key signs is verified by the new key
        assert signing.loads(signing.dumps([1], salt="s"), salt="s") == [1]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda p: p[:-1] + ("A" if p[-1] != "A" else "B"),  # signature changed
        lambda p: "x" + p,  # value changed
        lambda p: p.replace(":", ";"),  # no separator
        lambda p: p.rsplit(":", 1)[0],  # no signature
        lambda p: "",
    ],
)
def test_tampered_packages_are_refused(mangle) -> None:
    with pytest.raises(InvalidSignature, match="bad signature"):
        signing.loads(mangle(signing.dumps(OBJECTS[0], salt="s")), salt="s")


def test_a_signed_payload_that_cannot_be_unpickled_says_so() -> None:
    value = f"{django_signing.b64_encode(b'not a pickle').decode()}:{django_signing.b62_encode(1)}"
    package = f"{value}:{signing.signature(value, django_signing.settings.SECRET_KEY, 's')}"
    with pytest.raises(InvalidSignature, match="payload cannot be unpickled"):
        signing.loads(package, salt="s")
