"""The code's shape, checked: the layer contract holds and every import sits at module top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "store", "telemetry", "ingest", "worker", "fleet")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _nested_imports(path: Path) -> list[str]:
    """Imports inside functions, classes or conditionals (but `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            top_level.add(node)
        elif isinstance(node, ast.Try):  # an optional dependency's fallback, at module level
            top_level.update(
                n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)
            )
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and node not in top_level
    ]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_sit_at_the_top_of_the_module(path: Path) -> None:
    # An import inside a function usually hides a cycle or an upward import.
    assert _nested_imports(path) == []


def test_the_layer_contract_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    # The contract itself is in pyproject.toml ([tool.importlinter]); `make test` also runs
    # `lint-imports`. It reads source files only.
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
