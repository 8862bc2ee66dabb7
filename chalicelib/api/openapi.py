"""The HTTP API's OpenAPI 3.0 document (GET /openapi.json), built from the code it describes: the cost
parameters and their bounds come from `cost.Usage` and `cost.LIMITS`, so the document cannot fall behind."""

from __future__ import annotations

from dataclasses import fields
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


def document(auth: str) -> dict[str, Any]:
    """The document for a stage whose routes are protected by `auth` (iam, api_key or none)."""
    usage = _usage_schemas()
    scenario = {"type": "string", "enum": list(cost.SCENARIOS)}
    query = []
    for name, schema in {"scenario": scenario, **usage}.items():
        if name == "storage_split":
            schema = {"type": "string", "pattern": r"^[A-Z_]+:[0-9.]+(,[A-Z_]+:[0-9.]+)*$", "example": "STANDARD:1"}
        query.append({"name": name, "in": "query", "required": False, "schema": schema})
    security_schemes = {
        "iam": {
            "sigv4": {
                "type": "apiKey",
                "name": "Authorization",
                "in": "header",
                "x-amazon-apigateway-authtype": "awsSigv4",
            }
        },
        "api_key": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}},
        "none": {},
    }[auth]
    security = [{name: []} for name in security_schemes]
    protected = {"security": security} if security else {}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Serverless Lakehouse API",
            "version": "1",
            "description": "Cost estimates and pipeline status of a lakehouse stage, and its dashboard page.",
        },
        "paths": {
            "/": {
                "get": {
                    "summary": "the dashboard page (its data comes from /status and /cost)",
                    "responses": {
                        "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/cost": {
                "get": {
                    "summary": "monthly cost estimate: a scenario or this stage's configuration, with any usage figure",
                    "parameters": query,
                    "responses": _responses(ESTIMATE),
                    **protected,
                },
                "post": {
                    "summary": "the same, the usage figures (and scenario) as a JSON object",
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
                    **protected,
                },
            },
            "/status": {
                "get": {
                    "summary": "the pipeline at a glance, from summaries only",
                    "parameters": [
                        {
                            "name": "files",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
                        }
                    ],
                    "responses": _responses(STATUS),
                    **protected,
                }
            },
        },
        "components": {"securitySchemes": security_schemes},
    }


def _responses(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "200": {"description": "the answer", "content": {"application/json": {"schema": schema}}},
        "400": ERROR,
        "503": {**ERROR, "description": "an AWS call behind the answer failed; the message names it"},
    }
