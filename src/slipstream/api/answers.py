"""The answers every route may give besides its own, worked out from what the route is.

One place says which error answers an operation documents, from facts the route declares in
code rather than from a list kept by hand (api/route_facts.py):

- every route: 400 for a query parameter it does not take (api/declared_params.py), 401 for a
  request carrying two different API keys (api/auth.py);
- a route that declares scopes, when keys are configured: 401 without a known key, 403 for a key
  without the scope;
- a path parameter that names something to look up: 404;
- a request body: 400 (does not parse, broken gzip), 408, 413, 415 (api/body.py);
- a store or broker behind it: 503 with Retry-After.

Each error answer is the one `Error` schema api/errors.py writes, with the headers it carries.
Answers that belong to one route (ingest's 422, /readyz's 503) are declared on the route and
win over these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slipstream.api.errors import CODES, code_for

REF = "#/components/schemas/"
HEADER_REF = "#/components/headers/"

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "additionalProperties": False,
            "properties": {
                "code": {
                    "type": "string",
                    "enum": sorted({*CODES.values(), code_for(0)}),
                    "description": "Stable, for programs: one per status.",
                },
                "message": {
                    "type": "string",
                    "description": "For people: what is wrong and what to change.",
                },
                "details": {"description": "More, for programs: null, or as the answer says."},
            },
        }
    },
}

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (the client's own when short and plain), also in the "
        "server's log lines for it.",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": "How to authenticate: `Bearer`.",
        "required": True,
        "schema": {"type": "string"},
    },
    "X-Next-Cursor": {
        "description": "`cursor` of the next page, when there is one (NDJSON and CSV pages).",
        "schema": {"type": "string"},
    },
    "Content-Disposition": {
        "description": 'An export\'s file name: `attachment; filename="<dataset>.parquet"` '
        "(or `.ndjson`).",
        "required": True,
        "schema": {"type": "string"},
    },
}


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """What a route is, as far as its possible answers go."""

    scopes: frozenset[str]  # scopes its key needs
    lookups: tuple[str, ...]  # path parameters naming something looked up
    body: bool  # it reads a request body
    backends: tuple[str, ...]  # "store", "broker": what it cannot answer without


def header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": HEADER_REF + name} for name in ("X-Request-ID", *names)}


def error_answer(description: str, *headers: str) -> dict[str, Any]:
    """A documented error answer: the Error body, the request id, and `headers`."""
    return {
        "description": description,
        "headers": header_refs(*headers),
        "content": {"application/json": {"schema": {"$ref": REF + "Error"}}},
    }


def error_answers(facts: RouteFacts, keyed: bool) -> dict[str, dict[str, Any]]:
    """The error answers a route with these facts can give; `keyed`: API keys are configured."""
    answers = {
        "400": error_answer(_bad_request(facts)),
        "401": error_answer(
            "No API key, an unknown one, or two different ones."
            if keyed and facts.scopes
            else "The request carries two different API keys.",
            "WWW-Authenticate",
        ),
    }
    if keyed and facts.scopes:
        needed = ", ".join(sorted(facts.scopes))
        answers["403"] = error_answer(f"The API key lacks the scope this route needs: {needed}.")
    if facts.lookups:
        answers["404"] = error_answer(f"No such {' or '.join(facts.lookups)} (yet).")
    if facts.body:
        answers["408"] = error_answer(
            "The body stopped arriving for SLIPSTREAM_BODY_TIMEOUT seconds; the connection is "
            "closed."
        )
        answers["413"] = error_answer(
            "The body is over SLIPSTREAM_MAX_BODY_BYTES, as sent or after decompression "
            "(details: `limit_bytes`), or an event is over the broker's message size."
        )
        answers["415"] = error_answer("A Content-Encoding other than gzip.")
    if facts.backends:
        answers["503"] = error_answer(
            f"The {' or '.join(facts.backends)} is unavailable, or the dataset's backlog is over "
            "its bound; nothing was changed. Retry after the pause Retry-After gives.",
            "Retry-After",
        )
    return answers


def _bad_request(facts: RouteFacts) -> str:
    parts = ["a query parameter the route does not take, or one given twice"]
    parts.append("a parameter out of range or malformed (the message names it)")
    if facts.body:
        parts.append("a body that does not parse, or broken gzip data")
    return "Refused: " + "; ".join(parts) + "."
