"""Reading and writing subscriber CSV files as people actually have them, and CSV for spreadsheets."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, TextIO

from ..errors import SubscriberError

KNOWN_COLUMNS = ("email", "name", "keywords", "status", "subscribed_at", "unsubscribed_at")
# Added to a file only once a row needs them (a daily reader, a pause, a web sign-up).
OPTIONAL_COLUMNS = ("frequency", "pause_until", "confirmed_at")
EMAIL_ALIASES = frozenset({"email", "e-mail", "email address", "email_address", "mail"})
DELIMITERS = (",", ";", "\t")
Rows = Generator[tuple[int, list[str]], None, None]
CREATE_FIX = "create it with `newsletter subscribers add` or pass --list"
# A spreadsheet reads a cell starting with one of these as a formula (or strips it and then does).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def canonical(column: str) -> str:
    """Map a header cell to the name we know it by, so 'E-Mail ' and 'email' are one column."""
    name = column.strip().lstrip("\ufeff").lower()
    return "email" if name in EMAIL_ALIASES else name


@dataclass
class CsvLayout:
    """How a file is written (header, delimiter, line ends, BOM) so a rewrite keeps it."""

    header: list[str] = field(default_factory=lambda: list(KNOWN_COLUMNS))
    delimiter: str = ","
    newline: str = "\n"
    bom: bool = False

    def index(self, column: str) -> int | None:
        """Position of a known column, or None when the file does not have it."""
        for position, name in enumerate(self.header):
            if canonical(name) == column:
                return position
        return None

    def ensure(self, column: str) -> int:
        """Position of a column, appending it to the header when the file lacks it."""
        position = self.index(column)
        if position is None:
            self.header.append(column)
            position = len(self.header) - 1
        return position

    @property
    def unknown_columns(self) -> list[tuple[int, str]]:
        """Columns we do not interpret but must carry through every rewrite."""
        return [
            (i, name)
            for i, name in enumerate(self.header)
            if canonical(name) not in KNOWN_COLUMNS + OPTIONAL_COLUMNS
        ]


def missing_list_error(path: Path) -> SubscriberError:
    """The one message for a list file that does not exist."""
    return SubscriberError(f"subscriber list {path.stem} not found", where=str(path), fix=CREATE_FIX)


def open_text(path: Path) -> tuple[TextIO, bool]:
    """The file as UTF-8 text (BOM skipped) and whether it had a BOM; non-UTF-8 fails here, not mid-send."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise missing_list_error(path) from None
    except OSError as exc:
        raise SubscriberError(
            f"cannot read {path.name} ({exc.strerror})",
            where=str(path),
            fix="check the path and its permissions",
        ) from exc
    try:
        bom = _check_utf8(raw, path)
    except BaseException:
        raw.close()
        raise
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), bom


def _check_utf8(raw: BinaryIO, path: Path) -> bool:
    # Decode in chunks so a 100,000-row list is checked without holding its text in memory.
    decoder = codecs.getincrementaldecoder("utf-8")()
    first = raw.read(1 << 20)
    bom = first.startswith(codecs.BOM_UTF8)
    chunk = first
    try:
        while chunk:
            decoder.decode(chunk)
            chunk = raw.read(1 << 20)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raw.seek(0)
        _raise_not_utf8(raw.read(), path)
    raw.seek(0)
    return bom


def _raise_not_utf8(data: bytes, path: Path) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SubscriberError(
            f"{path.name} is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})",
            where=f"{path}:{line}",
            fix="save it as UTF-8, e.g. 'CSV UTF-8' in a spreadsheet",
        ) from exc


def detect_layout(header_line: str, bom: bool, path: Path) -> CsvLayout:
    """Find the delimiter that yields an email column; a header without one is a file-level error."""
    newline = "\r\n" if header_line.endswith("\r\n") else "\n"
    text = header_line.rstrip("\r\n")
    if not text.strip():
        raise SubscriberError(
            f"{path.name} has no header row",
            where=f"{path}:1",
            fix="put the column names on the first line, e.g. email,name,keywords",
        )
    for delimiter in DELIMITERS:
        cells = next(csv.reader([text], delimiter=delimiter))
        if "email" in (canonical(cell) for cell in cells):
            header = [cell.strip().lstrip("\ufeff") for cell in cells]
            return CsvLayout(header=header, delimiter=delimiter, newline=newline, bom=bom)
    raise SubscriberError(
        f"{path.name} has no 'email' column",
        where=f"{path}:1",
        fix="name the address column 'email' in the header row",
    )


def read_rows(path: Path) -> tuple[CsvLayout, Rows]:
    """The layout and a stream of (line number, fields) for every non-blank data row."""
    stream, bom = open_text(path)
    try:
        layout = detect_layout(stream.readline(), bom, path)
    except BaseException:
        stream.close()
        raise
    return layout, _rows(stream, layout.delimiter, path)


def read_layout(path: Path) -> CsvLayout:
    """Just the header and dialect, closing the file at once."""
    stream, bom = open_text(path)
    with stream:
        return detect_layout(stream.readline(), bom, path)


def _rows(stream: TextIO, delimiter: str, path: Path) -> Rows:
    with stream:
        reader = csv.reader(stream, delimiter=delimiter, strict=False)
        consumed = 1  # the header line
        start = 2
        last: list[str] = []
        try:
            for fields in reader:
                start = consumed + 1  # a quoted field may span lines; report where the row begins
                consumed = 1 + reader.line_num
                last = fields
                if any(cell.strip() for cell in fields):
                    yield start, fields
        except csv.Error:
            raise unclosed_quote_error(path, consumed + 1) from None  # the row being read began there
        # A last field ending in a line break ran to the end of the file: its quote never closed.
        if consumed - start > 1 and last and last[-1].endswith(("\n", "\r")):
            raise unclosed_quote_error(path, start)


def unclosed_quote_error(path: Path, line: int) -> SubscriberError:
    """A `"` that opens a field and never closes swallows every row after it: say where it opened."""
    return SubscriberError(
        f'a quote (") opened on line {line} of {path.name} is never closed, so the rows after it '
        "cannot be read",
        where=f"{path}:{line}",
        fix='remove the stray " on that line, or close the quoted field',
    )


class TextSink(Protocol):
    """Where rows are written: a text file or a string buffer (`write` returns the characters written)."""

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

    def writerow(self, row: list[str]) -> int:
        """Write one row; returns how many UTF-8 bytes it took (where the next row starts)."""
        joined = "".join(row)  # one search in C, not one per cell: this runs for every row of a compaction
        if self.newline == "\r\n" or ("\r" not in joined and "\n" not in joined):
            written = int(self.plain.writerow(row))  # what out.write returned: characters
        else:
            self.buffer.seek(0)
            self.buffer.truncate()
            self.quoting.writerow(row)
            written = self.out.write(self.buffer.getvalue()[:-2] + self.newline)
        # Only cells hold non-ASCII characters (delimiters, quotes and line ends are ASCII).
        return written if joined.isascii() else written + len(joined.encode("utf-8")) - len(joined)


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (OWASP CSV injection advice)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_spreadsheet(
    out: TextSink, header: list[str], rows: Iterable[list[str]], *, raw: bool = False
) -> int:
    """CSV people open in a spreadsheet (exports, reports): formula cells defused unless raw; returns rows."""
    writer = RowWriter(out)
    cell = (lambda text: text) if raw else spreadsheet_safe
    writer.writerow([cell(name) for name in header])
    count = 0
    for row in rows:
        writer.writerow([cell(text) for text in row] + [""] * (len(header) - len(row)))
        count += 1
    return count


def render(
    layout: CsvLayout,
    rows: Iterable[list[str]],
    out: TextSink,
    on_row: Callable[[list[str], int], None] | None = None,
) -> None:
    """Write header and rows in the file's own dialect, padding short rows to the header.

    `on_row` is given each data row and the byte offset it starts at (an index notes it).
    """
    offset = 0
    if layout.bom:
        out.write("\ufeff")
        offset = len(codecs.BOM_UTF8)
    writer = RowWriter(out, delimiter=layout.delimiter, newline=layout.newline)
    if header_reads_back(layout):
        offset += writer.writerow(layout.header)
    else:  # a column name holding another delimiter: quoted, it cannot be split as that dialect
        every = csv.writer(
            out, delimiter=layout.delimiter, lineterminator=layout.newline, quoting=csv.QUOTE_ALL
        )
        line = "".join(layout.header)
        offset += int(every.writerow(layout.header)) + len(line.encode("utf-8")) - len(line)
    width = len(layout.header)
    for row in rows:
        if len(row) < width:
            row = row + [""] * (width - len(row))
        if on_row is None:
            writer.writerow(row)
        else:
            on_row(row, offset)
            offset += writer.writerow(row)


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
