"""The OpenAPI 3.1 description of the console's JSON API (served at ``/api/openapi.json``).

Kept next to :mod:`ivr.console.api` by hand; a test validates it with openapi-spec-validator
and checks real answers against its schemas."""

from __future__ import annotations

from typing import Any

from ivr.console.analytics import RANKED
from ivr.console.analytics_params import (
    BUCKETS,
    FIRST_DAY,
    LAST_DAY,
    MAX_DAYS,
    MAX_LIMIT,
    MAX_MIN,
    MAX_OFFSET,
    TEXT_MAX,
)
from storage.analytics import GROUPINGS
from storage.analytics_rows import ROW_COLUMNS

_NUM = {"type": ["number", "null"]}
_INT = {"type": "integer", "minimum": 0}
_DAY = {"type": "string", "format": "date", "description": f"{FIRST_DAY} to {LAST_DAY}"}
_TEXT = {"type": "string", "maxLength": TEXT_MAX}


def _param(name: str, doc: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": doc, "schema": schema}


_SELECTION = [
    _param(
        "from",
        f"first local closing day (default: 30 days before `to`; at most {MAX_DAYS} days)",
        _DAY,
    ),
    _param(
        "to",
        "last local closing day, included (default: yesterday)",
        _DAY,
    ),
    _param("executor", "executor id (`unknown`: not named by the portal)", _TEXT),
    _param("category", "category (catalog name, else as sent; or `unknown`)", _TEXT),
    _param("district", "district (or `unknown`)", _TEXT),
    _param(
        "round",
        "first: round 1; rework: closed again after rework; again: unsatisfied again",
        {"type": "string", "enum": ["first", "rework", "again"]},
    ),
    _param("by", "grouping", {"type": "string", "enum": [*GROUPINGS, "total"]}),
]

FIGURES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "key",
        "label",
        "surveys",
        "called",
        "answered",
        "rated",
        "satisfied",
        "unsatisfied",
        "satisfaction",
        "reach",
    ],
    "properties": {
        "key": {"type": ["string", "null"], "description": "null: the portal did not say"},
        "label": {"type": "string"},
        **{
            n: _INT
            for n in (
                "surveys",
                "pending",
                "not_called",
                "called",
                "answered",
                "not_reached",
                "satisfied",
                "unsatisfied",
                "unsatisfied_again",
                "no_rating",
                "rated",
            )
        },
        **{
            n: {**_NUM, "minimum": 0, "maximum": 1}
            for n in (
                "satisfaction",
                "satisfaction_low",
                "satisfaction_high",
                "reach",
                "reach_low",
                "reach_high",
            )
        },
        "not_reached_reasons": {"type": "object", "additionalProperties": _INT},
        "not_called_reasons": {"type": "object", "additionalProperties": _INT},
    },
}
_FILTERS = {"type": "object", "additionalProperties": {"type": "string"}}
_ROW = {
    "type": "object",
    "required": list(ROW_COLUMNS),
    "properties": {c: {"type": ["string", "integer", "null"]} for c in ROW_COLUMNS},
}


def _answer(schema: dict[str, Any], doc: str) -> dict[str, Any]:
    return {
        "200": {"description": doc, "content": {"application/json": {"schema": schema}}},
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
    }


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(props), "properties": props}


_GROUPS = {"type": "array", "items": {"$ref": "#/components/schemas/Figures"}}
SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "ivr-rating analytics API",
        "version": "1.0.0",
        "description": "Satisfaction and reach of the city's survey calls, with counts and "
        "95 % Wilson intervals. Phones are masked.",
    },
    "security": [{"bearer": []}, {"session": []}],
    "paths": {
        "/api/figures": {
            "get": {
                "summary": "Figures of each group, and the total",
                "parameters": _SELECTION,
                "responses": _answer(
                    _obj(
                        filters=_FILTERS,
                        by={"type": "string"},
                        groups=_GROUPS,
                        total={"$ref": "#/components/schemas/Figures"},
                    ),
                    "figures by group",
                ),
            }
        },
        "/api/ranking": {
            "get": {
                "summary": "Groups with at least `min` ratings (or calls), worst first",
                "parameters": [
                    *_SELECTION[:-1],
                    _param("by", "grouping", {"type": "string", "enum": list(RANKED)}),
                    _param(
                        "measure",
                        "what ranks",
                        {"type": "string", "enum": ["satisfaction", "reach"]},
                    ),
                    _param(
                        "min",
                        "least count",
                        {"type": "integer", "minimum": 1, "maximum": MAX_MIN},
                    ),
                ],
                "responses": _answer(
                    _obj(
                        filters=_FILTERS,
                        by={"type": "string"},
                        measure={"type": "string"},
                        min={"type": "integer"},
                        groups=_GROUPS,
                    ),
                    "ranked groups",
                ),
            }
        },
        "/api/rows": {
            "get": {
                "summary": "The surveys behind a figure (phones masked), newest closing first",
                "parameters": [
                    *_SELECTION,
                    _param("key", "the group (with `by`)", _TEXT),
                    _param("bucket", "outcome bucket", {"type": "string", "enum": list(BUCKETS)}),
                    _param(
                        "limit",
                        "rows per answer",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    ),
                    _param(
                        "offset",
                        "rows skipped",
                        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                    ),
                ],
                "responses": _answer(
                    _obj(
                        filters=_FILTERS,
                        count=_INT,
                        limit=_INT,
                        offset=_INT,
                        rows={"type": "array", "items": {"$ref": "#/components/schemas/Row"}},
                    ),
                    "one page of rows",
                ),
            }
        },
    },
    "components": {
        "schemas": {
            "Figures": FIGURES_SCHEMA,
            "Row": _ROW,
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string", "description": "`name: what is wrong`"},
                    "parameter": {"type": "string", "description": "the wrong parameter"},
                },
            },
        },
        "responses": {
            "BadRequest": {
                "description": "a parameter is wrong, out of its range or given twice (named "
                "in `parameter` and `error`)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "Unauthorized": {
                "description": "no session and no valid bearer token",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "a token from `ivr-rating token add NAME`",
            },
            "session": {"type": "apiKey", "in": "cookie", "name": "ivr_session"},
        },
    },
}
