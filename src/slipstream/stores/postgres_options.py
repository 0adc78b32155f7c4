"""The `postgresql://` URL: the server, Slipstream's own options, and libpq's parameters."""

from __future__ import annotations

import functools
import re
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import ConfigDict, Field, field_validator

from slipstream.errors import ConfigError
from slipstream.options import BackendOptions, Passthrough
from slipstream.registry import shown_url
from slipstream.stores import VARIABLE

SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@functools.cache
def libpq_parameters() -> frozenset[str]:
    """Every connection parameter this libpq knows (sslmode, application_name, …)."""
    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


class PostgresOptions(BackendOptions):
    """`postgresql://user:pass@host:5432/db?schema=NAME&…` (docs/backends/postgresql.md)."""

    model_config = ConfigDict(extra="allow")
    passthrough = Passthrough(
        "libpq connection parameter", libpq_parameters, "sslmode, sslrootcert, application_name"
    )
    schema_: str = Field("public", alias="schema")  # holds the tables; made when missing
    pool_min: int = Field(2, ge=0)  # connections each process keeps open
    pool_max: int = Field(10, ge=1)  # … and may open (at least pool_min)
    pool_timeout: float = Field(10, gt=0)  # seconds a call waits for a connection

    @field_validator("schema_")
    @classmethod
    def _named(cls, schema: str) -> str:
        if not SCHEMA.match(schema):
            raise ValueError("must be lower case letters, digits and _, not starting with a digit")
        return schema


def parse_url(url: str) -> tuple[str, PostgresOptions]:
    """`postgresql://…` (or `postgres://…`) → (libpq conninfo, Slipstream's options).
    `connect_timeout` defaults to 5 s and `application_name` to `slipstream`."""
    options = PostgresOptions.from_url(url, VARIABLE)
    parts = urlsplit(url)
    libpq = urlencode(options.driver_options())
    bare = urlunsplit(("postgresql", parts.netloc, parts.path, libpq, ""))
    try:
        params = conninfo_to_dict(bare)
        params.setdefault("connect_timeout", 5)
        params.setdefault("application_name", "slipstream")
        return make_conninfo("", **params), options
    except (psycopg.ProgrammingError, ValueError) as exc:
        raise ConfigError(
            f"{VARIABLE}={shown_url(url)!r}: not a usable PostgreSQL URL: {exc}"
        ) from None
