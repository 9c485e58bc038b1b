"""The layer contract in pyproject.toml ([tool.importlinter]) holds, checked by its own tool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_layer_contract_holds() -> None:
    # The contract itself is in pyproject.toml ([tool.importlinter]); `make test` also runs
    # `lint-imports`. It runs in its own process: import-linter reconfigures logging and
    # disables every logger that exists, which would silence the rest of this test process.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout
