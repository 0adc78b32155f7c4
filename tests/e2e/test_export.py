"""GET /v1/datasets/{ds}/export on the embedded server over real HTTP: the whole range in one
Parquet file of several row groups, NDJSON on request, filters as the list takes them."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from slipstream import exports
from slipstream.transfer import download
from tests.e2e.commands import slipstream
from tests.e2e.harness import ServerProcess, stored_ids
from tests.helpers import flight_event, wait_until

pytestmark = pytest.mark.e2e
EXPORT = "/v1/datasets/flights/export"
EVENTS = exports.PAGE_ROWS + 1_500  # more than one page: two row groups


def fill(client: Any, count: int) -> list[dict[str, object]]:
    events = [flight_event(i, prefix="cli") for i in range(count)]
    body = b"\n".join(orjson.dumps(e) for e in events)
    answer = client.post(
        "/v1/datasets/flights/events",
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert answer.status_code == 202, answer.text
    wait_until(
        lambda: client.get("/v1/datasets").json()["datasets"][0]["rows"] == count,
        timeout=60,
        what=f"{count} rows",
    )
    return events


def test_export_streams_every_event_once_as_parquet_or_ndjson(server: ServerProcess) -> None:
    with server.client() as client:
        events = fill(client, EVENTS)
        newest_first = stored_ids(client)

        answer = client.get(EXPORT)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == exports.PARQUET_TYPE
        assert answer.headers["content-disposition"] == 'attachment; filename="flights.parquet"'
        parquet = pq.ParquetFile(io.BytesIO(answer.content))
        assert parquet.metadata.num_row_groups == 2
        assert parquet.read().column("id").to_pylist() == newest_first

        landed = client.get(
            EXPORT, params={"status": "landed"}, headers={"Accept": "application/x-ndjson"}
        )
        assert landed.status_code == 200
        assert landed.headers["content-type"].startswith(exports.NDJSON_TYPE)
        lines = [orjson.loads(line) for line in landed.content.splitlines()]
        wanted = [str(e["id"]) for e in events if e["status"] == "landed"]
        assert sorted(e["id"] for e in lines) == sorted(wanted)
        assert {e["status"] for e in lines} == {"landed"}

        refused = client.get(EXPORT, params={"limit": "10"})
        assert refused.status_code == 400
        assert "limit" in refused.json()["error"]["message"]
        late = client.get(EXPORT, params={"since": "yesterday"})
        assert late.status_code == 400
        assert "since" in late.json()["error"]["message"]


def test_export_command_writes_a_whole_file_and_names_what_is_wrong(
    server: ServerProcess, tmp_path: Path
) -> None:
    with server.client() as client:
        events = fill(client, 2000)
    url = ("--url", server.url)
    done = slipstream("export", "flights", "out/flights.parquet", *url, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert pq.read_table(tmp_path / "out" / "flights.parquet").num_rows == 2000
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["flights.parquet"]  # no partials

    landed = slipstream(
        "export", "flights", "-", "--format", "ndjson", "--where", "status=landed", *url,
        cwd=tmp_path,
    )  # fmt: skip
    assert landed.returncode == 0, landed.stderr
    lines = [orjson.loads(line) for line in landed.stdout.splitlines()]
    assert sorted(e["id"] for e in lines) == sorted(
        str(e["id"]) for e in events if e["status"] == "landed"
    )

    for args, words in (
        (("--where", "status"), "FIELD=VALUE"),
        (("--where", "gate=A1", "--since", "soon"), "since"),
        (("--format", "csv"), "parquet, ndjson"),
    ):
        refused = slipstream("export", "flights", "x.parquet", *args, *url, cwd=tmp_path)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert words in refused.stdout + refused.stderr
    unknown = slipstream("export", "nosuch", "x.parquet", *url, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "answered 404: no dataset named 'nosuch'" in unknown.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_export_command_uploads_to_s3(
    server: ServerProcess, moto_server: str, tmp_path: Path
) -> None:
    import boto3  # type: ignore[import-untyped]

    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket=bucket)
    with server.client() as client:
        fill(client, 1500)
    target = f"s3://{bucket}/flights/all.parquet"
    done = slipstream("export", "flights", target, "--url", server.url, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    body = s3.get_object(Bucket=bucket, Key="flights/all.parquet")["Body"].read()
    assert pq.read_table(io.BytesIO(body)).num_rows == 1500
    missing = slipstream(
        "export", "flights", "s3://no-such-bucket-here/x.parquet", "--url", server.url,
        cwd=tmp_path,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "NoSuchBucket" in missing.stderr


@pytest.mark.parametrize("size", [100, 9 * 2**20], ids=["one part", "multipart"])
def test_an_export_cut_short_leaves_no_object_and_no_file(
    moto_server: str, tmp_path: Path, size: int
) -> None:
    """What arrives without the Parquet footer (the server failed mid-way) is not kept: the S3
    upload is aborted, the file never renamed into place."""
    import boto3

    bucket = f"cut-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket=bucket)

    def cut_short() -> Iterator[bytes]:
        yield b"PAR1" + b"\0" * size  # a head, pages, and no footer

    outcome = download.Outcome()
    body = download._Reader(download._chunks_of(cut_short(), outcome))
    with pytest.raises(download.ExportFailed, match="without the Parquet footer"):
        download._to_s3(f"s3://{bucket}/x.parquet", body, "parquet", outcome)
    outcome = download.Outcome()
    chunks = download._chunks_of(cut_short(), outcome)
    with pytest.raises(download.ExportFailed, match="without the Parquet footer"):
        download._to_file(tmp_path / "x.parquet", chunks, "parquet", outcome)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert list(tmp_path.iterdir()) == []


def test_a_client_leaving_mid_export_leaves_the_server_serving(server: ServerProcess) -> None:
    with server.client() as client:
        fill(client, 3 * exports.PAGE_ROWS)
        for _ in range(3):
            with client.stream("GET", EXPORT) as answer:
                assert answer.status_code == 200
                next(answer.iter_bytes())  # a page, then the client hangs up
        whole = client.get(EXPORT)
        assert pq.read_table(io.BytesIO(whole.content)).num_rows == 3 * exports.PAGE_ROWS
        assert client.get("/readyz").status_code == 200
    assert "Traceback" not in server.log()
