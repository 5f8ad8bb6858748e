"""Reading infra/cloudformation.yaml in tests: short-form intrinsics, resources by type, policies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "infra" / "cloudformation.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms: ``!Ref X`` → ``{"Ref": "X"}``, ``!Sub`` → ``Fn::Sub``."""


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data, intrinsics in their long form."""
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader plus intrinsic tags


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    """Logical id → resource, for every resource of ``type_``."""
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def one_resource(template: dict[str, Any], type_: str) -> tuple[str, dict[str, Any]]:
    """The one resource of ``type_`` (a test failure if there are none or several)."""
    found = resources_of_type(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) for every permission statement the template grants or denies.

    Trust policies (who may assume a role) are left out: they name principals, not permissions.
    """
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents: list[tuple[str, dict[str, Any]]] = []
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                documents.append((f"{name}/{policy['PolicyName']}", policy["PolicyDocument"]))
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy",
                                  "AWS::S3::BucketPolicy"):
            documents.append((name, props["PolicyDocument"]))
        for where, document in documents:
            for statement in document["Statement"]:
                yield f"{where}/{statement.get('Sid', '?')}", statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def sub_text(value: Any) -> str | None:
    """The text of a ``Fn::Sub`` (its string form), else None."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return None


def sub_references(text: str) -> list[str]:
    """The ``${...}`` names a Sub string refers to, in order."""
    return re.findall(r"\$\{([^}!][^}]*)\}", text)
