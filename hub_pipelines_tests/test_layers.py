"""Import directions keep the house easy to walk: leaves import nothing of ours but leaves, the kit
(connectors, simulation) only leaves and the kit, a system's folder only leaves, the kit and
itself, and the registry (`systems.py`) is the only place that knows every system."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hub_pipelines import settings
from hub_pipelines.systems import AVAILABLE
from hub_pipelines.tenants.models import CONNECTION_MODELS

PACKAGE = Path(__file__).resolve().parents[1] / "hub_pipelines"
LEAVES = {"hub_pipelines.canonical", "hub_pipelines.settings", "hub_pipelines.gst"}
LEAVES |= {"hub_pipelines.tenants.models"}
KIT = ("hub_pipelines.connectors", "hub_pipelines.simulation")
SYSTEM_FOLDERS = tuple(f"hub_pipelines.{system}" for system in settings.SYSTEMS)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_imports(path: Path) -> set[str]:
    """Every hub_pipelines module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {n if _is_module(n) else node.module for n in names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("hub_pipelines.")}


def _is_module(dotted: str) -> bool:
    relative = Path(*dotted.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").exists() or (
        PACKAGE.parent / relative / "__init__.py"
    ).exists()


def within(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: module_name(p))
def test_each_module_imports_only_downwards(path):
    name = module_name(path)
    imported = our_imports(path)
    if name in LEAVES:
        allowed: set[str] | tuple = LEAVES
    elif within(name, KIT):
        allowed = LEAVES | set(KIT)
    elif within(name, SYSTEM_FOLDERS):
        own = next(folder for folder in SYSTEM_FOLDERS if within(name, (folder,)))
        allowed = LEAVES | {*KIT, own}
    else:
        return  # above the registry: imports, cli, definitions, demo, tenants services
    wrong = sorted(i for i in imported if not within(i, allowed))
    assert wrong == [], f"{name} imports {wrong}: only {sorted(allowed)} are below it"


def test_one_list_of_system_keys():
    assert tuple(CONNECTION_MODELS) == settings.SYSTEMS
    assert set(AVAILABLE) <= set(settings.SYSTEMS)
    for system, entry in AVAILABLE.items():
        assert entry.resource.__module__.startswith(f"hub_pipelines.{system}.")
