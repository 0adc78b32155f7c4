from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from slipstream.datasets import DatasetError, load_catalog, parse_catalog, schema_changes

GOOD = """
datasets:
  - name: gates
    key: id
    event_time: at
    retention: 12h
    fields:
      - {name: id, type: string}
      - {name: at, type: timestamp, required: true}
      - {name: gate, type: string, required: true}
      - {name: open, type: bool}
"""


def test_packaged_flights_dataset() -> None:
    flights = load_catalog(None).get("flights")
    assert flights is not None
    assert flights.field_names == (
        "id",
        "flight_id",
        "status",
        "event_time",
        "origin",
        "destination",
        "delay_minutes",
        "gate",
        "aircraft",
    )
    status = flights.field("status")
    assert status is not None
    assert "diverted" in status.values


def test_a_file_parses_with_retention(tmp_path: Path) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text(GOOD)
    gates = load_catalog(path).get("gates")
    assert gates is not None
    assert gates.retention == timedelta(hours=12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("type: bool", "type: boolean"), "datasets.0.fields.3.type"),
        (("retention: 12h", "retention: soon"), "retention 'soon' must look like 90d"),
        (("event_time: at", "event_time: gate"), "event_time 'gate' must be a declared timestamp"),
        (("name: gate,", "name: extra,"), "reserved"),
        (("name: gates", "name: Gates"), "lower case"),
    ],
)
def test_bad_files_name_the_place(change: tuple[str, str], message: str) -> None:
    with pytest.raises(DatasetError) as info:
        parse_catalog(GOOD.replace(*change), "ds.yaml")
    assert "ds.yaml" in str(info.value)
    assert message in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read the datasets file"):
        load_catalog(tmp_path / "nope.yaml")


def test_schema_changes_allow_only_additions() -> None:
    gates = parse_catalog(GOOD, "x").get("gates")
    assert gates is not None
    existing = {"id": "string", "at": "timestamp", "gate": "string"}
    assert [f.name for f in schema_changes(gates, existing)] == ["open"]  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="'gates': field 'gate' changed type from int to string"):
        schema_changes(gates, {**existing, "gate": "int"})  # type: ignore[dict-item]
    required = parse_catalog(
        GOOD.replace("{name: open, type: bool}", "{name: open, type: bool, required: true}"), "x"
    ).get("gates")
    assert required is not None
    with pytest.raises(DatasetError, match="new field 'open' is required"):
        schema_changes(required, existing)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"datasets: [\n", "not valid YAML: expected the node content"),
        (b"datasets:\n  - name: \xff\n", "not UTF-8 text (byte 20)"),
        (b"datasets:\n\t- name: x\n", "not valid YAML: found character '\\t'"),
    ],
    ids=["unclosed", "not-utf8", "tab"],
)
def test_an_unreadable_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "ds.yaml"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as info:
        load_catalog(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
