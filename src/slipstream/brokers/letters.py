"""What every broker's dead letters share: a bounded reason, and the head of data too big to keep.

A dead letter is the message plus its reason; near a broker's size limit the two together may not
fit where the message alone did. A letter is never refused for that: it keeps the longest head of
the data that fits, and a `Truncation` (size and sha256 of the whole, where it was) marks it.
"""

from __future__ import annotations

import hashlib
import json

from slipstream.brokers import Truncation

MAX_REASON = 1024  # characters of a reason kept in a dead letter
NO_REASON = "(no reason given)"


def short_reason(reason: str) -> str:
    """The reason as a letter keeps it: at most MAX_REASON characters, never empty."""
    if len(reason) <= MAX_REASON:
        return reason or NO_REASON
    return reason[: MAX_REASON - 1] + "…"


def truncation(data: bytes, source: str) -> Truncation:
    return Truncation(len(data), hashlib.sha256(data).hexdigest(), source)


def text_head(data: bytes, size: int) -> bytes:
    """At most `size` bytes of the head of `data`, cut before a UTF-8 continuation byte, so
    that the head of text is still text."""
    size = max(0, min(size, len(data)))
    if size < len(data):
        while size > 0 and data[size] & 0xC0 == 0x80:
            size -= 1
    return data[:size]


def truncation_json(cut: Truncation) -> str:
    """A Truncation as one line of ASCII JSON (an attribute or header value)."""
    return json.dumps({"size": cut.size, "sha256": cut.sha256, "source": cut.source})


def truncation_of(text: str | None) -> Truncation | None:
    """The Truncation a letter's attribute holds; None when absent (or not one of ours)."""
    try:
        cut = json.loads(text) if text else {}
        return Truncation(int(cut["size"]), str(cut["sha256"]), str(cut["source"]))
    except (ValueError, TypeError, KeyError):
        return None
