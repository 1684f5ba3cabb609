"""The registry check at start, and which lookup failures dead-letter (issue #13, item 4).

Against the real registry: its root URL (without ``/apis/ccompat/v7``) answers a bare
404, which is misconfiguration, never "schema not found".
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from shopstream.config import Settings
from shopstream.errors import ConnectionFailed
from shopstream.registry.admin import RegistryMisconfigured, check_registry
from shopstream.serde import DecodeError, EventDeserializer, make_registry_client

pytestmark = pytest.mark.integration

UNKNOWN_ID = 2_000_000_000
FRAMED = b"\x00" + UNKNOWN_ID.to_bytes(4, "big") + b"\x02"


def root_of(settings: Settings) -> Settings:
    parts = urlsplit(settings.schema_registry_url)
    root = f"{parts.scheme}://bob:hunter2@{parts.netloc}"
    return settings.model_copy(update={"schema_registry_url": root})


def test_the_api_answers(settings: Settings) -> None:
    assert check_registry(settings) >= 0


def test_a_url_without_the_api_path_is_misconfiguration(settings: Settings) -> None:
    with pytest.raises(RegistryMisconfigured) as raised:
        check_registry(root_of(settings))
    assert raised.value.exit_code == 2
    assert "bob:****@" in raised.value.message
    assert "hunter2" not in raised.value.message
    assert "/apis/ccompat/v7" in raised.value.message


def test_only_the_registrys_40403_dead_letters(settings: Settings) -> None:
    real = EventDeserializer(make_registry_client(settings.registry_config()))
    with pytest.raises(DecodeError) as raised:
        real.decode(FRAMED)
    assert raised.value.reason == "unknown-schema-id"

    misdirected = EventDeserializer(make_registry_client(root_of(settings).registry_config()))
    with pytest.raises(ConnectionFailed):  # retried by the runner, never dead-lettered
        misdirected.decode(FRAMED)
