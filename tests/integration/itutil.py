"""Helpers shared by the integration tests (tool runners, output normalisation)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"'{name}' not found on PATH: run scripts/install-deps.sh as root")
    return path


def run_psql(endpoint, args: list[str], *, user: str = "postgres", input: str | None = None,
             timeout: float = 120, extra_env: dict | None = None, check_rc: int | None = None
             ) -> subprocess.CompletedProcess:
    """Run psql -X against endpoint; stdout and stderr are returned separately."""
    env = endpoint.env(user=user, **(extra_env or {}))
    r = subprocess.run([tool("psql"), "-X", *args], env=env, input=input, capture_output=True,
                       text=True, timeout=timeout,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check_rc is not None:
        assert r.returncode == check_rc, (f"psql {args} on {endpoint.name} exited {r.returncode}\n"
                                          f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
    return r


def normalise(text: str) -> str:
    """Drop run-specific details (backend PIDs, timings, temp paths) from tool output."""
    text = re.sub(r"server process with PID \d+", "server process with PID N", text)
    text = re.sub(r"Time: [\d.]+ ms.*", "Time: X", text)
    text = re.sub(r"pg_temp_\d+", "pg_temp_N", text)
    return text
