"""docs/bad_inputs.md stays true: every row of its table names a test, and every test it names exists."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "bad_inputs.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _rows() -> list[str]:
    """The body rows of every table (each table's header is the row above its |---| rule)."""
    lines = TABLE.read_text(encoding="utf-8").splitlines()
    rule = [line.startswith("|") and set(line) <= set("|-: ") for line in lines]
    return [line for i, line in enumerate(lines) if line.startswith("|") and not rule[i]
            and not (i + 1 < len(lines) and rule[i + 1])]


def _defined_tests(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_row_names_a_test_and_every_named_test_exists():
    rows = _rows()
    assert len(rows) >= 20, f"{TABLE}: expected the table of bad inputs, found {len(rows)} rows"
    unnamed = [row for row in rows if not NAMED.search(row)]
    assert not unnamed, f"{TABLE}: rows that name no test: {unnamed}"
    missing = [f"{file}::{name}" for row in rows for file, name in NAMED.findall(row)
               if not (ROOT / file).is_file() or name not in _defined_tests(ROOT / file)]
    assert not missing, f"{TABLE} names tests that do not exist: {missing}"
