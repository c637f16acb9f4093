"""The layers docs/ARCHITECTURE.md promises, checked on the source itself.

import-linter (run by .ci/run) keeps imports from going upward between layers; these tests
keep the two rules it does not check: no import cycle inside the package (even within one
layer), and no function-level import of the package's own modules (the way a cycle hides).
Lazy imports are for heavy third-party modules only, with one registry as the exception:
the root command loads its subcommands' modules by name (cli/lazy.py), and only there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"


def _own_imports_inside_functions() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                modules = []
                if isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                    modules = [inner.module]
                elif isinstance(inner, ast.Import):
                    modules = [a.name for a in inner.names]
                modules = [m for m in modules if m == "reconciler" or m.startswith("reconciler.")]
                if modules or (isinstance(inner, ast.ImportFrom) and inner.level > 0):
                    where = path.relative_to(PACKAGE.parent)
                    found.append(f"{where}:{inner.lineno}")
    return found


def test_no_function_level_import_of_our_own_modules() -> None:
    assert _own_imports_inside_functions() == []


#: The one module that may load the package's own modules by name (`importlib.import_module`):
#: the registry of the root command's subcommands (docs/ARCHITECTURE.md, "Lazy imports").
LAZY_REGISTRY = "reconciler/cli/lazy.py"


def _imports_by_name() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.id
                if isinstance(node, ast.Name)
                else None
            )
            if name in {"import_module", "__import__"}:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_modules_are_loaded_by_name_only_in_the_subcommand_registry() -> None:
    assert [f for f in _imports_by_name() if not f.startswith(LAZY_REGISTRY + ":")] == []
    assert _imports_by_name(), "the registry loads its subcommands with importlib.import_module"


def test_no_import_cycle_inside_the_package() -> None:
    graph = grimp.build_graph("reconciler")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                chain = graph.find_shortest_chain(importer=imported, imported=module)
                cycles.append(f"{module} -> {' -> '.join(chain or ())}")
    assert cycles == []
