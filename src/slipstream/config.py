"""All configuration in one typed object, read from SLIPSTREAM_* variables.

Sources, strongest first: the environment, a `.env` file, a `slipstream.toml` file (both in the
working directory). A bad value fails at start with one line naming the variable.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from slipstream.errors import ConfigError

Scope = Literal["read", "ingest", "admin"]
SCOPES: frozenset[str] = frozenset({"read", "ingest", "admin"})
ENV_PREFIX = "SLIPSTREAM_"
ENV_FILE, TOML_FILE = ".env", "slipstream.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        extra="ignore",
        toml_file=TOML_FILE,
        validate_default=True,
    )

    broker_url: str = Field(
        "local:///./data/queue.db", description="Where events queue: local, nats, pubsub, sqs."
    )
    store_url: str = Field(
        "duckdb:///./data/warehouse.duckdb",
        description="Where events land: duckdb, postgresql, bigquery.",
    )
    datasets: Path | None = Field(
        None, description="Datasets YAML file; the packaged flights dataset when unset."
    )
    api_keys: SecretStr = Field(
        SecretStr(""),
        description="KEY:SCOPE[+SCOPE],… with scopes read, ingest, admin. Empty: open access.",
    )
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port the API listens on.")
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest request body on any route, as sent and again after gzip "
        "decompression (413).",
    )
    body_timeout: float = Field(
        30,
        gt=0,
        le=3600,
        description="Longest pause, in seconds, while a request body arrives; the request is "
        "then abandoned (408) and its connection closed.",
    )
    body_memory_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Most bytes of request bodies held at once across all requests (at least "
        "SLIPSTREAM_MAX_BODY_BYTES); a request whose body would pass it is answered 503 with "
        "Retry-After.",
    )
    max_head_bytes: int = Field(
        32 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest request head (request line and headers); a larger one is refused "
        "(431) and its connection closed.",
    )
    head_timeout: float = Field(
        10,
        gt=0,
        le=3600,
        description="Seconds a client has to send a whole request head, from connecting or from "
        "the previous answer on a kept-alive connection; the connection is closed after.",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="Connections served at once; past it each request is answered 503 with "
        "Retry-After and its connection closed.",
    )
    batch_size: int = Field(
        10_000,
        ge=1,
        le=100_000,
        description="Most events a worker writes at once (a batch forms only from what is "
        "waiting: a larger bound costs no latency when the backlog is small).",
    )
    batches_in_flight: int = Field(
        2,
        ge=1,
        le=16,
        description="Batches of one dataset a worker handles at once: while the store writes "
        "one, the next is pulled and decoded.",
    )
    batch_wait: float = Field(
        0.1, ge=0, le=60, description="Seconds a worker waits to fill a batch before writing it."
    )
    lease_seconds: float = Field(
        30, gt=0, le=43_200, description="Lease (visibility timeout) of a pulled message."
    )
    max_deliveries: int = Field(
        5, ge=1, le=1000, description="Deliveries before a message moves to the dead letters."
    )
    backlog_limit: int = Field(
        1_000_000, ge=1, description="Unacked events per dataset above which ingest answers 503."
    )
    admission_seconds: float = Field(
        10,
        ge=0,
        le=86_400,
        description="Ingest answers 503 once a dataset's backlog is more than this many seconds "
        "of draining at the measured rate (the freshness objective); 0 turns it off.",
    )
    create_resources: bool = Field(
        True, description="Create missing topics, queues and tables at start."
    )
    read_cache_size: int = Field(
        10_000,
        ge=0,
        description="Events kept in memory for GET by id; 0 turns the cache off. Each costs "
        "about 4 KiB of resident memory once the heap is fragmented by traffic.",
    )
    retention_interval: float = Field(3600, gt=0, description="Seconds between retention sweeps.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="Log lines as JSON (one object a line) or text; auto: text on a terminal, "
        "JSON otherwise.",
    )
    otel_enabled: bool = Field(
        False,
        description="Send OpenTelemetry traces over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT); "
        "needs the otel extra.",
    )
    pubsub_push_audience: str | None = Field(
        None,
        description="Audience of the OIDC token Pub/Sub push must send to /push/pubsub; "
        "unset: that endpoint is open.",
    )
    pubsub_push_service_account: str | None = Field(
        None,
        description="Service account (the token's email) Pub/Sub push must authenticate as; "
        "required with SLIPSTREAM_PUBSUB_PUSH_AUDIENCE.",
    )
    pubsub_push_open: bool = Field(
        False,
        description="Accept /push/pubsub without an OIDC token while API keys are set; "
        "without this (and without an audience) that endpoint refuses pushes when keys are set.",
    )
    sns_topic_arns: str = Field(
        "",
        description="SNS topic ARNs, comma-separated, that /push/sns accepts; empty: none.",
    )
    cursor_secret: SecretStr | None = Field(
        None,
        description="Key that signs list cursors (16 characters or more); unset: derived from "
        "the store URL and the API keys, which every replica of a deployment shares.",
    )
    worker_in_api: bool = Field(
        True,
        description="Run the worker in the process of the ASGI app factory "
        "(uvicorn --factory slipstream.api.asgi:app); false: the API alone.",
    )
    client_key: SecretStr | None = Field(
        None,
        description="Key the client commands (simulate, probe) send; --api-key overrides it.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="Former name of SLIPSTREAM_CLIENT_KEY, still read by simulate with a "
        "warning; rename it.",
    )
    probe_api_key: SecretStr | None = Field(
        None,
        description="Key the probe sends, before SLIPSTREAM_CLIENT_KEY; --api-key overrides it.",
    )
    bench_report: Path | None = Field(
        None, description="File that `slipstream bench` also writes its table to, as Markdown."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
        )

    @field_validator("broker_url", "store_url")
    @classmethod
    def _looks_like_url(cls, url: str) -> str:
        if "://" not in url:
            raise ValueError("must be a URL such as local:///./data/queue.db")
        try:
            urlsplit(url)
        except ValueError as exc:  # an unclosed [ of an IPv6 address, say
            raise ValueError(f"not a valid URL: {exc}") from None
        return url

    @field_validator("body_memory_bytes")
    @classmethod
    def _room_for_one_body(cls, memory: int, info: ValidationInfo) -> int:
        largest = info.data.get("max_body_bytes")
        if largest is not None and memory < largest:
            raise ValueError(
                f"must be at least SLIPSTREAM_MAX_BODY_BYTES ({largest}), or no body of the "
                "largest size could ever be taken"
            )
        return memory

    @field_validator("api_keys")
    @classmethod
    def _keys_parse(cls, keys: SecretStr) -> SecretStr:
        parse_api_keys(keys.get_secret_value())
        return keys

    @field_validator("pubsub_push_audience")
    @classmethod
    def _empty_is_unset(cls, audience: str | None) -> str | None:
        return audience.strip() or None if audience is not None else None

    @field_validator("pubsub_push_service_account")
    @classmethod
    def _push_auth_is_whole(cls, account: str | None, info: ValidationInfo) -> str | None:
        # Audience alone is no protection: any Google account can mint a token for any audience.
        account = account.strip() or None if account is not None else None
        audience = info.data.get("pubsub_push_audience")
        if audience and not account:
            raise ValueError(
                "must be set with SLIPSTREAM_PUBSUB_PUSH_AUDIENCE: the service account "
                "the push subscription authenticates as"
            )
        if account and not audience:
            raise ValueError(
                "is set but SLIPSTREAM_PUBSUB_PUSH_AUDIENCE is not; set both to require "
                "OIDC tokens on /push/pubsub, or neither to leave it open"
            )
        return account

    @field_validator("pubsub_push_open")
    @classmethod
    def _open_or_verified(cls, push_open: bool, info: ValidationInfo) -> bool:
        if push_open and info.data.get("pubsub_push_audience"):
            raise ValueError(
                "is true but SLIPSTREAM_PUBSUB_PUSH_AUDIENCE is set, which requires OIDC tokens "
                "on /push/pubsub; unset one of the two"
            )
        return push_open

    @field_validator("cursor_secret")
    @classmethod
    def _secret_is_long(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is None or not secret.get_secret_value():
            return None
        if len(secret.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters long (a random string)")
        return secret

    @field_validator("sns_topic_arns")
    @classmethod
    def _arns_parse(cls, arns: str) -> str:
        parse_topic_arns(arns)
        return arns

    def key_scopes(self) -> dict[str, frozenset[str]]:
        return parse_api_keys(self.api_keys.get_secret_value())

    def cursor_key(self) -> bytes:
        """The key list cursors are signed with: from SLIPSTREAM_CURSOR_SECRET, else from what
        every replica of one deployment shares, so cursors survive restarts and cross replicas
        with nothing to configure (and stop working when the keys or the store change)."""
        if self.cursor_secret is not None:
            material = ["secret", self.cursor_secret.get_secret_value()]
        else:
            keys = sorted(f"{k}:{'+'.join(sorted(s))}" for k, s in self.key_scopes().items())
            material = ["derived", self.store_url, *keys]
        return hashlib.sha256("\0".join(["slipstream cursor key 1", *material]).encode()).digest()

    def topic_arns(self) -> frozenset[str]:
        """The SNS topics /push/sns accepts."""
        return parse_topic_arns(self.sns_topic_arns)


def revealed(secret: SecretStr | None) -> str | None:
    """A secret setting's value to use; None when unset or empty."""
    return secret.get_secret_value() or None if secret is not None else None


def parse_api_keys(text: str) -> dict[str, frozenset[str]]:
    """`k1:read,k2:ingest+read` → {"k1": {"read"}, "k2": {"ingest", "read"}}."""
    keys: dict[str, frozenset[str]] = {}
    for number, item in enumerate(filter(None, (part.strip() for part in text.split(","))), 1):
        key, sep, scopes_text = item.rpartition(":")
        scopes = frozenset(s.strip() for s in scopes_text.split("+") if s.strip())
        if not sep or not key:
            raise ValueError(
                f"entry {number} must be KEY:SCOPE[+SCOPE] (scopes: read, ingest, admin)"
            )
        unknown = scopes - SCOPES
        if unknown or not scopes:
            raise ValueError(
                f"entry {number} has unknown scope {', '.join(sorted(unknown)) or '(none)'}; "
                "use read, ingest, admin joined by +"
            )
        if len(key) < 8:
            raise ValueError(f"entry {number}: a key must be at least 8 characters long")
        keys[key] = scopes
    return keys


_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")


def parse_topic_arns(text: str) -> frozenset[str]:
    """`arn:aws:sns:eu-west-1:123456789012:flights, …` → the set of ARNs, each checked."""
    arns = [part.strip() for part in text.split(",") if part.strip()]
    for number, arn in enumerate(arns, 1):
        if not _TOPIC_ARN.fullmatch(arn):
            raise ValueError(
                f"entry {number} ({arn!r}) is not an SNS topic ARN such as "
                "arn:aws:sns:eu-west-1:123456789012:flights"
            )
    return frozenset(arns)


def path_from_url(url: str) -> Path:
    """`local:///./data/q.db` → ./data/q.db (relative to the working directory);
    `local:////var/lib/q.db` → /var/lib/q.db."""
    parts = urlsplit(url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if parts.netloc or not path:
        from slipstream.registry import shown_url  # registry imports this module

        raise ConfigError(
            f"{shown_url(url)!r}: expected SCHEME:///relative/path or SCHEME:////absolute/path"
            " (three slashes)"
        )
    return Path(path).expanduser().resolve()


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into one line that names the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{TOML_FILE}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise _not_text() from None
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ENV_PREFIX + str(first["loc"][0]).upper() if first["loc"] else "settings"
        value = first.get("input")
        secret = name.endswith(("API_KEYS", "_KEY", "SECRET"))  # never echo a secret into a log
        if name.endswith("_URL") and isinstance(value, str):
            from slipstream.registry import shown_url  # registry imports this module

            value = shown_url(value)  # a password in the URL stays out of the log
        shown = "" if secret else f"={value!r}"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{name}{shown}: {message}") from None


def _not_text() -> ConfigError:
    """Which settings file is not UTF-8 text (the reader's error does not say)."""
    for name in (ENV_FILE, TOML_FILE):
        try:
            Path(name).read_bytes().decode()
        except UnicodeDecodeError as exc:
            return ConfigError(f"{name}: not UTF-8 text (byte {exc.start}); save it as UTF-8")
        except OSError:
            continue
    return ConfigError(f"{ENV_FILE} or {TOML_FILE}: not UTF-8 text; save it as UTF-8")
