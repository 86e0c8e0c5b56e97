"""The reference section of docs/analysts.md, generated from the database's own comments.

    python -m hub_pipelines.analytics.schema_doc            # rewrite the section
    python -m hub_pipelines.analytics.schema_doc --check    # exit 1 when it is out of date

It reads the configured warehouse (HUB_DATABASE_URL, DATABASE_*, else the embedded server; or
--database-url), which must be migrated (`hub db upgrade`): the COMMENTs of sql/ are the source,
so a column documented in a migration is documented here, in the same words.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

from hub_pipelines.warehouse import db

SCHEMA = "accounting"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"
BEGIN = (
    "<!-- BEGIN REFERENCE: generated from the database comments by "
    "`python -m hub_pipelines.analytics.schema_doc`; edit the COMMENTs in sql/, not this. -->"
)
END = "<!-- END REFERENCE -->"
KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view"}

RELATIONS_SQL = """
SELECT c.oid, c.relname, c.relkind, obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm')
ORDER BY c.relkind <> 'r', c.relname
"""
COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum)
FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str | None


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str
    comment: str | None
    columns: list[Column]


def read_schema(
    conn: psycopg.Connection, schema: str = SCHEMA
) -> tuple[str | None, list[Relation]]:
    """The schema's comment and its tables and views (tables first), each with its columns."""
    (comment,) = conn.execute(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
        (schema,),
    ).fetchone()
    relations = []
    for oid, name, kind, described in conn.execute(RELATIONS_SQL, (schema,)).fetchall():
        columns = [Column(*row) for row in conn.execute(COLUMNS_SQL, (oid,)).fetchall()]
        relations.append(Relation(f"{schema}.{name}", KINDS[kind], described, columns))
    return comment, relations


def _cell(text: str | None) -> str:
    return (text or "(no comment)").replace("|", "\\|").replace("\n", " ")


def render(conn: psycopg.Connection, schema: str = SCHEMA) -> str:
    """The reference section, markers included."""
    comment, relations = read_schema(conn, schema)
    lines = [BEGIN, "", f"### Schema `{schema}`", "", _cell(comment), ""]
    for relation in relations:
        lines += [f"### `{relation.name}` ({relation.kind})", "", _cell(relation.comment), ""]
        lines += ["| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | `{c.type}` | {_cell(c.comment)} |" for c in relation.columns]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def current_section(document: str) -> str:
    """The generated section of a document, markers included ('' when it has none)."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        return ""
    return document[start : end + len(END)]


def updated(document: str, section: str) -> str:
    existing = current_section(document)
    if not existing:
        raise ValueError(f"{DOCS.name} has no reference markers ({BEGIN[:30]}… {END})")
    return document.replace(existing, section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub_pipelines.analytics.schema_doc")
    parser.add_argument("--check", action="store_true", help="exit 1 when the docs differ")
    parser.add_argument("--database-url", help="a migrated warehouse (default: the configured)")
    parser.add_argument("--docs", type=Path, default=DOCS, help=f"default: {DOCS}")
    args = parser.parse_args(argv)
    with db.connect(args.database_url) as conn:
        section = render(conn)
    document = args.docs.read_text()
    if args.check:
        if current_section(document) == section:
            print(f"{args.docs}: the reference matches the database comments")
            return 0
        print(
            f"{args.docs}: the reference differs from the database comments; run "
            "`python -m hub_pipelines.analytics.schema_doc` to regenerate it",
            file=sys.stderr,
        )
        return 1
    args.docs.write_text(updated(document, section))
    print(f"{args.docs}: reference regenerated from the database comments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
