"""The docs against the code: what they name must exist, and what the code has must be documented.

- docs/operations.md, "Configuration reference": its tables list every environment variable the
  code reads (found by `test_deploy.variables_read_by_code`), once each, and no other; each row
  says which parts read it and whether it is a secret, in line with test_deploy's classes.
- Every `hub_pipelines/…` path in the docs exists, and every `hub …` command they show starts
  with real subcommands of the CLI's parser.
- Each connector page has the sections a data engineer needs (set up, authentication, limits,
  quirks, troubleshooting by error category), and its troubleshooting names every error category.
- docs/architecture.md's walkthrough for a new system names what a system registers.

Nothing here needs a database: the docs are read as text, the code through its own definitions.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_pipelines.cli import build_parser
from hub_pipelines.connectors.errors import Category
from hub_pipelines.imports.run_health import SESSION_PREFIX
from hub_pipelines.systems import AVAILABLE, SystemEntry
from hub_pipelines_tests.test_deploy import (
    NEEDS,
    SECRET_VARIABLES,
    VARIABLE_NAME,
    WAREHOUSE,
    WAREHOUSE_VARIABLES,
    variables_read_by_code,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OPERATIONS = DOCS / "operations.md"
ARCHITECTURE = DOCS / "architecture.md"
CONNECTOR_PAGES = sorted((DOCS / "connectors").glob("*.md"))
# The pages whose paths and commands are checked (README.md is kept short and checked elsewhere).
PAGES = [*sorted(DOCS.glob("*.md")), *CONNECTOR_PAGES, ROOT / "deploy" / "README.md"]

REFERENCE = "Configuration reference"
REFERENCE_COLUMNS = ["variable", "meaning", "default", "read by", "secret", "example"]
# The parts of a deployment as the reference's "read by" column names them, and the roles of
# test_deploy.NEEDS each stands for.
READERS = {"code": "code", "service": "service", "migrate": "CLI", "dagster": "Dagster"}
# Secret by name, beyond test_deploy's SECRET_VARIABLES (which lists those a deployment wires).
SECRET_NAME = re.compile(r".*(?:PASSWORD|SECRET|TOKEN|_KEY|_KEYS)")

# A connector page's sections: (what, a pattern its heading matches).
CONNECTOR_SECTIONS = {
    "what to set up on the system's side": r"\bset ?up\b",
    "authentication": r"\bauth",
    "limits": r"\blimit",
    "quirks": r"\bquirk",
    "troubleshooting by error category": r"\btroubleshooting by error category\b",
}


# --- reading the pages ----------------------------------------------------------------------------


@functools.cache
def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def headings(text: str) -> list[tuple[int, str, int]]:
    """(level, title, offset) of every Markdown heading outside fenced code."""
    found, fenced, offset = [], False, 0
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) +(.*?)\s*$", line)):
            found.append((len(match.group(1)), match.group(2), offset))
        offset += len(line)
    return found


def section(text: str, pattern: str) -> str:
    """The first section whose heading matches `pattern` (case-insensitive), subsections
    included, heading excluded; '' when there is none."""
    marks = headings(text)
    for index, (level, title, offset) in enumerate(marks):
        if re.search(pattern, title, re.IGNORECASE):
            start = text.index("\n", offset) + 1
            end = next((o for lv, _t, o in marks[index + 1 :] if lv <= level), len(text))
            return text[start:end]
    return ""


def table_rows(text: str) -> Iterator[list[str]]:
    """The body rows of every Markdown table in `text`, as lists of cells."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if all(re.fullmatch(r":?-+:?", cell) for cell in cells):
            continue  # the separator row
        if cells[0].lower() == REFERENCE_COLUMNS[0]:
            continue  # the header row
        yield cells


def code_snippets(text: str) -> Iterator[str]:
    """Shell lines of fenced blocks (comments dropped) and inline code spans."""
    for match in re.finditer(r"```([\w-]*)\n(.*?)```", text, re.DOTALL):
        if match.group(1) in ("", "bash", "sh", "shell", "console"):
            for line in match.group(2).splitlines():
                yield re.sub(r"(^|\s)#.*$", "", line)
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    yield from re.findall(r"`([^`\n]+)`", prose)


# --- the configuration reference --------------------------------------------------------------


def reference_rows(page: str) -> dict[str, list[str]]:
    """Variable -> the cells of its row, from the tables of the page's reference section."""
    text = section(page, rf"^{REFERENCE}$")
    assert text, f"no section {REFERENCE!r}"
    rows: dict[str, list[str]] = {}
    for cells in table_rows(text):
        names = VARIABLE_NAME.findall(cells[0])
        assert len(names) == 1, f"one variable per row: {cells[0]!r}"
        assert names[0] not in rows, f"{names[0]} has two rows in the reference"
        assert len(cells) == len(REFERENCE_COLUMNS), f"{names[0]}: {len(cells)} cells"
        rows[names[0]] = cells
    return rows


@functools.cache
def reference() -> dict[str, list[str]]:
    return reference_rows(read(OPERATIONS))


def test_the_reference_is_read_from_its_tables_only():
    page = (
        "## Configuration reference\n\nProse naming `DAGSTER_PG_HOST` is not a row.\n\n"
        "| variable | meaning | default | read by | secret | example |\n|---|---|---|---|---|---|\n"
        "| `HUB_HOME` | state | `.hub` | code | no | `/srv/hub` |\n\n## Next\n\n"
        "| `HUB_SQL_DIR` | a row of another section | | | | |\n"
    )
    assert list(reference_rows(page)) == ["HUB_HOME"]
    with pytest.raises(AssertionError, match="two rows"):
        reference_rows(page.replace("## Next", "| `HUB_HOME` | again | | code | no | |\n## Next"))


def test_the_reference_documents_every_variable_the_code_reads():
    missing = variables_read_by_code() - set(reference())
    assert not missing, (
        f"the code reads {sorted(missing)}: add a row for each to docs/operations.md, "
        f"'{REFERENCE}' (meaning, default, read by, secret, example)"
    )


def test_the_reference_names_only_variables_the_code_reads():
    extra = set(reference()) - variables_read_by_code()
    assert not extra, f"the reference lists {sorted(extra)}, which no code reads"


def test_every_reference_row_says_what_it_is_and_its_default():
    column = {name: index for index, name in enumerate(REFERENCE_COLUMNS)}
    for variable, cells in reference().items():
        for name in ("meaning", "default", "read by"):
            assert cells[column[name]], f"{variable}: no {name}"
        assert cells[column["secret"]] in ("yes", "no"), f"{variable}: secret is yes or no"


@pytest.mark.parametrize("variable", sorted(variables_read_by_code()))
def test_the_reference_marks_secrets(variable: str):
    secret = variable in SECRET_VARIABLES or bool(SECRET_NAME.fullmatch(variable))
    assert reference()[variable][REFERENCE_COLUMNS.index("secret")] == ("yes" if secret else "no")


def needed_by(variable: str) -> set[str]:
    """The parts test_deploy.NEEDS says must get `variable` (the warehouse's as one)."""
    return {
        READERS[role]
        for role, needs in NEEDS.items()
        if variable in needs or (variable in WAREHOUSE_VARIABLES and WAREHOUSE in needs)
    }


@pytest.mark.parametrize("variable", sorted(variables_read_by_code()))
def test_the_reference_names_the_parts_a_deployment_gives_each_variable(variable: str):
    readers = reference()[variable][REFERENCE_COLUMNS.index("read by")]
    named = set(re.findall(r"\b(code|service|CLI|Dagster)\b", readers))
    assert named, f"{variable}: 'read by' names none of code, service, CLI, Dagster"
    assert needed_by(variable) <= named, f"{variable}: read by {sorted(needed_by(variable))} too"


# --- paths and commands -------------------------------------------------------------------------

PACKAGE_PATH = re.compile(r"hub_pipelines(?:_tests)?/[\w./-]*")
# `hub` at the start of a command: of a line or span, after `$(`, `&&`, `;`, `--` or
# `exec [-T] TARGET` (docker compose exec, kubectl exec), with or without a path to it.
HUB_COMMAND = re.compile(
    r"(?:^|\$\(|&&|;|\s--|\bexec(?:\s+-\w+)*\s+\S+)\s*(?:\S*/)?hub\s+(?P<words>[^`\n]*)"
)
PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*|[<\[(…].*")


def package_paths(text: str) -> Iterator[str]:
    """Every `hub_pipelines/…` path, but placeholders (`hub_pipelines/<system>/protocol.py`)."""
    for match in PACKAGE_PATH.finditer(text):
        following = text[match.end() : match.end() + 1]
        if following in ("<", "{", "*", "…"):
            continue
        yield match.group(0).rstrip(".")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_package_path_in_the_docs_exists(page: Path):
    missing = sorted({p for p in package_paths(read(page)) if not (ROOT / p).exists()})
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def hub_commands(text: str) -> Iterator[list[str]]:
    """The words after `hub` of every command shown in code, but session names (`hub run …`)."""
    for snippet in code_snippets(text):
        if snippet.startswith(SESSION_PREFIX):
            continue
        for match in HUB_COMMAND.finditer(snippet):
            yield match.group("words").split()


def unknown_subcommand(words: list[str]) -> str | None:
    """What is wrong with `hub WORDS`: its group, or its subcommand within the group. Each of
    `list/show/retry` or `list | show` is checked; placeholders (`COMMAND`, `<…>`) are not."""
    parser, said = build_parser(), ["hub"]
    for word in words[:2]:
        choices = subcommands(parser)
        if not choices or word.startswith("-") or PLACEHOLDER.fullmatch(word):
            return None
        alternatives = [w for w in re.split(r"[/|]", word.rstrip(")\"',.;:")) if w]
        unknown = [w for w in alternatives if w not in choices]
        if unknown:
            return f"`{' '.join(said)} {unknown[0]}` (choices: {', '.join(choices)})"
        said.append(alternatives[0])
        parser = choices[alternatives[0]]
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_hub_command_in_the_docs_exists(page: Path):
    wrong = {
        problem for words in hub_commands(read(page)) if (problem := unknown_subcommand(words))
    }
    assert not wrong, f"{page.relative_to(ROOT)} shows commands the CLI lacks: {sorted(wrong)}"


def test_the_path_and_command_checks_catch_what_they_guard_against():
    assert unknown_subcommand(["db", "backup"]) is None
    assert unknown_subcommand(["errors", "list/show/retry"]) is None
    assert unknown_subcommand(["tenants", "add", "TENANT"]) is None
    assert unknown_subcommand(["COMMAND"]) is None
    assert unknown_subcommand(["db", "migrate"]) is not None
    assert unknown_subcommand(["tenant", "add"]) is not None
    page = '`psql "$(hub db url)"` and\n```bash\nhub sync acme xero  # now, hub foo\n```'
    assert list(hub_commands(page)) == [["sync", "acme", "xero"], ["db", 'url)"']]
    assert list(hub_commands("`helm upgrade --install hub dagster/dagster`")) == []
    paths = "`hub_pipelines/<system>/mapping.py`, hub_pipelines/nowhere.py."
    assert list(package_paths(paths)) == ["hub_pipelines/nowhere.py"]


# --- connector pages ------------------------------------------------------------------------------


def test_every_system_has_a_connector_page():
    pages = {page.stem for page in CONNECTOR_PAGES}
    assert set(AVAILABLE) <= pages, f"no docs/connectors/<system>.md for {set(AVAILABLE) - pages}"


@pytest.mark.parametrize("page", CONNECTOR_PAGES, ids=lambda p: p.stem)
@pytest.mark.parametrize("what", sorted(CONNECTOR_SECTIONS))
def test_each_connector_page_has_the_sections_an_engineer_needs(page: Path, what: str):
    titles = [title for _level, title, _offset in headings(read(page))]
    pattern = CONNECTOR_SECTIONS[what]
    assert any(re.search(pattern, t, re.IGNORECASE) for t in titles), (
        f"{page.name} has no section on {what} (a heading matching {pattern!r})"
    )


@pytest.mark.parametrize("page", CONNECTOR_PAGES, ids=lambda p: p.stem)
def test_each_connector_troubleshooting_covers_every_error_category(page: Path):
    text = section(read(page), CONNECTOR_SECTIONS["troubleshooting by error category"])
    missing = [c.value for c in Category if not re.search(rf"\b{c.value}\b", text)]
    assert not missing, f"{page.name}: troubleshooting says nothing about {missing}"


# --- architecture ---------------------------------------------------------------------------------


def test_the_new_system_walkthrough_names_what_a_system_registers():
    text = section(read(ARCHITECTURE), r"^adding a system")
    assert text, "docs/architecture.md has no section 'Adding a system'"
    expected = [
        "hub_pipelines/systems.py",
        "AVAILABLE",
        "SYSTEMS",
        "hub_pipelines_tests/contract/",
        *(f"`{field.name}`" for field in dataclasses.fields(SystemEntry)),
    ]
    missing = [name for name in expected if name not in text]
    assert not missing, f"'Adding a system' does not mention {missing}"
