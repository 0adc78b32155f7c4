"""One set of operations per dataset: each `{ds}` path written out for every dataset the server
declares, with that dataset's own shapes (api/dataset_schemas.py) where routes name stand-ins.

A component that refers to a stand-in, at any depth (a page of events, say), is the dataset's
too: it is written out once per dataset, as `Name.dataset`, and the generic one dropped.
"""

from __future__ import annotations

import copy
from typing import Any

from slipstream.api.answers import REF
from slipstream.api.dataset_schemas import DATASET_FIELD, SHAPES, filter_parameters, filterable
from slipstream.api.route_facts import DATASET_PARAMETER
from slipstream.datasets import Catalog, Dataset

TEMPLATE = "{" + DATASET_PARAMETER + "}"


def per_dataset(document: dict[str, Any], catalog: Catalog, filtered: set[tuple[str, str]]) -> None:
    """Write out each `{ds}` path per dataset; `filtered`: (path, method) of the operations that
    take the dataset's fields as filters."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    dependent = _dependent(schemas)
    paths: dict[str, Any] = {}
    for template, item in document["paths"].items():
        if TEMPLATE not in template:
            paths[template] = item
            continue
        for dataset in catalog:
            paths[template.replace(TEMPLATE, dataset.name)] = {
                method: _operation(op, dataset, dependent, (template, method) in filtered)
                for method, op in item.items()
            }
    document["paths"] = paths
    generic = {name: schemas.pop(name) for name in dependent if name in schemas}
    for dataset in catalog:
        for name in dependent:
            shape = SHAPES.get(name)
            schema = shape(dataset) if shape else generic[name]
            schemas[f"{name}.{dataset.name}"] = _rewritten(schema, dataset.name, dependent)
    document["components"]["schemas"] = dict(sorted(schemas.items()))


def _dependent(schemas: dict[str, Any]) -> set[str]:
    """The stand-ins, and every component that refers to one, at any depth."""
    found = set(SHAPES)
    grown = True
    while grown:
        more = {name for name, schema in schemas.items() if _refers_to(schema, found)} - found
        found |= more
        grown = bool(more)
    return found


def _refers_to(value: Any, names: set[str]) -> bool:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.removeprefix(REF) in names:
            return True
        return any(_refers_to(item, names) for item in value.values())
    if isinstance(value, list):
        return any(_refers_to(item, names) for item in value)
    return False


def _operation(
    operation: dict[str, Any], dataset: Dataset, dependent: set[str], filters: bool
) -> dict[str, Any]:
    operation = _rewritten(copy.deepcopy(operation), dataset.name, dependent)
    operation["operationId"] = operation["operationId"].replace("__ds__", f"_{dataset.name}_")
    parameters = [p for p in operation.get("parameters", ()) if p["name"] != DATASET_PARAMETER]
    for parameter in parameters:
        if parameter["schema"].pop(DATASET_FIELD, None):
            parameter["schema"]["enum"] = [f.name for f in filterable(dataset)]
    if filters:
        parameters += filter_parameters(dataset)
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    return operation


def _rewritten(value: Any, dataset: str, dependent: set[str]) -> Any:
    """`value` with each reference to a dependent component pointing at the dataset's own."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.removeprefix(REF) in dependent:
            return {**value, "$ref": f"{ref}.{dataset}"}
        return {key: _rewritten(item, dataset, dependent) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewritten(item, dataset, dependent) for item in value]
    return value
