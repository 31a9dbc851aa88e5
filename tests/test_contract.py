"""The portal client's requests and the emulator's answers, checked against the contract
(docs/portal-api.yaml, portal API 1.1) with jsonschema: every path, method, required header
and query parameter, request body (Rating; the comment's WAV), answer status and page body."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from ivr.core.comment_audio import Recording
from ivr.core.errors import PortalRejected
from ivr.portal.client import PortalClient
from lab.portal_emulator import PortalEmulator
from lab.sample_requests import make_items

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "portal-api.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
DAY = date(2026, 11, 26)
# OpenAPI 3.1 schemas are JSON Schema 2020-12; "#/components/..." resolves in the spec.
REGISTRY = Registry().with_resource("urn:spec", DRAFT202012.create_resource(SPEC))


def _absolute(node: Any) -> Any:
    """The schema with its "#/..." references pointing into the spec document."""
    if isinstance(node, dict):
        return {k: ("urn:spec" + v if k == "$ref" and v.startswith("#") else _absolute(v))
                for k, v in node.items()}  # fmt: skip
    if isinstance(node, list):
        return [_absolute(v) for v in node]
    return node


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(_absolute(schema), registry=REGISTRY)


def operation(method: str, url: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The spec's operation for a request, and the path parameters."""
    path = url.split("/api/v1", 1)[1].split("?", 1)[0]
    for template, item in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
        m = re.match(pattern, path)
        if m and method.lower() in item:
            return item[method.lower()], m.groupdict()
    raise AssertionError(f"{method} {path} is not in the contract")


def check_exchange(response: requests.Response) -> None:
    req = response.request
    assert req.method is not None and req.url is not None
    op, _ = operation(req.method, req.url)
    for param in op.get("parameters", []):
        if param.get("required") and param["in"] == "header":
            assert param["name"] in req.headers, (req.url, param["name"])
        if param.get("required") and param["in"] == "query":
            assert f"{param['name']}=" in req.url, (req.url, param["name"])
    assert req.headers.get("Authorization", "").startswith("Bearer ")
    if "requestBody" in op:
        ((ctype, media),) = op["requestBody"]["content"].items()
        assert req.headers["Content-Type"].split(";")[0] == ctype
        if ctype == "application/json":
            assert isinstance(req.body, bytes | str)
            validator(media["schema"]).validate(json.loads(req.body))
    status = str(response.status_code)
    listed = op["responses"]
    assert status in listed or f"{status[0]}XX" in listed, (req.method, req.url, status)
    schema = listed.get(status, {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is not None:
        validator(schema).validate(response.json())


@pytest.fixture
def exchanges() -> Iterator[tuple[requests.Session, list[requests.Response]]]:
    seen: list[requests.Response] = []
    session = requests.Session()

    def keep(response: requests.Response, *args: object, **kwargs: object) -> None:
        # The client streams bodies (stream=True, read capped); read this one here first, so
        # it is kept for the schema check too (the client's read then gets the same bytes).
        _ = response.content
        seen.append(response)

    session.hooks["response"].append(keep)
    yield session, seen
    session.close()


def test_the_spec_is_the_1_1_contract_and_its_schemas_are_valid() -> None:
    assert SPEC["info"]["version"] == "1.1"
    for schema in SPEC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    rating = SPEC["components"]["schemas"]["Rating"]["properties"]
    assert {"comment_expected", "callback_requested"} <= set(rating)


def test_client_and_emulator_speak_the_contract(
    exchanges: tuple[requests.Session, list[requests.Response]],
) -> None:
    session, seen = exchanges
    items = make_items(DAY, "Europe/Minsk", [f"+37529100000{i}" for i in range(5)])
    with PortalEmulator(items) as portal:
        client = PortalClient(portal.base_url, "test-token", timeout_s=5, page_size=2,
                              session=session)  # fmt: skip
        start = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
        got = list(client.iter_closed(start, start + timedelta(days=1)))
        assert len(got) == 5  # three pages
        rating = {
            "survey_id": "s-1", "outcome": "unsatisfied", "reason": None, "digit": "2",
            "answered_at": "2026-11-27T10:00:00+03:00", "completed_at": "2026-11-27T10:01:00+03:00",
            "attempts": 1, "return_for_rework": True, "comment_expected": True,
            "callback_requested": False,
        }  # fmt: skip
        rec = Recording.of_pcm(b"\x10\x27\xf0\xd8" * 4000)
        with pytest.raises(PortalRejected) as early:  # no rating yet: 404
            client.put_comment(items[0]["id"], "s-1", rec.wav, rec.duration_s, rec.sha256)
        assert early.value.status == 404
        assert client.post_rating(items[0]["id"], rating) == 201
        assert client.post_rating(items[0]["id"], rating) == 200  # a repeat
        assert client.put_comment(items[0]["id"], "s-1", rec.wav, rec.duration_s,
                                  rec.sha256) == 201  # fmt: skip
        assert client.put_comment(items[0]["id"], "s-1", rec.wav, rec.duration_s,
                                  rec.sha256) == 200  # fmt: skip
        with pytest.raises(PortalRejected) as bad:  # wrong checksum: 422
            client.put_comment(items[0]["id"], "s-1", rec.wav, rec.duration_s, "0" * 64)
        assert bad.value.status == 422
        with pytest.raises(PortalRejected) as not_wav:  # not a WAV: 415
            client.put_comment(items[0]["id"], "s-1", b"RIFFnonsense", 1.0, rec.sha256)
        assert not_wav.value.status == 415
    assert [r.status_code for r in seen] == [200, 200, 200, 404, 201, 200, 201, 200, 422, 415]
    for response in seen:
        check_exchange(response)
    put = seen[6].request
    assert put.headers["X-Comment-Duration"] == f"{rec.duration_s:.2f}"
    assert put.headers["X-Content-SHA256"] == rec.sha256 and put.body == rec.wav


def test_a_rating_that_breaks_the_schema_is_caught_by_the_check() -> None:
    """The check can fail: a rating with a non-boolean comment_expected is not the contract."""
    schema = validator({"$ref": "#/components/schemas/Rating"})
    good = {"survey_id": "s", "outcome": "satisfied", "completed_at": "2026-11-27T10:00:00Z",
            "attempts": 1, "return_for_rework": False, "comment_expected": False}  # fmt: skip
    schema.validate(good)
    assert not schema.is_valid({**good, "comment_expected": "yes"})
