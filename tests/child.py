"""Child Python processes that import the same fastconv as the test process.

In CI the tests run against the installed package while the working
directory is the source tree, whose ``fastconv/`` has no compiled extension.
A child must therefore not start in the source tree (``python -c`` and
``python -m`` put the working directory first on ``sys.path``) and must find
the package where this process found it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import fastconv

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
CHILD_CWD = tempfile.gettempdir()


def child_env(**overrides: str) -> dict:
    """os.environ, plus the directory holding this process's fastconv first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(overrides)
    return env


def run_child(cmd: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` as a child process outside the source tree (environment:
    :func:`child_env` with ``env``) and capture its text output; the caller
    checks the exit code."""
    return subprocess.run(
        cmd,
        cwd=CHILD_CWD,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
