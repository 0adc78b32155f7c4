"""The OpenAPI description of a running server: what every route takes and every answer it gives.

FastAPI describes the routes' parameters, bodies and success answers; this adds what it cannot
know, from the app and its settings:

- every operation's error answers, from what its route is (api/answers.py, api/route_facts.py),
  in place of FastAPI's 422 for parameter errors (the app answers those 400);
- the API key (as `X-API-Key` or a bearer token) on every route that needs one, when keys are
  configured, so Swagger UI's "Authorize" and generated clients send it; the push routes' own
  access rules (api/push_access.py);
- one set of operations per dataset the server declares, `{ds}` filled in, with that dataset's
  fields: the events it takes and gives, the filters it reads (api/dataset_schemas.py). One
  description per dataset, rather than `{ds}` with a list of names, because what a request may
  hold depends on the dataset, and a schema cannot follow a path parameter.

Answers the HTTP server gives before any route is known (a malformed request, a head over
SLIPSTREAM_MAX_HEAD_BYTES, the connection bound) are in the document's description.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from slipstream.api.answers import ERROR_SCHEMA, HEADERS, error_answers, header_refs
from slipstream.api.dataset_schemas import STORABLE_JSON, STORABLE_JSON_NAME
from slipstream.api.openapi_datasets import per_dataset
from slipstream.api.push_access import describe_push_access
from slipstream.api.route_facts import DescribedRoute, described_routes
from slipstream.brokers import ANY_ID, IdShape
from slipstream.runtime import Runtime

SECURITY_SCHEMES = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key of SLIPSTREAM_API_KEYS (wins over a bearer token).",
    },
    "BearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The same API key as `Authorization: Bearer KEY`.",
    },
}
SERVER_ANSWERS = """

Every error answer is `{"error": {"code", "message", "details"}}` (the `Error` schema). Before
any route is known the server may answer any request **400** (not HTTP/1.1 it can parse),
**431** (a head over SLIPSTREAM_MAX_HEAD_BYTES) or **503** with Retry-After (over
SLIPSTREAM_MAX_CONNECTIONS), and **404**/**405** for a path or method it does not serve."""


def openapi_document(app: FastAPI) -> dict[str, Any]:
    runtime: Runtime = app.state.runtime
    keys: dict[str, frozenset[str]] = app.state.api_keys
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=(app.description or "") + SERVER_ANSWERS,
        routes=app.routes,
    )
    routes = described_routes(app.routes)
    for route in routes:
        for method in route.methods:
            operation = document["paths"][route.path][method]
            _describe_operation(operation, route, keyed=bool(keys))
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Error"] = copy.deepcopy(ERROR_SCHEMA)
    schemas[STORABLE_JSON_NAME] = copy.deepcopy(STORABLE_JSON)
    schemas["DeadLetterId"] = dead_letter_id(runtime.broker.capabilities.dead_letter_ids)
    components["headers"] = copy.deepcopy(HEADERS)
    if keys:
        components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    describe_push_access(document, runtime.settings, keys)
    filtered = {(r.path, method) for r in routes if r.filters for method in r.methods}
    per_dataset(document, runtime.catalog, filtered)
    return document


def _describe_operation(operation: dict[str, Any], route: DescribedRoute, *, keyed: bool) -> None:
    answers = operation["responses"]
    if "422" not in route.declared:  # FastAPI's own, for errors this app answers 400
        answers.pop("422", None)
    for status, answer in error_answers(route.facts, keyed).items():
        if status not in route.declared:
            answers[status] = answer
    for answer in answers.values():
        answer.setdefault("headers", {}).update(header_refs())
    for parameter in operation.get("parameters", ()):
        _without_null(parameter)
    if keyed and route.facts.scopes:
        scopes = sorted(route.facts.scopes)
        operation["security"] = [{name: scopes} for name in SECURITY_SCHEMES]
    operation["responses"] = dict(sorted(answers.items()))


def _without_null(parameter: dict[str, Any]) -> None:
    """A parameter is absent or text: a query string has no null (FastAPI offers one for an
    optional parameter)."""
    choices = parameter["schema"].get("anyOf")
    if isinstance(choices, list):
        choices = [c for c in choices if c != {"type": "null"}]
        if len(choices) == 1:
            del parameter["schema"]["anyOf"]
            parameter["schema"].update(choices[0])
        else:
            parameter["schema"]["anyOf"] = choices


def dead_letter_id(shape: IdShape) -> dict[str, Any]:
    """The schema of the ids of a broker's dead letters, as the replay checks them."""
    if shape is ANY_ID:  # any text a store can hold
        return {"type": "string", "pattern": "^[^\\u0000]+$"}
    pattern = shape.pattern if shape.largest is None else positive_up_to(shape.largest)
    return {"type": "string", "pattern": f"^(?:{pattern})$", "description": shape.description}


def positive_up_to(largest: int) -> str:
    """A regular expression for the integers 1 to `largest`, written without leading zeros."""
    digits = str(largest)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else None
    choices = [shorter] if shorter else []
    for at, digit in enumerate(digits):
        low = 1 if at == 0 else 0
        if int(digit) > low:
            rest = len(digits) - at - 1
            choices.append(
                f"{digits[:at]}[{low}-{int(digit) - 1}]" + f"[0-9]{{{rest}}}" * (rest > 0)
            )
    choices.append(digits)
    return "|".join(choices)
