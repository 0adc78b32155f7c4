"""Slipstream: events in through a broker or HTTP, into an analytics store, out through an API."""

__version__ = "0.1.0"
