"""The house rules, checked: short modules, imports that point down the floors, no loops, imports at the top."""

import ast
from pathlib import Path

from conftest import PROJECT

PACKAGE = PROJECT / "src" / "hpa_scc"
# Each subpackage's floor: a module may import modules of its own floor or of lower ones only.
FLOORS = {"core": 1, "data": 2, "segment": 3, "submission": 3, "model": 3, "crops": 4, "metrics": 4, "report": 4,
          "synth": 5, "predict": 5, "train": 5, "evaluate": 6, "bench": 7, "app": 8, "__main__": 8}
TOP_FLOOR = 8  # the package itself (its public top-level names) sits above every stage
MAX_LINES = 350
MAX_LAZY_PROJECT_IMPORTS = 20


def modules() -> dict[str, Path]:
    """{dotted name: path} of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def floor_of(name: str) -> int:
    parts = name.split(".")
    return FLOORS[parts[1]] if len(parts) > 1 else TOP_FLOOR


def project_imports(path: Path) -> list[tuple[ast.AST, str, bool]]:
    """(node, imported hpa_scc module, at top level?) of every import of the project in a file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hpa_scc") and node.level == 0:
            found.append((node, node.module, id(node) in top))
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node, "relative", id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(node, a.name, id(node) in top) for a in node.names if a.name.startswith("hpa_scc")]
    return found


def test_every_module_is_short():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_imports_are_absolute_and_point_down_the_floors():
    known = modules()
    wrong = []
    for name, path in known.items():
        for node, target, _ in project_imports(path):
            if target == "relative":
                wrong.append(f"{name}:{node.lineno} relative import (use hpa_scc....)")
            elif target not in known:
                wrong.append(f"{name}:{node.lineno} imports {target}, which does not exist")
            elif floor_of(target) > floor_of(name):
                wrong.append(f"{name}:{node.lineno} (floor {floor_of(name)}) imports {target} (floor {floor_of(target)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_loops():
    known = modules()
    graph = {name: {t for _, t, _ in project_imports(path) if t in known} for name, path in known.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, "import loop: " + " -> ".join(trail + [node, nxt])
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_project_imports_sit_at_the_top_but_a_few_with_their_reason():
    lazy = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        for node, target, at_top in project_imports(path):
            if not at_top:
                lazy.append(f"{name}:{node.lineno} {target}")
                assert "#" in lines[node.lineno - 1], f"{name}:{node.lineno}: a lazy import says why in a comment"
    assert len(lazy) <= MAX_LAZY_PROJECT_IMPORTS, "\n".join(lazy)


def test_readme_is_short_and_names_the_two_commands():
    readme = (PROJECT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme
