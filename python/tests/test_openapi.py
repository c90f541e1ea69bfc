"""The service against its own OpenAPI document, with schemathesis (every check).

Two bounded runs against the service the fixtures start, with the schema it serves at
``/v1/openapi.json``: every operation but login and logout with a valid logged-in token and the
service key, then login and logout (which end the token they are given) with a token of their
own. The whole test stays under a minute. ``SESAME_SCHEMATHESIS_SEED`` picks another seed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SERVICE_KEY, unique

SEED = os.environ.get("SESAME_SCHEMATHESIS_SEED", "1")


def schemathesis_exe() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    exe = str(beside) if beside.exists() else shutil.which("schemathesis")
    if exe is None:
        pytest.fail("schemathesis is not installed (pip install -e 'python[test]')")
    return exe


def run_schemathesis(cwd, service_url: str, token: str, max_time: int, *selection: str):
    argv = [
        schemathesis_exe(),
        "run",
        f"{service_url}/v1/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "10",
        "--max-time",
        str(max_time),
        "--seed",
        SEED,
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        "--header",
        f"Authorization: Bearer {token}",
        "--header",
        f"X-Sesame-Service-Key: {SERVICE_KEY}",
        *selection,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=max_time + 30, cwd=cwd)
    output = proc.stdout + proc.stderr
    # The output names no token (schemathesis filters credentials); make sure of it.
    return proc.returncode, output.replace(token, "[token]").replace(SERVICE_KEY, "[key]")


def test_served_document_is_the_one_in_docs(client):
    served = client._request("GET", "/v1/openapi.json")[1]
    assert served == json.loads((REPO / "docs" / "openapi.json").read_text())
    assert served["openapi"].startswith("3.")


def test_schemathesis_every_operation_but_login_and_logout(client, service_url, tmp_path):
    token = client.login(None, unique("schemathesis")).token.value
    code, output = run_schemathesis(
        tmp_path,
        service_url,
        token,
        35,
        "--exclude-path",
        "/v1/session/login",
        "--exclude-path",
        "/v1/session/logout",
    )
    assert code == 0, output


def test_schemathesis_login_and_logout(client, service_url, tmp_path):
    token = client.login(None, unique("schemathesis")).token.value
    code, output = run_schemathesis(
        tmp_path,
        service_url,
        token,
        12,
        "--include-path",
        "/v1/session/login",
        "--include-path",
        "/v1/session/logout",
    )
    assert code == 0, output
