"""A real editor: headless Neovim opens a policy with a typo, attaches `policyc lsp`,
and the test reads the diagnostic Neovim itself received."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NVIM = shutil.which("nvim")

POLICY = """{
  "groups": {"group:dev": ["alice@example.com"]},
  "acls": [
    {"action": "accept", "src": ["group:deb"], "dst": ["*:22"]},
  ],
}
"""

# Neovim 0.7 (Debian bookworm) has no vim.lsp.start; start_client + buf_attach_client
# work from 0.5 on. The result is written as JSON for the test to read.
SCRIPT = """
local out, python, root = vim.env.POLICYC_OUT, vim.env.POLICYC_PYTHON, vim.env.POLICYC_ROOT
local id = vim.lsp.start_client({
  name = "policyc",
  cmd = { python, "-m", "policyc.cli", "lsp" },
  cmd_env = { PYTHONPATH = root },
  root_dir = vim.fn.expand("%:p:h"),
})
vim.lsp.buf_attach_client(0, id)
local ok = vim.wait(60000, function() return #vim.diagnostic.get(0) > 0 end, 50)
local got = {}
for _, d in ipairs(vim.diagnostic.get(0)) do
  local lsp = (d.user_data or {}).lsp or {}
  table.insert(got, { lnum = d.lnum, col = d.col, message = d.message,
                      code = d.code or lsp.code, severity = d.severity })
end
vim.fn.writefile({ vim.fn.json_encode({ ok = ok, diagnostics = got }) }, out)
vim.lsp.stop_client(id)
vim.wait(5000, function() return vim.lsp.client_is_stopped(id) end, 50)
vim.cmd("qa!")
"""


@pytest.mark.skipif(NVIM is None, reason="neovim is not installed "
                    "(scripts/install-system-deps.sh installs it)")
def test_neovim_receives_the_typo_diagnostic(tmp_path: Path) -> None:
    policy = tmp_path / "policy.hujson"
    policy.write_text(POLICY)
    script = tmp_path / "attach.lua"
    script.write_text(SCRIPT)
    out = tmp_path / "diagnostics.json"
    env = {"POLICYC_OUT": str(out), "POLICYC_PYTHON": sys.executable,
           "POLICYC_ROOT": str(ROOT), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
           "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_DATA_HOME": str(tmp_path / "data")}
    assert NVIM is not None
    subprocess.run([NVIM, "--headless", "--clean", str(policy), "-c", f"luafile {script}"],
                   env=env, cwd=tmp_path, timeout=120, check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    assert result["ok"] is True
    # The typo, and so group:dev is unused: exactly what `policyc check` says.
    assert sorted(d["code"] for d in result["diagnostics"]) == ["E104", "W202"]
    (diagnostic,) = [d for d in result["diagnostics"] if d["code"] == "E104"]
    assert diagnostic["message"] == 'group "group:deb" is not defined'
    assert diagnostic["code"] == "E104"
    # 0-based line 3, at the string "group:deb" (Neovim counts bytes; this line is ASCII).
    column = POLICY.split("\n")[3].index('"group:deb"')
    assert (diagnostic["lnum"], diagnostic["col"]) == (3, column)
