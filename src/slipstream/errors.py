"""Errors every backend raises, sorted by what the caller should do about them."""


class SlipstreamError(Exception):
    """Base of Slipstream's own errors."""


class ConfigError(SlipstreamError):
    """A setting, URL or file that cannot be used; the message names it and what is wrong."""


class MissingExtra(ConfigError):
    """A backend's driver is not installed."""

    def __init__(self, scheme: str, extra: str) -> None:
        super().__init__(
            f"the {scheme}:// backend needs its driver: pip install 'slipstream[{extra}]'"
        )


class MessageTooLarge(SlipstreamError, ValueError):
    """A message over the broker's size limit: the producer must send smaller events."""


class BackendUnavailable(SlipstreamError):
    """A broker or store cannot be reached now; retry later (HTTP 503, no ack)."""


class TransientStoreError(BackendUnavailable):
    """A write that may succeed if tried again: nack the batch and let it be redelivered."""


class TerminalStoreError(SlipstreamError):
    """A write that can never succeed for this data: dead-letter it, do not retry."""


def reason_of(exc: BaseException) -> str:
    """A failure as words a person can act on, never empty: some exceptions carry no message
    (a timeout's is empty), and an empty reason in a 503 or in /readyz explains nothing."""
    if isinstance(exc, TimeoutError) and not str(exc).strip():
        return "no answer in time (timed out)"
    return str(exc).strip() or type(exc).__name__
