"""The portal's configuration keys: where the token may go, and the client's bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr.core.config import load_config, parse_config
from ivr.core.errors import ConfigError
from ivr.portal.transport import redact_credentials
from tests.helpers import config_data

ROOT = Path(__file__).resolve().parent.parent


def portal_config(**portal: Any) -> Any:
    return parse_config(config_data(portal={"token": "tok", **portal}), env={})


@pytest.mark.parametrize(
    ("portal", "message"),
    [
        ({"base_url": "https://user:pa55word@portal.example/api"}, "credentials in the URL"),
        ({"base_url": "https://token-only@portal.example/api"}, "credentials in the URL"),
        ({"base_url": "http://portal.example/api"}, "portal.allow_insecure_http: true"),
        ({"base_url": "http://10.0.0.5:8080/api"}, "token in clear text"),
    ],
    ids=["user-and-password", "user-only", "plain-http-remote", "plain-http-private-ip"],
)
def test_unsafe_portal_urls_are_config_errors_naming_the_key(
    portal: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        portal_config(**portal)
    assert caught.value.key == "portal.base_url"
    assert message in str(caught.value)
    assert "pa55word" not in str(caught.value) and "token-only" not in str(caught.value)


@pytest.mark.parametrize(
    "portal",
    [
        {"base_url": "https://portal.example/api"},
        {"base_url": "http://127.0.0.1:8080/api"},
        {"base_url": "http://127.9.9.9/api"},
        {"base_url": "http://localhost:8080/api"},
        {"base_url": "http://[::1]:8080/api"},
        {"base_url": "http://portal.example/api", "allow_insecure_http": True},
    ],
    ids=["https", "loopback", "loopback-net", "localhost", "ipv6-loopback", "allowed-insecure"],
)
def test_safe_or_explicitly_allowed_portal_urls_are_accepted(portal: dict[str, Any]) -> None:
    config = portal_config(**portal)
    assert config.portal.insecure == portal.get("allow_insecure_http", False)


def test_bounds_have_defaults_and_are_validated() -> None:
    config = portal_config(base_url="https://portal.example/api")
    assert config.portal.request_deadline_s == 60
    assert config.portal.max_page_bytes == 16 * 1024 * 1024
    assert config.portal.max_pages == 1000
    for key, bad in (("request_deadline_s", 0), ("max_page_bytes", 10), ("max_pages", 0)):
        with pytest.raises(ConfigError) as caught:
            portal_config(base_url="https://portal.example/api", **{key: bad})
        assert caught.value.key == f"portal.{key}"


def test_example_config_states_the_portal_defaults() -> None:
    env = {"PORTAL_TOKEN": "t", "SIP_PASSWORD": "p"}
    example = load_config(ROOT / "config.example.yaml", env=env).portal
    defaults = portal_config(base_url=example.base_url).portal
    assert example.model_dump(exclude={"token"}) == defaults.model_dump(exclude={"token"})


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ('{"error": "x", "token": "abc123"}', '"error": "x"', "abc123"),
        ('{"user": {"password": "p@ss, w", "name": "n"}}', '"name": "n"', "p@ss"),
        ('{"client_secret": "s3"}', "client_secret", "s3"),
        ('{"headers": {"Authorization": "Bearer eyJ.x.y"}}', "headers", "eyJ"),
        ("Authorization: Basic dXNlcjpwdw==\nHost: p", "Host: p", "dXNlcjpwdw"),
        ("bad token Bearer zz-top-1234 given", "bad token", "zz-top-1234"),
        ("password=hunter2&x=1", "x=1", "hunter2"),
        ("api_key: K-123 refused", "refused", "K-123"),
        ("see https://bob:pw1@host/x", "host/x", "pw1"),
        ("our-own-token echoed", "echoed", "our-own-token"),
        ("no request REQ-7 here", "no request REQ-7 here", "***"),
    ],
    ids=["json-token", "nested-password", "secret-suffix", "authorization-field",
         "authorization-header", "bearer", "form", "yaml-ish", "url-userinfo", "our-token",
         "harmless"],
)  # fmt: skip
def test_credential_like_values_are_redacted(text: str, kept: str, gone: str) -> None:
    redacted = redact_credentials(text, "our-own-token")
    assert kept in redacted and gone not in redacted
