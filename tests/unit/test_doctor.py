"""Where `slipstream check` looks for a running server."""

from __future__ import annotations

import os

import pytest

from slipstream.doctor import _process, server_url
from tests import helpers


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9000"),
        ("0.0.0.0", "http://127.0.0.1:9000"),  # every interface: this machine's answers
        ("::", "http://[::1]:9000"),
        ("::1", "http://[::1]:9000"),
        ("api.internal", "http://api.internal:9000"),
    ],
)
def test_the_server_is_asked_where_a_client_reaches_it(host: str, url: str) -> None:
    assert server_url(helpers.settings(host=host, port=9000)) == url


def test_a_lock_holder_is_named_with_its_command_line() -> None:
    assert _process(os.getpid()).startswith(f"process {os.getpid()} (")
    assert _process(2**22 + 1) == f"process {2**22 + 1}"  # above Linux's pid_max: none such
