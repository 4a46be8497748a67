"""The package's shape: modules small enough to read in one sitting, and no import cycles among them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "estimator"
MAX_LINES = 350


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(name: str, path: Path) -> set[str]:
    """Package modules ``name`` imports when it runs: top level and inside functions, not under TYPE_CHECKING."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    package = package.rsplit(".", 1)[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES and m != name}


@pytest.mark.parametrize("name", sorted(MODULES), ids=str)
def test_module_is_small_enough_to_read_in_one_sitting(name: str) -> None:
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it (at most {MAX_LINES})"


def test_no_import_cycles() -> None:
    graph = {name: imported_modules(name, path) for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_spec_imports_nothing_built_from_it() -> None:
    assert imported_modules("estimator.specs", MODULES["estimator.specs"]) <= {"estimator.errors"}


def test_the_cycle_check_sees_imports_inside_functions() -> None:
    graph = imported_modules("estimator.cli.headline", MODULES["estimator.cli.headline"])
    assert "estimator.present.estimate" in graph  # imported inside headline()


def test_the_family_map_names_every_family_module_and_model_type() -> None:
    from estimator.families import MODULE_OF, all_families

    covered = {model_type: family for family in all_families() for model_type in family.model_types}
    assert set(covered) == set(MODULE_OF)
    for model_type, family in covered.items():
        assert family.build.__module__ == f"estimator.families.{MODULE_OF[model_type]}", model_type


def test_neither_face_imports_the_other() -> None:
    """The web server and the CLI both read the question from estimator.query and print estimator.present's
    reports; the server imports no module of the CLI, even inside a function, and the CLI only starts the
    server (``estimate web``)."""
    for name, path in MODULES.items():
        imported = imported_modules(name, path)
        if name.startswith("estimator.web"):
            assert not sorted(m for m in imported if m.startswith("estimator.cli")), name
        if name.startswith("estimator.cli"):
            crossing = {m for m in imported if m.startswith("estimator.web")}
            assert crossing <= ({"estimator.web.server"} if name == "estimator.cli.web" else set()), (name, crossing)
