"""`slipstream import` beside a running embedded server: files of each format land once, with
the place of every refused event in its quarantine reason; a second run adds nothing; a run
killed mid-way resumes from its checkpoint and ends with exactly the file's events."""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import http.server
import io
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.commands import slipstream
from tests.e2e.harness import ServerProcess
from tests.helpers import flight_event, wait_until

pytestmark = pytest.mark.e2e
FIELDS = ("id", "flight_id", "status", "event_time", "origin", "destination", "delay_minutes")


def overview(client: Any) -> dict[str, Any]:
    overview: dict[str, Any] = client.get("/v1/datasets").json()["datasets"][0]
    return overview


def settled(client: Any, rows: int, quarantined: int) -> None:
    """Until the store holds `rows` and `quarantined`, with nothing left on the broker."""
    wait_until(
        lambda: (
            (o := overview(client))
            and (o["rows"], o["quarantined"], o["backlog"]) == (rows, quarantined, 0)
        ),
        timeout=60,
        what=f"{rows} rows, {quarantined} quarantined, an empty backlog",
    )


def write_files(folder: Path) -> None:
    """300 events in each format, three of them refused, one without an id."""
    folder.mkdir()
    events = [{k: flight_event(i, prefix="imp").get(k) for k in FIELDS} for i in range(1200)]
    lines = [orjson.dumps(e) for e in events[:300]]
    lines[4] = orjson.dumps({**events[4], "status": "teleported"})  # line 5
    lines[9] = b"{not json"  # line 10
    lines[11] = orjson.dumps({k: v for k, v in events[11].items() if k != "id"})
    (folder / "a.ndjson.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    pq.write_table(pa.Table.from_pylist(events[300:600]), folder / "b.parquet")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(events[600:900])
    rows = text.getvalue().splitlines()
    rows[7] = rows[7].rsplit(",", 1)[0] + ",soon"  # row 7: delay_minutes is not a number
    with pa.output_stream(str(folder / "c.csv.zst"), compression="zstd") as out:
        out.write(("\n".join(rows) + "\n").encode())
    (folder / "d.json").write_bytes(orjson.dumps(events[900:1200]))


def test_files_of_each_format_land_once_with_their_refusals_placed(server: ServerProcess) -> None:
    write_files(server.workdir / "files")
    done = slipstream("import", "files", "--dataset", "flights", cwd=server.workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a.ndjson.gz line 5: Invalid enum value 'teleported'" in done.stderr
    with server.client() as client:
        settled(client, 1197, 3)
        reasons = sorted(q["reason"] for q in client.get(QUARANTINE).json()["items"])
        assert reasons[0].startswith("a.ndjson.gz line 10: not valid JSON")
        assert reasons[1].startswith("a.ndjson.gz line 5: Invalid enum value 'teleported'")
        assert reasons[2] == "c.csv.zst row 7: Expected int | null, got str - at $.delay_minutes"

        again = slipstream("import", "files/*", "--dataset", "flights", cwd=server.workdir)
        assert again.returncode == 0, again.stdout + again.stderr
        settled(client, 1197, 3)  # the id-less event and the refused ones were named alike


QUARANTINE = "/v1/datasets/flights/quarantine"


def test_a_run_killed_mid_way_resumes_from_its_checkpoint(server: ServerProcess) -> None:
    events = 200_000
    body = b"\n".join(orjson.dumps(flight_event(i, prefix="big")) for i in range(events))
    (server.workdir / "big.ndjson.gz").write_bytes(gzip.compress(body, compresslevel=1))
    checkpoint = server.workdir / "big.checkpoint"
    command = [sys.executable, "-m", "slipstream", "import", "big.ndjson.gz"]
    options = ["--dataset", "flights", "--checkpoint", str(checkpoint)]
    first = subprocess.Popen(
        [*command, *options],
        cwd=server.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: checkpoint.exists() and 0 < progress(checkpoint) < events,
            timeout=60,
            interval=0.01,
            what="a checkpoint part of the way",
        )
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    stopped_at = progress(checkpoint)
    rest = slipstream("import", "big.ndjson.gz", *options, cwd=server.workdir)
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert f"{stopped_at:,}" in rest.stdout  # skipped, as the checkpoint said
    assert progress(checkpoint) == events
    with server.client() as client:
        settled(client, events, 0)


def progress(checkpoint: Path) -> int:
    try:
        return sum(orjson.loads(checkpoint.read_bytes()).values())
    except (OSError, orjson.JSONDecodeError):
        return 0


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["nowhere.ndjson", "--dataset", "flights"], "nowhere.ndjson: no such file or directory"),
        (["files/*.xml", "--dataset", "flights"], "no file matches"),
        (["notes.txt", "--dataset", "flights"], "cannot tell its format from its name"),
        (["ftp://host/flights.ndjson", "--dataset", "flights"], "local files, s3:// and https://"),
        (["notes.txt", "--dataset", "trains"], "no dataset named 'trains'"),
    ],
)
def test_what_cannot_be_imported_is_named(
    server: ServerProcess, arguments: list[str], words: str
) -> None:
    (server.workdir / "notes.txt").write_text("hello\n")
    refused = slipstream("import", *arguments, cwd=server.workdir)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert words in refused.stderr


def test_a_parquet_set_on_s3_and_a_file_over_https_land_once(
    server: ServerProcess, moto_server: str, tmp_path: Path
) -> None:
    import boto3  # type: ignore[import-untyped]
    import pyarrow.fs as pafs

    bucket = f"history-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    s3 = pafs.S3FileSystem(endpoint_override=moto_server, region="us-east-1")
    events = [{k: flight_event(i, prefix="s3").get(k) for k in FIELDS} for i in range(3000)]
    for part in range(3):
        table = pa.Table.from_pylist(events[part * 1000 : (part + 1) * 1000])
        pq.write_table(table, f"{bucket}/set/part-{part}.parquet", filesystem=s3)
    served = tmp_path / "served"
    served.mkdir()
    (served / "more.ndjson").write_bytes(
        b"\n".join(orjson.dumps(flight_event(i, prefix="web")) for i in range(500))
    )
    with http_server(served) as base, server.client() as client:
        arguments = [f"s3://{bucket}/set/", f"{base}/more.ndjson", "--dataset", "flights"]
        done = slipstream("import", *arguments, cwd=server.workdir)
        assert done.returncode == 0, done.stdout + done.stderr
        settled(client, 3500, 0)
        again = slipstream("import", f"s3://{bucket}/set/*.parquet", "--dataset", "flights",
                           cwd=server.workdir)  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        assert "3,000" in again.stdout
        settled(client, 3500, 0)
        missing = slipstream("import", f"{base}/gone.ndjson", "--dataset", "flights",
                             cwd=server.workdir)  # fmt: skip
        assert missing.returncode == 2
        assert "the server answered 404" in missing.stderr


@contextlib.contextmanager
def http_server(folder: Path) -> Iterator[str]:
    """Python's own file server over `folder`, on a free port, in a thread."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            thread.join(10)


def test_a_million_events_land_once_from_ndjson_gz_then_parquet(server: ServerProcess) -> None:
    """The same million events as NDJSON.gz, then as Parquet, then the NDJSON.gz again: one
    million rows, written once (their ids are the files')."""
    events, part = 1_000_000, 50_000
    ndjson, parquet = server.workdir / "million.ndjson.gz", server.workdir / "million.parquet"
    schema = None
    with gzip.open(ndjson, "wb", compresslevel=1) as text, contextlib.ExitStack() as stack:
        for start in range(0, events, part):
            chunk = [
                {k: flight_event(i, prefix="m").get(k) for k in FIELDS}
                for i in range(start, start + part)
            ]
            text.write(b"\n".join(orjson.dumps(e) for e in chunk) + b"\n")
            table = pa.Table.from_pylist(chunk, schema=schema)
            if schema is None:
                schema = table.schema
                writer = stack.enter_context(pq.ParquetWriter(parquet, schema))
            writer.write_table(table)
    with server.client() as client:
        for source in (ndjson.name, parquet.name, ndjson.name):
            done = slipstream("import", source, "--dataset", "flights", cwd=server.workdir)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "1,000,000" in done.stdout
            settled(client, events, 0)
