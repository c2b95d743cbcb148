"""Reading subscriber CSV files strictly, one row per line, and writing them in their own dialect.

A row is one line: a quoted cell that swallows a line break is a stray quote, so it is refused
at the line where it opened, as is a row with more or fewer cells than the header. That one rule
is what lets a sync find the rows an edit changed by their lines alone (see csvsync).
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Protocol

from ..errors import SubscriberError
from ..text import scrub_cells

KNOWN_COLUMNS = ("email", "name", "keywords", "status", "subscribed_at", "unsubscribed_at")
# Added to a file only once a row needs them (a daily reader, a pause, a web sign-up, a send).
OPTIONAL_COLUMNS = ("frequency", "pause_until", "confirmed_at", "last_issue")
EMAIL_ALIASES = frozenset({"email", "e-mail", "email address", "email_address", "mail"})
# What other tools call our columns: `import` maps them, a list file is told to rename them.
ALIASES = {
    "topics": "keywords",
    "interests": "keywords",
    "tags": "keywords",
    "full name": "name",
    "full_name": "name",
    "display name": "name",
}
DELIMITERS = (",", ";", "\t")
BOM = b"\xef\xbb\xbf"
CREATE_FIX = "create it with `newsletter subscribers add` or pass --list"
QUOTE_FIX = 'remove the stray " on that line, or close the quoted field'
# The columns a row is read by, in the order `CsvLayout.known_cells` gives their cells.
PARSED_COLUMNS = KNOWN_COLUMNS + OPTIONAL_COLUMNS[:3]
# A header's cells, what each stands for, each column's first position, the unknown ones, and
# the picker of a row's PARSED_COLUMNS cells.
Positions = tuple[
    list[str] | None,
    list[str],
    dict[str, int],
    list[tuple[int, str]],
    Callable[[Sequence[str]], tuple[str, ...]],
]
# A spreadsheet reads a cell starting with one of these as a formula (or strips it and then does).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def canonical(column: str) -> str:
    """Map a header cell to the name we know it by, so 'E-Mail ' and 'email' are one column."""
    name = column.strip().lstrip("\ufeff").lower()
    return "email" if name in EMAIL_ALIASES else name


class RowError(ValueError):
    """One row cannot be used; the message is the reason shown after file:line.

    `broken` rows (a stray quote, the wrong number of cells) mean the file itself is damaged:
    even an import that skips bad rows refuses the whole file then.
    """

    def __init__(self, reason: str, fix: str | None = None, broken: bool = False) -> None:
        super().__init__(reason)
        self.fix = fix
        self.broken = broken


@dataclass
class CsvLayout:
    """How a file is written (header, delimiter, line ends, BOM) so a rewrite keeps it."""

    header: list[str] = field(default_factory=lambda: list(KNOWN_COLUMNS))
    delimiter: str = ","
    newline: str = "\n"
    bom: bool = False
    renamed: dict[str, str] = field(default_factory=dict)  # an imported file's aliases

    _seen: Positions = field(default=(None, [], {}, [], tuple), init=False, repr=False, compare=False)

    def name_of(self, column: str) -> str:
        """The column a header cell stands for."""
        name = canonical(column)
        return self.renamed.get(name, name)

    @property
    def names(self) -> list[str]:
        """name_of each header cell, worked out again only when the header changed (per row)."""
        return self._positions()[1]

    def _positions(self) -> Positions:
        if self._seen[0] != self.header:  # a list compared in C: asked for on every row
            names = [self.name_of(cell) for cell in self.header]
            first: dict[str, int] = {}
            for position, name in enumerate(names):
                first.setdefault(name, position)
            known = KNOWN_COLUMNS + OPTIONAL_COLUMNS
            unknown = [
                (i, cell)
                for i, (cell, name) in enumerate(zip(self.header, names, strict=True))
                if name not in known
            ]
            # A column the file lacks is picked from the "" put after each row's cells.
            pick = itemgetter(*(first.get(column, -1) for column in PARSED_COLUMNS))
            self._seen = (list(self.header), names, first, unknown, pick)
        return self._seen

    def known_cells(self, cells: Sequence[str]) -> tuple[str, ...]:
        """A row's cells of PARSED_COLUMNS ('' for a column the file lacks) in one C call: a
        million-row import asks this of every row."""
        width = len(self.header)
        short = width - len(cells)
        row = (*cells, "") if not short else (*cells[:width], *[""] * max(short, 0), "")
        return self._positions()[4](row)

    def index(self, column: str) -> int | None:
        """Position of a known column, or None when the file does not have it."""
        return self._positions()[2].get(column)

    def ensure(self, column: str) -> int:
        """Position of a column, adding it to the header when the file lacks it (before a last
        `last_issue`, which stays last: a row's digest leaves that cell out)."""
        position = self.index(column)
        if position is None:
            position = len(self.header) - 1 if self.last_issue_last else len(self.header)
            self.header.insert(position, column)
        return position

    @property
    def unknown_columns(self) -> list[tuple[int, str]]:
        """Columns we do not interpret but must carry through every rewrite."""
        return self._positions()[3]

    @property
    def last_issue_last(self) -> bool:
        """Whether the store's own column ends every row (a row's digest then leaves it out)."""
        return self.index("last_issue") == len(self.header) - 1

    def to_json(self) -> str:
        """What the database keeps of a file's layout."""
        return json.dumps([self.header, self.delimiter, self.newline, self.bom], ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CsvLayout:
        header, delimiter, newline, bom = json.loads(text)
        return cls(list(header), delimiter, newline, bool(bom))


def missing_list_error(path: Path) -> SubscriberError:
    """The one message for a list that does not exist."""
    return SubscriberError(f"subscriber list {path.stem} not found", where=str(path), fix=CREATE_FIX)


def open_lines(path: Path, aliases: bool = False) -> tuple[CsvLayout, BinaryIO]:
    """The file's layout from its header, and the file positioned at its first data line."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise missing_list_error(path) from None
    except OSError as exc:
        raise SubscriberError(
            f"cannot read {path.name} ({exc.strerror})",
            where=str(path),
            fix="check the path and its permissions",
        ) from exc
    try:
        first = handle.readline()
        bom = first.startswith(BOM)
        header = decode(first[3:] if bom else first, path, 1, 3 if bom else 0)
        return detect_layout(header, bom, path, aliases), handle
    except BaseException:
        handle.close()
        raise


def data_lines(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the line end) of every line after the header; closes the file."""
    with handle:
        for number, raw in enumerate(handle, start=2):
            yield number, raw.rstrip(b"\n").removesuffix(b"\r")


def decode(raw: bytes, path: Path, line: int, offset: int) -> str:
    """A line as text; a file that is not UTF-8 fails here, naming the line and the byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubscriberError(
            f"{path.name} is not UTF-8 text "
            f"(byte {raw[exc.start]:#04x}, byte {offset + exc.start + 1} of the line)",
            where=f"{path}:{line}",
            fix="save it as UTF-8, e.g. 'CSV UTF-8' in a spreadsheet",
        ) from exc


def detect_layout(header_line: str, bom: bool, path: Path, aliases: bool = False) -> CsvLayout:
    """Find the delimiter that yields an email column, then check every column name."""
    newline = "\r\n" if header_line.endswith("\r\n") else "\n"
    text = header_line.rstrip("\r\n").lstrip("\ufeff")
    if not text.strip():
        raise SubscriberError(
            f"{path.name} has no header row",
            where=f"{path}:1",
            fix="put the column names on the first line, e.g. email,name,keywords",
        )
    for delimiter in DELIMITERS:
        cells = next(csv.reader([text], delimiter=delimiter))
        if "email" in (canonical(cell) for cell in cells):
            layout = CsvLayout([c.strip() for c in cells], delimiter, newline, bom)
            check_columns(layout, path, aliases)
            return layout
    raise SubscriberError(
        f"{path.name} has no 'email' column",
        where=f"{path}:1",
        fix="name the address column 'email' in the header row",
    )


def check_columns(layout: CsvLayout, path: Path, aliases: bool) -> None:
    """A misspelt or foreign name for one of our columns would drop its values silently: refuse it.

    `import` (aliases) takes the usual names of other tools for them instead.
    """
    known = KNOWN_COLUMNS + OPTIONAL_COLUMNS
    seen: set[str] = set()
    for cell in layout.header:
        name = canonical(cell)
        if aliases and name in ALIASES and ALIASES[name] not in seen:
            layout.renamed[name] = ALIASES[name]
            name = ALIASES[name]
        meant = ALIASES.get(name) or next(iter(difflib.get_close_matches(name, known, 1, 0.85)), None)
        meant = meant or next((k for k in known if sorted(k) == sorted(name)), None)  # 'nmae'

        if name not in known and meant is not None:
            raise SubscriberError(
                f"{path.name} has a column '{cell}': did you mean `{meant}`?",
                where=f"{path}:1",
                fix=f"rename the column to {meant} (its values are not read under another name)",
            )
        if name in seen:
            raise SubscriberError(
                f"{path.name} has the column '{cell}' twice", where=f"{path}:1", fix="keep one of them"
            )
        seen.add(name)


def split_line(layout: CsvLayout, raw: bytes, path: Path, line: int) -> list[str]:
    """The cells of one data line; RowError for a stray quote or the wrong number of cells."""
    text = decode(raw, path, line, 0)
    if "\r" in text:
        raise RowError("a line break inside a cell", fix="put the cell on one line", broken=True)
    try:
        cells = next(csv.reader([text], delimiter=layout.delimiter, strict=True))
    except csv.Error:
        raise RowError(
            f'a quote (") opened on line {line} of {path.name} is never closed, so the rows after it '
            "cannot be read",
            fix=QUOTE_FIX,
            broken=True,
        ) from None
    width = len(layout.header)
    if len(cells) != width:
        hint = "an unquoted delimiter?" if len(cells) > width else "a missing delimiter?"
        raise RowError(f"{len(cells)} fields but the header has {width} ({hint})", broken=True)
    return cells


def split_lines(layout: CsvLayout, lines: list[bytes]) -> list[list[str]] | None:
    """The cells of many good lines with one reader for them all (what makes a big import fast);
    None when any is not good: split_line, one at a time, then says which and why."""
    joined = b"\n".join(lines)  # decoded in one call, not one per line
    if b"\r" in joined:
        return None
    try:
        rows = list(csv.reader(joined.decode("utf-8").split("\n"), delimiter=layout.delimiter, strict=True))
    except (UnicodeDecodeError, csv.Error):
        return None
    width = len(layout.header)
    return rows if len(rows) == len(lines) and all(len(row) == width for row in rows) else None


class TextSink(Protocol):
    """Where rows are written: a text file or a string buffer."""

    def write(self, text: str, /) -> int: ...


class RowWriter:
    """csv.writer that also quotes a cell holding a line break its line ending lacks.

    csv.writer quotes only the characters of its own line terminator, so with "\n" a bare "\r"
    went out unquoted and the next read split the row in two.
    """

    def __init__(self, out: TextSink, *, delimiter: str = ",", newline: str = "\n") -> None:
        self.out, self.newline = out, newline
        self.plain = csv.writer(out, delimiter=delimiter, lineterminator=newline)
        self.buffer = io.StringIO()
        self.quoting = csv.writer(self.buffer, delimiter=delimiter, lineterminator="\r\n")

    def writerow(self, row: list[str]) -> None:
        joined = "".join(row)  # one search in C, not one per cell: this runs for every row of a list
        if self.newline == "\r\n" or ("\r" not in joined and "\n" not in joined):
            self.plain.writerow(row)
            return
        self.buffer.seek(0)
        self.buffer.truncate()
        self.quoting.writerow(row)
        self.out.write(self.buffer.getvalue()[:-2] + self.newline)


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (OWASP CSV injection advice)."""
    # After leading spaces too: a control that started the cell is a space once scrubbed.
    return "'" + text if text.lstrip(" ").startswith(FORMULA_STARTS) else text


def write_spreadsheet(
    out: TextSink, header: list[str], rows: Iterable[list[str]], *, raw: bool = False
) -> int:
    """CSV people open in a spreadsheet (exports, reports): formula cells defused unless raw; returns rows.

    Control and bidi characters never go out, raw or not: a terminal showing the file would obey them.
    """
    writer = RowWriter(out)
    cell = (lambda text: text) if raw else spreadsheet_safe
    writer.writerow([cell(name) for name in scrub_cells(header)])
    count = 0
    for row in rows:
        writer.writerow([cell(text) for text in scrub_cells(row)] + [""] * (len(header) - len(row)))
        count += 1
    return count


def render(layout: CsvLayout, rows: Iterable[list[str]], out: TextSink) -> None:
    """Write header and rows in the file's own dialect, padding short rows to the header."""
    if layout.bom:
        out.write("\ufeff")
    writer = RowWriter(out, delimiter=layout.delimiter, newline=layout.newline)
    if header_reads_back(layout):
        writer.writerow(layout.header)
    else:  # a column name holding another delimiter: quoted, it cannot be split as that dialect
        every = csv.writer(
            out, delimiter=layout.delimiter, lineterminator=layout.newline, quoting=csv.QUOTE_ALL
        )
        every.writerow(layout.header)
    width = len(layout.header)
    for row in rows:  # a row is one line: a line break in a cell (which reading refuses) is a space
        writer.writerow(scrub_cells(row) + [""] * (width - len(row)))


def header_reads_back(layout: CsvLayout) -> bool:
    """Whether the header, written as usual, is read back with its delimiter and email column.

    `email;"x,email"` is read with ';' (',' gives no email column), but written back unquoted as
    `email;x,email` it would be read with ',', and every row after it with it.
    """
    line = io.StringIO()
    RowWriter(line, delimiter=layout.delimiter, newline=layout.newline).writerow(layout.header)
    try:
        again = detect_layout(line.getvalue(), layout.bom, Path("header"))
    except SubscriberError:
        return False
    return (again.delimiter, again.index("email")) == (layout.delimiter, layout.index("email"))
