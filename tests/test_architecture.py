"""The architecture, checked statically (ast over the source, no broker, no import of the code under test except
the subcommand modules): one-way dependencies between the five parts, no old top-level names, short files at
central and the edge, pyproject's package list, the ``kuzet`` subcommands."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PARTS = ("shared", "edge", "central", "provisioning", "models")

# Which other parts each part may import (its own is always allowed).
ALLOWED = {
    "shared": set(),
    "models": {"shared"},
    "edge": {"shared", "models"},
    "central": {"shared", "models"},
    "provisioning": {"shared"},
}

MAX_LINES = 600  # for every Python file under central/ and edge/
LONG_FILE_PARTS = ("central", "edge")

IMPORT_FUNCTIONS = {"import_module", "__import__"}
MODULE_STRING = re.compile(rf"kuzet\.(?:{'|'.join(PARTS)})(?:\.\w+)*")


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repository, e.g. "edge/badge/agent.py"
    line: int
    module: str  # absolute, relative imports resolved: "kuzet.shared.config", or an old "shared.config"
    how: str  # "import", "from", "import_module" or "string"


def source_files(parts=PARTS) -> list[Path]:
    return sorted(
        path for part in parts for path in (REPO / part).rglob("*.py") if "__pycache__" not in path.parts
    )


def package_of(path: Path) -> list[str]:
    """["kuzet", "edge", "badge"] for edge/badge/agent.py and for edge/badge/__init__.py."""
    return ["kuzet", *path.relative_to(REPO).parent.parts]


def resolve(path: Path, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    package = package_of(path)
    base = package[: len(package) - (level - 1)] if level - 1 < len(package) else []
    return ".".join([*base, module] if module else base)


def imports_of(path: Path) -> list[Import]:
    rel = path.relative_to(REPO).as_posix()
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(rel, node.lineno, alias.name, "import") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(path, node.module, node.level)
            found.append(Import(rel, node.lineno, base, "from"))
            # `from kuzet import central`, `from .. import central`: the names may be modules themselves.
            if base in ("kuzet", *PARTS) or node.level:
                found += [Import(rel, node.lineno, f"{base}.{alias.name}", "from") for alias in node.names]
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            if name in IMPORT_FUNCTIONS and node.args and isinstance(node.args[0], ast.Constant):
                target = node.args[0].value
                if isinstance(target, str):
                    level = len(target) - len(target.lstrip("."))
                    found.append(
                        Import(rel, node.lineno, resolve(path, target.lstrip(".") or None, level), name)
                    )
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_STRING.fullmatch(node.value)
        ):
            # A module named in a string (kept in a table, passed to import_module later, run with -m).
            found.append(Import(rel, node.lineno, node.value, "string"))
    return found


def part_of(module: str) -> str | None:
    """The kuzet part a module belongs to: "edge" for "kuzet.edge.badge"; None outside kuzet's parts."""
    names = module.split(".")
    if len(names) >= 2 and names[0] == "kuzet" and names[1] in PARTS:
        return names[1]
    return None


def check(found: dict[str, list[str]], what: str) -> None:
    """Fail naming every violation (key: what is wrong; value: where)."""
    if found:
        lines = [f"  {key}   ({', '.join(where)})" for key, where in sorted(found.items())]
        pytest.fail(f"{what}:\n" + "\n".join(lines), pytrace=False)


def test_the_parts_depend_one_way():
    found: dict[str, list[str]] = {}
    for path in source_files():
        own = path.relative_to(REPO).parts[0]
        for imp in imports_of(path):
            other = part_of(imp.module)
            if other and other != own and other not in ALLOWED[own]:
                found.setdefault(f"{imp.path} imports {imp.module}", []).append(f"line {imp.line}, {imp.how}")
    check(
        found, "imports across the parts against the rule " + str({k: sorted(v) for k, v in ALLOWED.items()})
    )


def test_nothing_imports_the_old_top_level_names():
    found: dict[str, list[str]] = {}
    for path in source_files():
        for imp in imports_of(path):
            if imp.module.split(".")[0] in PARTS:
                found.setdefault(f"{imp.path} imports {imp.module}", []).append(f"line {imp.line}, {imp.how}")
    check(found, "imports of the old top-level names (every import is kuzet.<part>...)")


def test_files_at_central_and_the_edge_stay_short():
    found = {}
    for path in source_files(LONG_FILE_PARTS):
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            found[f"{path.relative_to(REPO).as_posix()} has more than {MAX_LINES} lines"] = [f"{lines} lines"]
    check(found, f"Python files over {MAX_LINES} lines under {', '.join(LONG_FILE_PARTS)}/")


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_pyproject_lists_exactly_the_package_folders():
    """Every folder holding files is listed: code packages (with an __init__.py) and data folders (templates,
    static files), whose files would otherwise be missing from a wheel."""
    on_disk, namespace_code = set(), []
    for part in PARTS:
        for folder in [REPO / part, *(REPO / part).rglob("*")]:
            if not folder.is_dir() or "__pycache__" in folder.parts:
                continue
            files = [f for f in folder.iterdir() if f.is_file() and f.suffix != ".pyc"]
            if not files:
                continue
            name = ".".join(["kuzet", *folder.relative_to(REPO).parts])
            on_disk.add(name)
            if any(f.suffix == ".py" for f in files) and not (folder / "__init__.py").exists():
                namespace_code.append(name)
    assert namespace_code == [], f"code folders without an __init__.py: {namespace_code}"
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    assert listed == on_disk, (
        f"folders holding files missing from [tool.setuptools] packages: {sorted(on_disk - listed)}; "
        f"listed without such a folder: {sorted(listed - on_disk)}"
    )


def top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


COMMANDS = pyproject()["project"]["entry-points"]["kuzet.commands"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_subcommand_module_has_help_add_arguments_and_run(name):
    module = COMMANDS[name]
    part, *rest = module.split(".")[1:]
    path = REPO / part / Path(*rest).with_suffix(".py") if rest else REPO / part / "__init__.py"
    assert part in PARTS and path.is_file(), f"`kuzet {name}` names {module}, which is not in the checkout"
    missing = {"HELP", "EXTRA", "add_arguments", "run"} - top_level_names(path)
    assert not missing, f"{module} (`kuzet {name}`) lacks {sorted(missing)}"
    if importlib.util.find_spec(module) is not None:  # importable here (its extra installed): check for real
        loaded = importlib.import_module(module)
        assert isinstance(loaded.HELP, str) and callable(loaded.add_arguments) and callable(loaded.run)


def test_the_folders_are_not_importable_by_their_bare_names():
    """The repository root is not on sys.path (tests/conftest.py, pyproject's importlib mode), so ``import
    shared`` cannot load shared/ a second time. (tests/ is on sys.path for ``support``: a bare name may at most
    find a test folder such as tests/shared, never the code.)"""
    assert REPO not in {Path(entry or ".").resolve() for entry in sys.path}
    for part in PARTS:
        spec = importlib.util.find_spec(part)
        locations = [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
        assert REPO / part not in locations, f"`import {part}` finds {REPO / part}"
