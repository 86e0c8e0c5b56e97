"""Replaying recorded answers: `hub simulate SYSTEM --from DIR` serves the records found in DIR's
files through the system's simulator, so captured payloads import through the normal path.

A file holds one of the system's own response bodies (a list or a detail answer), or a recording
that wraps them under `api.<method>.<path>.response` (one recording or a list of them, as
Nango's integration tests store them). What a system's `replay(paths)` cannot serve is a
`ReplayError` naming the file and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 256 * 1024 * 1024


class ReplayError(ValueError):
    """A file a simulator cannot replay; the message names the file and the problem."""


# Captured answers: JSON bodies or recordings, and XML for the desktop systems (Tally, BUSY).
REPLAY_SUFFIXES = (".json", ".xml")


def files_in(folder: str | Path) -> list[Path]:
    """The JSON and XML files of a folder (sorted, not recursive); a file path is taken as
    itself."""
    path = Path(folder).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ReplayError(f"{folder}: no such folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in REPLAY_SUFFIXES)
    if not files:
        raise ReplayError(f"{folder}: no .json or .xml files in it (response bodies or recordings)")
    return files


def read_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ReplayError(f"{path}: larger than 256 MiB; split it into pages")
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ReplayError(f"{path}: not UTF-8 text (byte offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ReplayError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read it: {exc.strerror}") from None


def response_bodies(document: Any) -> Iterator[Any]:
    """A response body as is, or each recorded `api.<method>.<path>.response` of a recording."""
    api = document.get("api") if isinstance(document, dict) else None
    if not isinstance(api, dict):
        yield document
        return
    for by_path in api.values():
        for recordings in (by_path or {}).values():
            for recording in recordings if isinstance(recordings, list) else [recordings]:
                if isinstance(recording, dict) and "response" in recording:
                    yield recording["response"]


def records_by_kind(
    paths: list[Path],
    kinds: dict[str, tuple[str, ...]],
    system_label: str,
    id_fields: dict[str, str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The records of each kind found in the files: `kinds` maps a kind (e.g. "invoices") to the
    body keys holding it (list keys and detail keys, e.g. ("invoices", "invoice")). Records are
    dicts carrying their kind's id field (`id_fields`); a file without any is refused, naming
    the keys a body of this system has."""
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for path in paths:
        count = 0
        for body in response_bodies(read_json(path)):
            for kind, keys in kinds.items():
                for key in keys:
                    items = _items(path, body, key, (id_fields or {}).get(kind))
                    found[kind].extend(items)
                    count += len(items)
        if not count:
            expected = ", ".join(f'{{"{key}": …}}' for keys in kinds.values() for key in keys)
            raise ReplayError(
                f"{path}: no {system_label} records in it; expected response bodies such as "
                f"{expected}, or a recording holding them under api.<method>.<path>.response"
            )
    return found


def _items(path: Path, body: Any, key: str, id_field: str | None) -> list[dict[str, Any]]:
    value = body.get(key) if isinstance(body, dict) else None
    items = value if isinstance(value, list) else [value] if value else []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ReplayError(f"{path}: {key}[{index}] is not a JSON object")
        if id_field and not item.get(id_field):
            raise ReplayError(f"{path}: {key}[{index}] has no {id_field}")
    return items
