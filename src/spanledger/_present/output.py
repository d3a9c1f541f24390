"""Writing records out: JSON (indented, exact money) and CSV (the same columns, safe to open in a spreadsheet)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_json(obj: Any, out: IO[str]) -> None:
    """``obj`` (already plain: see :mod:`.records`) as indented JSON."""
    json.dump(obj, out, indent=2, ensure_ascii=False)
    out.write("\n")


def cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula (ids come from untrusted spans): a text starting
    with ``= + - @`` or a control character gets a leading ``'``; lists and maps are written as JSON."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, str) and text[:1] in _FORMULA_START:
        return "'" + text
    return text


def csv_lines(records: Iterable[Mapping[str, Any]], columns: Sequence[str], *, header: bool = True) -> Iterable[str]:
    """CSV text, a header line first, then one line per record (for streaming, one string per record)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
        yield buffer.getvalue()
    for record in records:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([cell(record.get(name)) for name in columns])
        yield buffer.getvalue()


def write_csv(records: Iterable[Mapping[str, Any]], out: IO[str], *, columns: Sequence[str]) -> None:
    """A header line, then one line per record (the header is written even when there are no rows)."""
    for line in csv_lines(records, columns):
        out.write(line)
