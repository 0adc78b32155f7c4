"""The SLO spec (observability/slo/slos.yaml): its model, and loading it with one-line errors.

Terraform reads the same file with yamldecode, so the model forbids unknown keys: a typo here
would otherwise be silently ignored by every consumer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from slipstream.errors import ConfigError

LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]
MetricName = Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
Duration = Annotated[str, Field(pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$")]

# The fast-burn page fires at 14.4 times the budget rate; an objective whose budget is so large
# that 14.4 times it reaches 100% errors could never page.
FASTEST_BURN = Decimal("14.4")


class SpecError(ConfigError):
    """The SLO spec cannot be used; the message names the SLO or alert and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sli(_Strict):
    type: Literal["ratio", "latency"]
    metric: MetricName
    selector: dict[LabelName, str] = {}
    bad: dict[LabelName, str] | None = None
    threshold: float | None = None

    @field_validator("selector", "bad")
    @classmethod
    def _regexes_compile(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for label, regex in (value or {}).items():
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(
                    f"{label}: {regex!r} is not a valid regular expression ({exc})"
                ) from None
        return value

    @model_validator(mode="after")
    def _fields_match_type(self, info: ValidationInfo) -> Sli:
        if self.type == "ratio":
            if not self.bad:
                raise ValueError("a ratio SLI needs `bad`: the labels (regexes) of bad events")
            if self.threshold is not None:
                raise ValueError("`threshold` belongs to latency SLIs; remove it from a ratio SLI")
            return self
        if self.bad is not None:
            raise ValueError("`bad` belongs to ratio SLIs; a latency SLI counts by `threshold`")
        if self.metric.endswith(("_bucket", "_count", "_sum")):
            raise ValueError(
                f"metric: give the histogram's name without the suffix, not {self.metric}"
            )
        if self.threshold is None or self.threshold <= 0:
            raise ValueError(
                "a latency SLI needs `threshold`: seconds, a bucket bound of the histogram"
            )
        buckets = _buckets_from(info).get(self.metric)
        if buckets is not None and self.threshold not in buckets:
            bounds = ", ".join(f"{b:g}" for b in buckets)
            raise ValueError(
                f"threshold {self.threshold:g} is not a bucket bound of {self.metric}; use one of {bounds}"
            )
        return self


class Slo(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")]
    description: str
    objective: Annotated[float, Field(gt=0, lt=100)]
    sli: Sli
    group_by: list[LabelName] = []
    why: str

    @model_validator(mode="after")
    def _objective_can_page(self) -> Slo:
        if FASTEST_BURN * self.budget >= 1:
            floor = 100 - 100 / FASTEST_BURN
            raise ValueError(
                f"objective {self.objective:g} leaves a budget the fast-burn alert can never reach; "
                f"use an objective above {floor:.2f}"
            )
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError(f"group_by lists a label twice: {self.group_by}")
        return self

    @property
    def alert_names(self) -> tuple[str, str]:
        """The fast-burn (page) and slow-burn (ticket) alerts: api-availability →
        SlipstreamApiAvailabilityFastBurn, SlipstreamApiAvailabilitySlowBurn."""
        camel = "".join(part.capitalize() for part in self.name.split("-"))
        return f"Slipstream{camel}FastBurn", f"Slipstream{camel}SlowBurn"

    @property
    def objective_ratio(self) -> Decimal:
        # Decimal from the written form keeps 99.9 as 0.999 rather than 0.9990000000000001.
        return Decimal(repr(self.objective)) / 100

    @property
    def budget(self) -> Decimal:
        return 1 - self.objective_ratio


class Alert(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]*$")]
    severity: Literal["page", "ticket"]
    for_: Annotated[Duration, Field(alias="for")]
    summary: str
    description: str
    expr: str


class Spec(_Strict):
    version: Literal[1]
    service: str
    period: Literal["30d"]
    runbook_base_url: Annotated[str, Field(pattern=r"^https?://\S+[^/]$")]
    slos: Annotated[list[Slo], Field(min_length=1)]
    alerts: list[Alert] = []

    @model_validator(mode="after")
    def _names_unique(self) -> Spec:
        for kind, names in (
            ("SLO", [s.name for s in self.slos]),
            (
                "alert",
                [a.name for a in self.alerts] + [n for s in self.slos for n in s.alert_names],
            ),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"two {kind}s are named {name}; names must be unique")
                seen.add(name)
        return self


def _buckets_from(info: ValidationInfo) -> Mapping[str, Sequence[float]]:
    context = info.context if isinstance(info.context, dict) else {}
    buckets: Mapping[str, Sequence[float]] = context.get("buckets", {})
    return buckets


def exported_histograms() -> dict[str, tuple[float, ...]]:
    """Bucket bounds of every histogram Slipstream exports, by name (without +Inf)."""
    from prometheus_client import Histogram

    from slipstream.metrics import Metrics

    found: dict[str, tuple[float, ...]] = {}
    # The collectors are read rather than a copy of the bucket tuples, so a new histogram or
    # a changed bucket is checked without touching this module.
    for collector in list(Metrics().registry._collector_to_names):
        if isinstance(collector, Histogram):
            bounds = tuple(b for b in collector._upper_bounds if b != float("inf"))
            found[collector._name] = bounds
    return found


def _where(loc: Sequence[int | str], data: Any) -> str:
    """`SLO freshness, sli.threshold` from a pydantic location like ('slos', 4, 'sli', 'threshold')."""
    parts = list(loc)
    prefix = ""
    if len(parts) >= 2 and parts[0] in ("slos", "alerts") and isinstance(parts[1], int):
        kind = "SLO" if parts[0] == "slos" else "alert"
        items = data.get(parts[0]) if isinstance(data, dict) else None
        item = items[parts[1]] if isinstance(items, list) and parts[1] < len(items) else None
        name = item.get("name") if isinstance(item, dict) else None
        prefix = f"{kind} {name}" if name else f"{parts[0]}[{parts[1]}]"
        parts = parts[2:]
    field = ".".join("for" if p == "for_" else str(p) for p in parts)
    return ", ".join(p for p in (prefix, field) if p) or "top level"


def parse_spec(
    data: Any, source: str, buckets: Mapping[str, Sequence[float]] | None = None
) -> Spec:
    try:
        return Spec.model_validate(data, context={"buckets": buckets or {}})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "missing; add it (the format is in observability/slo/README.md)"
            elif error["type"] == "extra_forbidden":
                message = "unknown field; remove it or fix its spelling"
            lines.append(f"{source}: {_where(error['loc'], data)}: {message}")
        raise SpecError("\n".join(lines)) from None


def load_spec(path: Path, buckets: Mapping[str, Sequence[float]] | None = None) -> Spec:
    """Read and validate the spec; thresholds are checked against `buckets` (default: ours)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            f"{path}: cannot read the SLO spec ({exc.strerror}); "
            "run from the repository root or pass --spec PATH"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}: expected a mapping with version, service, slos…; got {type(data).__name__}"
        )
    return parse_spec(data, str(path), exported_histograms() if buckets is None else buckets)
