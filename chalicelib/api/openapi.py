"""The HTTP API's OpenAPI 3.0 document (GET /openapi.json), built from the code it describes: its paths are the
app's routes (each summary is the view's docstring), and the cost parameters and their bounds come from
`cost.Usage` and `cost.LIMITS`, so the document cannot fall behind. A test checks every route is in it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from chalicelib.cost import estimate as cost

ERROR = {
    "description": "a parameter that cannot be used; the message names it",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["Code", "Message"],
                "properties": {"Code": {"type": "string"}, "Message": {"type": "string"}},
            }
        }
    },
}
ESTIMATE = {
    "type": "object",
    "required": ["monthly_total", "currency", "region", "by_service", "lines", "assumptions", "what_if", "scenario"],
    "properties": {
        "monthly_total": {"type": "number"},
        "currency": {"type": "string"},
        "region": {"type": "string"},
        "prices_as_of": {"type": "string"},
        "price_source": {"type": "string"},
        "scenario": {"type": "string"},
        "notice": {"type": "string", "nullable": True, "description": "Why the prices are not the region's."},
        "by_service": {"type": "object", "additionalProperties": {"type": "number"}},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["service", "item", "quantity", "unit", "unit_price", "per", "monthly"],
                "properties": {
                    "service": {"type": "string"},
                    "item": {"type": "string"},
                    "quantity": {"type": "number"},
                    "unit": {"type": "string"},
                    "unit_price": {"type": "number"},
                    "per": {"type": "number"},
                    "monthly": {"type": "number"},
                },
            },
        },
        "usage": {"type": "object"},
        "assumptions": {"type": "array", "items": {"type": "string"}},
        "what_if": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "monthly_saving", "detail"],
                "properties": {
                    "name": {"type": "string"},
                    "monthly_saving": {"type": "number"},
                    "detail": {"type": "string"},
                },
            },
        },
        "engines": {
            "type": "object",
            "description": "A dataset batch by size on each engine (workers, minutes, price) and the one picked",
            "required": ["spark_bytes", "max_batch_bytes", "rows", "assumptions"],
            "properties": {
                "spark_bytes": {"type": "integer"},
                "max_batch_bytes": {"type": "integer"},
                "rows": {
                    "type": "array",
                    "items": {"type": "object", "required": ["bytes", "chosen", "single", "spark"]},
                },
                "assumptions": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}
STATUS = {
    "type": "object",
    "required": ["stage", "time", "files_last_24h", "recent_files", "runs", "datasets", "drift", "lifecycle"],
    "properties": {
        "stage": {"type": "string"},
        "time": {"type": "string"},
        "files_last_24h": {"type": "object", "additionalProperties": {"type": "integer"}},
        "recent_files": {"type": "array", "items": {"type": "object"}},
        "runs": {"type": "array", "items": {"type": "object"}},
        "datasets": {"type": "object", "additionalProperties": {"type": "object"}},
        "drift": {"type": "object", "nullable": True},
        "lifecycle": {"type": "object", "nullable": True},
    },
}


def _usage_schemas() -> dict[str, dict[str, Any]]:
    regions = cost.prices()["regions"]
    classes = list(cost.prices()["s3_storage_gb_month"])
    schemas: dict[str, dict[str, Any]] = {}
    for f in fields(cost.Usage):
        if f.name == "region":
            schemas[f.name] = {"type": "string", "enum": regions}
        elif f.name == "storage_split":
            schemas[f.name] = {
                "type": "object",
                "description": "each storage class's share of stored_gb, adding up to 1",
                "properties": {c: {"type": "number", "minimum": 0, "maximum": 1} for c in classes},
                "additionalProperties": False,
                "minProperties": 1,
            }
        else:
            low, high = cost.LIMITS[f.name]
            schemas[f.name] = {"type": "number", "minimum": low, "maximum": high}
    return schemas


@dataclass(frozen=True)
class Route:
    """One operation of the app: `protected` routes hold data and carry the stage's authorization."""

    path: str
    method: str
    summary: str
    protected: bool


def _operations(usage: dict[str, Any], scenario: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """What a route's docstring cannot say: its parameters, its body and its answer."""
    query = []
    for name, schema in {"scenario": scenario, **usage}.items():
        if name == "storage_split":
            schema = {"type": "string", "pattern": r"^[A-Z_]+:[0-9.]+(,[A-Z_]+:[0-9.]+)*$", "example": "STANDARD:1"}
        query.append({"name": name, "in": "query", "required": False, "schema": schema})
    html = {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}
    return {
        ("/", "GET"): {"responses": html},
        ("/openapi.json", "GET"): {
            "responses": {"200": {"description": "this document", "content": {"application/json": {"schema": {}}}}}
        },
        ("/cost", "GET"): {"parameters": query, "responses": _responses(ESTIMATE)},
        ("/cost", "POST"): {
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"scenario": scenario, **usage},
                            "additionalProperties": False,
                            "nullable": True,  # no body, or null: this stage's configuration
                        }
                    }
                },
            },
            "responses": _responses(ESTIMATE),
        },
        ("/status", "GET"): {
            "parameters": [
                {
                    "name": "files",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
                }
            ],
            "responses": _responses(STATUS),
        },
    }


def document(auth: str, routes: Iterable[Route]) -> dict[str, Any]:
    """The document of the app's `routes` for a stage whose data routes are protected by `auth` (iam, iam+api_key
    or none). A route without details here is still documented, with the generic answers."""
    operations = _operations(_usage_schemas(), {"type": "string", "enum": list(cost.SCENARIOS)})
    sigv4 = {
        "sigv4": {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"}
    }
    api_key = {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}
    security_schemes: dict[str, Any] = {"iam": sigv4, "iam+api_key": sigv4 | api_key, "none": {}}[auth]
    # one requirement naming every scheme: all of them at once (OpenAPI, Security Requirement Object)
    security: list[dict[str, list[str]]] = [{name: [] for name in security_schemes}] if security_schemes else []
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        details = operations.get((route.path, route.method), {"responses": _responses({"type": "object"})})
        operation = {"summary": route.summary, **details}
        if route.protected and security:
            operation["security"] = security
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Serverless Lakehouse API",
            "version": "1",
            "description": "Cost estimates and pipeline status of a lakehouse stage, and its dashboard page.",
        },
        "paths": paths,
        "components": {"securitySchemes": security_schemes},
    }


def _responses(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "200": {"description": "the answer", "content": {"application/json": {"schema": schema}}},
        "400": ERROR,
        "503": {**ERROR, "description": "an AWS call behind the answer failed; the message names it"},
    }
