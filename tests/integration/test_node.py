"""node-postgres (pg) through the target: runs node/test_node.js and compares with direct."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import HERE
from itutil import tool

NODE_DIR = HERE / "node"


def run_node(endpoint) -> dict:
    node = tool("node")
    if not (NODE_DIR / "node_modules" / "pg").is_dir():
        pytest.skip(f"node 'pg' module not installed in {NODE_DIR}: run scripts/install-deps.sh "
                    "(npm ci there)")
    env = endpoint.env(user="scram_user")  # SCRAM auth as well, for good measure
    r = subprocess.run([node, str(NODE_DIR / "test_node.js")], cwd=NODE_DIR, env=env,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"node test on {endpoint.name} failed:\n{r.stderr[-4000:]}\n{r.stdout[-2000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_node_pg(target, direct):
    got = run_node(target)
    assert got["final"] == {"n": 51}
    assert got["errors"]["first"] == "23505" and got["errors"]["second"] == "25P02"
    assert got == run_node(direct)
