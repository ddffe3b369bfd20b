"""The JSON Schema: valid policies validate, typical wrong shapes do not, and it
knows exactly the fields the builders know."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policyc.grammar.cst import to_python
from policyc.grammar.hujson import parse_text
from policyc.policy import build, build_rules
from policyc.policy.schema import policy_schema

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator(policy_schema())


def document(text: str) -> Any:
    tree, diags = parse_text(text)
    assert tree is not None, [str(d) for d in diags]
    return to_python(tree)


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(policy_schema())


def _described(node: Any, path: str = "") -> list[str]:
    """Paths of property schemas that lack a description."""
    missing = []
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            if "description" not in prop:
                missing.append(f"{path}/{name}")
        for key, value in node.items():
            missing += _described(value, f"{path}/{key}")
    return missing


def test_every_field_has_a_description() -> None:
    assert _described(policy_schema()) == []


def test_fields_match_the_builders() -> None:
    """A field the builders learn must be described in policyc/policy/schema.py too,
    or editors using the schema would flag valid policies."""
    props = policy_schema()["properties"]
    assert set(props) == build.TOP_LEVEL_KEYS
    assert set(props["acls"]["items"]["properties"]) == build_rules.ACL_FIELDS
    assert set(props["grants"]["items"]["properties"]) == build_rules.GRANT_FIELDS
    assert set(props["ssh"]["items"]["properties"]) == build_rules.SSH_FIELDS
    assert set(props["tests"]["items"]["properties"]) == build_rules.TEST_FIELDS
    assert set(props["sshTests"]["items"]["properties"]) == build_rules.SSH_TEST_FIELDS
    assert set(props["nodeAttrs"]["items"]["properties"]) == build.NODE_ATTR_FIELDS


def _conformance_policies() -> list[Any]:
    params = []
    for parent in ROOT.parents:
        base = parent / "shared" / "conformance"
        if base.is_dir():
            for path in sorted(base.glob("*/*.json")):
                case = json.loads(path.read_text())
                # Policies Tailscale rejected (error, or a 400 from the API) are not "valid".
                valid = "error" not in case["expect"] and case.get("api_response_code") != 400
                if valid:
                    params.append(pytest.param(case["policy"], id=path.stem))
            break
    return params


CONFORMANCE = _conformance_policies()


def test_samples_validate() -> None:
    for path in sorted((ROOT / "samples").glob("*.hujson")):
        errors = [e.message for e in VALIDATOR.iter_errors(document(path.read_text()))]
        assert errors == [], path


@pytest.mark.conformance
def test_every_valid_conformance_policy_validates() -> None:
    if not CONFORMANCE:
        pytest.skip("../shared/conformance not found")
    failures = {}
    for param in CONFORMANCE:
        errors = [e.message for e in VALIDATOR.iter_errors(document(param.values[0]))]
        if errors:
            failures[param.id] = errors
    assert failures == {}
    assert len(CONFORMANCE) > 700


WRONG_SHAPES = {
    "acls is an object": {"acls": {"action": "accept"}},
    "unknown section": {"acl": []},
    "unknown acl field": {"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"],
                                    "port": "22"}]},
    "acl action deny": {"acls": [{"action": "deny", "src": ["*"], "dst": ["*:*"]}]},
    "acl without action": {"acls": [{"src": ["*"], "dst": ["*:*"]}]},
    "src is a string": {"acls": [{"action": "accept", "src": "*", "dst": ["*:*"]}]},
    "dst holds a number": {"acls": [{"action": "accept", "src": ["*"], "dst": [22]}]},
    "group without prefix": {"groups": {"admins": ["a@example.com"]}},
    "group is a string": {"groups": {"group:a": "a@example.com"}},
    "tag owner key without prefix": {"tagOwners": {"web": ["a@example.com"]}},
    "host is a list": {"hosts": {"web": ["10.0.0.1"]}},
    "grant without dst": {"grants": [{"src": ["*"], "ip": ["*"]}]},
    "ssh action uppercase": {"ssh": [{"action": "Accept", "src": ["*"], "dst": ["*"],
                                      "users": ["root"]}]},
    "ssh without users": {"ssh": [{"action": "accept", "src": ["*"], "dst": ["*"]}]},
    "test without src": {"tests": [{"accept": ["a:22"]}]},
    "disableIPv4 as a string": {"disableIPv4": "yes"},
    "posture without prefix": {"postures": {"latest": ["node:os == 'linux'"]}},
    "the policy is a list": [],
}


@pytest.mark.parametrize("name", WRONG_SHAPES)
def test_typical_wrong_shapes_do_not_validate(name: str) -> None:
    assert list(VALIDATOR.iter_errors(WRONG_SHAPES[name])), name
