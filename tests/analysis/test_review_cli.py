"""`policyc diff`, `verify` and `graph` through the command line (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyc.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
POLICY = str(SAMPLES / "policy.hujson")
NODES = str(SAMPLES / "nodes.json")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture
def changed(tmp_path: Path) -> str:
    text = Path(POLICY).read_text().replace('"tag:prod:22,443,8080"',
                                             '"tag:prod:22,443,8080,5432"')
    path = tmp_path / "new.hujson"
    path.write_text(text)
    return str(path)


def test_diff_exit_codes_follow_access_not_text(tmp_path: Path, changed: str) -> None:
    reworded = tmp_path / "reworded.hujson"
    reworded.write_text("// only a comment changed\n" + Path(POLICY).read_text())
    assert run("diff", POLICY, str(reworded))[0] == 0
    code, out = run("diff", POLICY, changed, "--nodes", NODES)
    assert code == 1
    assert "+ group:dev gained tag:prod tcp,udp/5432 (4 nodes)" in out
    assert "prod-db:" in out  # per node, with --nodes


def test_diff_formats(changed: str) -> None:
    code, out = run("diff", POLICY, changed, "--format", "json")
    assert code == 1 and json.loads(out)["gained"][0]["who"] == "group:dev"
    code, out = run("diff", POLICY, changed, "--format", "markdown")
    assert code == 1 and out.startswith("### policyc: access changes")


def test_diff_errors_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.hujson"
    broken.write_text('{"acls": [{"action": "accept", "src": ["group:nope"], "dst": ["*:*"]}]}')
    code, out = run("diff", POLICY, str(broken))
    assert code == 2 and "E104" in out
    assert run("diff", POLICY, str(tmp_path / "missing.hujson"))[0] == 2


def _assertions(tmp_path: Path, text: str) -> str:
    path = tmp_path / "assert.hujson"
    path.write_text(text)
    return str(path)


def test_verify_exit_codes_and_formats(tmp_path: Path) -> None:
    good = _assertions(tmp_path, '{"deny": [{"src": "group:marketing", "dst": "prod-db-host"}]}')
    code, out = run("verify", POLICY, "--assert", good, "--nodes", NODES)
    assert code == 0 and "1 assertion(s) proven, 0 failed" in out
    code, out = run("verify", POLICY, "--assert", good)
    assert code == 0 and "(synthetic inventory)" in out
    bad = _assertions(tmp_path, '{"isolated": ["tag:db"]}')
    code, out = run("verify", POLICY, "--assert", bad, "--nodes", NODES)
    assert code == 1 and "error[V604]" in out and "counterexample: carol-" in out
    code, out = run("verify", POLICY, "--assert", bad, "--format", "github")
    assert code == 1 and out.startswith("::error file=") and "V604" in out
    code, out = run("verify", POLICY, "--assert", bad, "--format", "sarif")
    assert code == 1 and json.loads(out)["runs"][0]["results"][0]["ruleId"] == "V604"
    code, out = run("verify", POLICY, "--assert", str(tmp_path / "missing.hujson"))
    assert code == 2 and "P006" in out


def _page_data(page: Path) -> dict[str, object]:
    text = page.read_text(encoding="utf-8")
    start = text.index('id="access-data">') + len('id="access-data">')
    data: dict[str, object] = json.loads(text[start:text.index("</script>", start)])
    return data


def test_graph_writes_the_page_of_the_access_map(tmp_path: Path) -> None:
    from policyc.analysis.graph import access_map
    from policyc.compiler.inventory import load_inventory_file
    from policyc.policy.load import load_policy_file

    page = tmp_path / "access.html"
    code, out = run("graph", POLICY, "--nodes", NODES, "-o", str(page))
    assert code == 0 and f"wrote {page}" in out
    policy, _ = load_policy_file(POLICY)
    inventory, _ = load_inventory_file(NODES)
    assert policy is not None and inventory is not None
    assert _page_data(page) == access_map(policy, inventory).to_json()
    assert oct(page.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["access.html"]  # no temporary left


def test_graph_failures_leave_the_previous_page(tmp_path: Path) -> None:
    page = tmp_path / "access.html"
    page.write_text("the previous page")
    broken = tmp_path / "broken.hujson"
    broken.write_text(Path(POLICY).read_text().replace('"group:qa"],', '"group:qa"'))
    code, out = run("graph", str(broken), "-o", str(page))
    assert code == 2 and "broken.hujson:" in out
    assert page.read_text() == "the previous page"
    code, out = run("graph", POLICY, "-o", str(tmp_path / "missing" / "access.html"))
    assert code == 2 and "cannot write the page" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["access.html", "broken.hujson"]
