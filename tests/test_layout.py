"""The package's shape is checked, not remembered: no import cycles, click only in cli/, few plain
modules, and test modules that share helpers instead of importing each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "newsletter"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module of ours that `path` imports by name, at any depth (lazy imports count too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module.startswith("newsletter")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imports_of(path) & modules.keys() - {name} for name, path in modules.items()}


def test_no_module_imports_itself_in_a_circle() -> None:
    edges = graph()
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(edges[node]):
            if target in trail:
                cycles.append([*trail[trail.index(target) :], target])
            elif len(trail) < 30:
                visit(target, [*trail, target])

    for start in sorted(edges):
        visit(start, [start])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles[:5])


def test_cli_app_does_not_import_the_commands() -> None:
    commands = {module_name(p) for p in (PACKAGE / "cli").glob("*.py")} - {
        "newsletter.cli",
        "newsletter.cli.app",
    }
    assert not imports_of(PACKAGE / "cli" / "app.py") & commands


def test_nothing_below_the_cli_imports_click() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts[:1]
        and any(
            (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "click" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "click")
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert offenders == []


def test_the_package_is_stage_folders_plus_a_handful_of_shared_modules() -> None:
    plain = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(plain) <= 12, plain


def test_test_modules_share_helpers_and_never_import_each_other() -> None:
    tests = {p.stem for p in (ROOT / "tests").glob("*.py")}
    offenders = {
        path.name: sorted(imports & tests)
        for path in (ROOT / "tests").rglob("*.py")
        if (imports := _top_level_names(path)) & tests
    }
    assert offenders == {}


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names
