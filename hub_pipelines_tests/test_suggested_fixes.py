"""Every suggested fix names only things that exist now: `hub` commands (and their options) of
`hub_pipelines.cli.build_parser()`, files under `docs/` (and their numbered sections), and
`sync_config.` / `connection_config.` fields of the tenant config models.

The fixes come from two places: the data (each category's default, the OAuth re-authorisation
text, `classify`'s own fixes) and a sweep of the package's source for every literal passed as
`suggested_fix=` or stored under a `"suggested_fix"` key, so a fix added anywhere is checked.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from pathlib import Path

import psycopg
import pytest

import hub_pipelines
from hub_pipelines.cli import build_parser
from hub_pipelines.connectors.errors import Category, SyncError, classify
from hub_pipelines.connectors.oauth import REAUTHORISE
from hub_pipelines.tally.export_file import ExportFileError
from hub_pipelines.tenants.models import CONNECTION_MODELS, SyncConfig

PACKAGE = Path(hub_pipelines.__file__).resolve().parent
ROOT = PACKAGE.parent

HUB_COMMAND = re.compile(r"\bhub((?: [a-z][a-z_-]*)+)")
BACKTICKED = re.compile(r"`([^`]+)`")
DOCS_PATH = re.compile(r"\bdocs/[\w./-]*[\w/]")
DOCS_SECTION = re.compile(r"\b(docs/[\w./-]+\.md),? sections? (\d+)")
CONFIG_FIELD = re.compile(r"\b(sync_config|connection_config)\.([a-z_]+)")


# --- where the fixes come from ------------------------------------------------------------------


def _data_fixes() -> dict[str, str]:
    fixes = {f"Category.{c.name} default": SyncError(c, "x").suggested_fix for c in Category}
    fixes["oauth.REAUTHORISE"] = REAUTHORISE
    fixes["classify(warehouse outage)"] = classify(psycopg.OperationalError("down")).suggested_fix
    fixes["classify(unexpected)"] = classify(ZeroDivisionError("x")).suggested_fix
    fixes["tally ExportFileError"] = ExportFileError.suggested_fix
    return fixes


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _text(node: ast.AST, module: str) -> str | None:
    """The text of a fix expression: literals, `+` of literals, module constants; f-strings with
    their holes as `{}`. None for values read at run time (e.g. `metadata.get(...)`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "{}" for part in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, module), _text(node.right, module)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Name):
        value = getattr(importlib.import_module(module), node.id, None)
        return value if isinstance(value, str) else None
    return None


def _source_fixes() -> dict[str, str]:
    fixes: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            candidates: list[ast.AST] = []
            if isinstance(node, ast.keyword) and node.arg == "suggested_fix":
                candidates.append(node.value)
            elif isinstance(node, ast.Dict):
                candidates += [
                    value
                    for key, value in zip(node.keys, node.values, strict=True)
                    if isinstance(key, ast.Constant) and key.value == "suggested_fix"
                ]
            for candidate in candidates:
                text = _text(candidate, module)
                if text is not None:
                    fixes[f"{path.relative_to(ROOT)}:{candidate.lineno}"] = text
    return fixes


ALL_FIXES = {**_data_fixes(), **_source_fixes()}


# --- what exists --------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _resolve(words: list[str]) -> tuple[list[str], argparse.ArgumentParser | None]:
    """Walk `hub WORD WORD …` down the real parser: the words used and the parser reached, or
    None when a word that must be a subcommand is not one."""
    parser, used = build_parser(), []
    for word in words:
        choices = _subcommands(parser)
        if not choices:
            break
        if word not in choices:
            return used + [word], None
        parser = choices[word]
        used.append(word)
    if _subcommands(parser):  # a group named without one of its subcommands
        return used, None
    return used, parser


def _problems(text: str) -> list[str]:
    problems = []
    for match in HUB_COMMAND.finditer(text):
        used, parser = _resolve(match.group(1).split())
        if parser is None:
            problems.append(f"`hub {' '.join(used)}` is not a hub command")
    for span in BACKTICKED.findall(text):
        tokens = span.split()
        if tokens[:1] != ["hub"]:
            continue
        used, parser = _resolve([t for t in tokens[1:] if not t.startswith("-")])
        if parser is None:
            continue  # reported above
        known = {option for action in parser._actions for option in action.option_strings}
        problems += [
            f"`hub {' '.join(used)}` has no option {token}"
            for token in tokens
            if token.startswith("--") and token.split("=")[0] not in known
        ]
    for path in DOCS_PATH.findall(text):
        if not (ROOT / path).exists():
            problems.append(f"{path} does not exist")
    for path, number in DOCS_SECTION.findall(text):
        headings = (ROOT / path).read_text(encoding="utf-8") if (ROOT / path).exists() else ""
        if not re.search(rf"^#+ {number}\. ", headings, re.MULTILINE):
            problems.append(f"{path} has no section {number}")
    connection_fields = {
        name for model in CONNECTION_MODELS.values() for name in model.model_fields
    }
    for kind, name in CONFIG_FIELD.findall(text):
        fields = SyncConfig.model_fields if kind == "sync_config" else connection_fields
        if name not in fields:
            problems.append(f"{kind}.{name} is not a config field")
    return problems


# --- the tests ----------------------------------------------------------------------------------


def test_the_sweep_finds_the_fixes_of_every_layer():
    places = " ".join(ALL_FIXES)
    for where in ("Category.AUTH", "oauth.REAUTHORISE", "zoho_books/connector.py", "loader.py"):
        assert where in places
    assert all(text.strip() for text in ALL_FIXES.values())


@pytest.mark.parametrize("where", sorted(ALL_FIXES))
def test_every_suggested_fix_names_only_what_exists(where):
    text = ALL_FIXES[where]
    assert _problems(text) == [], text
    assert "onboarding" not in text.lower() and "/oauth/" not in text


def test_the_auth_fix_says_how_to_re_authorise_with_real_commands():
    for text in (SyncError(Category.AUTH, "rejected").suggested_fix, REAUTHORISE):
        assert text.startswith("Re-authorise")
        assert "`hub tenants add TENANT SYSTEM --config FILE`" in text
        assert "`hub tenants test TENANT SYSTEM`" in text
        assert "docs/connectors/zoho_books.md" in text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("see the OAuth page, then `hub tenants onboard acme`", "`hub tenants onboard`"),
        ("run hub frobnicate acme zoho_books", "`hub frobnicate`"),
        ("run `hub tenants` first", "`hub tenants` is not"),
        ("`hub tenants add TENANT SYSTEM --file F`", "has no option --file"),
        ("see docs/connectors/sage.md", "docs/connectors/sage.md does not exist"),
        ("see docs/connectors/zoho_books.md, section 99", "has no section 99"),
        ("raise sync_config.max_errors", "sync_config.max_errors is not a config field"),
    ],
)
def test_the_checker_catches_what_does_not_exist(text, problem):
    """The checks above fail for the mistakes they are meant to catch."""
    assert any(problem in found for found in _problems(text)), _problems(text)
