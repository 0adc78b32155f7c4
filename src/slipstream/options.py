"""Backend URL options: each backend declares its `?name=value` options as one model.

`BackendOptions.from_url` reads a URL's query into the backend's model, with one policy for
all: an option the model does not declare is refused, naming the URL variable, the option and
the valid ones; a bad value names the option and what is wrong with it. A backend that hands
settings on to its driver (DuckDB settings, libpq parameters) says so with a `Passthrough`, and
only names that driver knows get through, in `model_extra`. The URL in every message is shown
with its password masked (`registry.shown_url`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from slipstream.errors import ConfigError
from slipstream.registry import shown_url


@dataclass(frozen=True, slots=True)
class Passthrough:
    """Options a backend passes to its driver as they are: what they are, and their names."""

    what: str  # "libpq connection parameter", for the message that refuses another name
    names: Callable[[], frozenset[str]]  # every name the driver knows
    examples: str = ""  # a few of them, for the same message


class BackendOptions(BaseModel):
    """The options of one backend's URL; subclasses declare them as fields with defaults.

    A subclass with a `passthrough` also sets `model_config = ConfigDict(extra="allow")`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    passthrough: ClassVar[Passthrough | None] = None

    @classmethod
    def from_url(cls, url: str, variable: str) -> Self:
        """The options in `url`'s query; ConfigError naming `variable` when one is not valid."""
        where = f"{variable}={shown_url(url)!r}"
        try:
            query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        except ValueError as exc:
            raise ConfigError(f"{where}: not a valid URL: {exc}") from None
        passing = cls.passthrough.names() if cls.passthrough is not None else frozenset()
        declared = cls.option_names()
        unknown = [name for name in query if name not in declared and name not in passing]
        if unknown:
            named = ", ".join(map(repr, unknown))
            plural = "s" if len(unknown) > 1 else ""
            raise ConfigError(f"{where}: unknown option{plural} {named}; {cls.valid_options()}")
        try:
            return cls.model_validate(query)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_problem(exc.errors()[0])}") from None

    @classmethod
    def option_names(cls) -> list[str]:
        """The options this model declares, as the URL spells them."""
        return [field.alias or name for name, field in cls.model_fields.items()]

    @classmethod
    def valid_options(cls) -> str:
        """`the options are a, b` (and the driver's, where it takes them), for messages."""
        names = ", ".join(cls.option_names())
        said = f"the options are {names}" if names else "this URL takes no options"
        if cls.passthrough is None:
            return said
        examples = f" ({cls.passthrough.examples}, …)" if cls.passthrough.examples else ""
        return f"{said}, and any {cls.passthrough.what}{examples}"

    def driver_options(self) -> dict[str, Any]:
        """The passthrough options the URL gave, by name."""
        return dict(self.model_extra or {})


_WORDS = {
    "bool_parsing": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
}


def _problem(error: ErrorDetails) -> str:
    """`option replicas='three' must be a whole number`, from pydantic's first error."""
    name = ".".join(str(part) for part in error["loc"]) or "?"
    message = _WORDS.get(error["type"]) or error["msg"]
    message = message.removeprefix("Value error, ").removeprefix("Input ")
    return f"option {name}={error.get('input')!r} {message}"
