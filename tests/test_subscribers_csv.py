"""Awkward CSV files as people have them, each with its expected outcome, and their dialect kept
when the list is written back into them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.lists import store_of

from newsletter.errors import SubscriberError
from newsletter.statuses import SubscriberStatus
from newsletter.store.subscribers import SubscriberStore
from newsletter.subscribers.importing import import_file
from newsletter.subscribers.rows import RowProblem, new_subscriber, read_subscribers
from newsletter.subscribers.writeback import write_back

FIXTURES = Path(__file__).parent / "fixtures" / "subscribers"


def copy(name: str, tmp_path: Path, as_name: str | None = None) -> Path:
    target = tmp_path / "subscribers" / (as_name or name)
    target.parent.mkdir(exist_ok=True)
    shutil.copy(FIXTURES / name, target)
    return target


def problems_in(path: Path) -> list[str]:
    found: list[RowProblem] = []
    for _ in read_subscribers(path, on_problem=found.append):
        pass
    return [str(p).replace(str(path.parent) + "/", "") for p in found]


@pytest.mark.parametrize(
    "name, emails",
    [
        ("bom_crlf_quoted.csv", ["ada@example.org", "bob@example.org", "carol@example.org"]),
        ("semicolon.csv", ["ada@example.org", "bob@example.org"]),
        ("tab.tsv", ["ada@example.org", "bob@example.org"]),
        ("trailing_blank_lines.csv", ["ada@example.org", "bob@example.org"]),
        ("header_only.csv", []),
    ],
)
def test_awkward_but_valid_files_read_without_problems(name: str, emails: list[str], tmp_path: Path) -> None:
    path = copy(name, tmp_path, "news.csv")
    assert problems_in(path) == []
    assert [s.email for s in store_of(path).read()] == emails


def test_quoted_fields_keep_commas_quotes_and_keyword_lists(tmp_path: Path) -> None:
    ada, bob, carol = store_of(copy("bom_crlf_quoted.csv", tmp_path)).read()
    assert ada.name == "Lovelace, Ada" and ada.keywords == ["reward models", "RLHF"]
    assert bob.name == 'Bob "The Builder" Stein' and bob.status == "active"
    assert carol.status == "unsubscribed"
    assert store_of(copy("semicolon.csv", tmp_path)).read()[0].keywords == ["diffusion", "music"]
    assert store_of(copy("tab.tsv", tmp_path, "tab.csv")).read()[0].name == "Ada, Countess"


def test_validate_reports_every_bad_row_with_its_line(tmp_path: Path) -> None:
    assert problems_in(copy("bad_rows.csv", tmp_path)) == [
        "bad_rows.csv:3: 'bob@' is not a valid address: There must be something after the @-sign.",
        "bad_rows.csv:4: status 'paused' is not one of active, unsubscribed, bounced, pending",
        "bad_rows.csv:5: subscribed_at 'last tuesday' is not an ISO 8601 date",
        "bad_rows.csv:6: 6 fields but the header has 5 (an unquoted delimiter?)",
        "bad_rows.csv:7: duplicate of 'ADA@Example.org' on line 2",
        "bad_rows.csv:8: email is empty",
    ]


def test_any_other_command_stops_at_the_first_bad_row_and_applies_nothing(tmp_path: Path) -> None:
    path = copy("bad_rows.csv", tmp_path)
    with pytest.raises(SubscriberError) as caught:
        store_of(path)
    assert caught.value.where == f"{path}:3"
    assert not store_of(path, sync=False).exists()


def test_a_quoted_cell_that_spans_lines_is_refused_where_its_quote_opened(tmp_path: Path) -> None:
    path = copy("multiline_field.csv", tmp_path)
    with pytest.raises(SubscriberError) as caught:
        store_of(path)
    assert caught.value.where == f"{path}:2" and "never closed" in caught.value.what


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "latin1.csv",
            (
                "latin1.csv is not UTF-8 text (byte 0xe9, byte 21 of the line), in {path}:3, "
                "save it as UTF-8, e.g. 'CSV UTF-8' in a spreadsheet"
            ),
        ),
        (
            "no_email_column.csv",
            (
                "no_email_column.csv has no 'email' column, in {path}:1, "
                "name the address column 'email' in the header row"
            ),
        ),
        (
            "empty.csv",
            (
                "empty.csv has no header row, in {path}:1, "
                "put the column names on the first line, e.g. email,name,keywords"
            ),
        ),
    ],
)
def test_unreadable_files_are_one_line_errors(name: str, message: str, tmp_path: Path) -> None:
    path = copy(name, tmp_path)
    with pytest.raises(SubscriberError) as caught:
        store_of(path)
    assert caught.value.message == message.format(path=path)
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("name", ["latin1.csv", "no_email_column.csv", "empty.csv", "multiline_field.csv"])
def test_importing_an_unreadable_or_damaged_file_changes_nothing(name: str, tmp_path: Path) -> None:
    store = store_of(copy("semicolon.csv", tmp_path))
    with pytest.raises(SubscriberError):
        import_file(store, FIXTURES / name)
    assert [s.email for s in store.read()] == ["ada@example.org", "bob@example.org"]


def _changed_and_written(path: Path) -> SubscriberStore:
    store = store_of(path)
    store.set_status("bob@example.org", SubscriberStatus.UNSUBSCRIBED)
    write_back(store, path)
    return store


def test_unknown_columns_and_their_order_survive_a_write_back(tmp_path: Path) -> None:
    path = copy("unknown_columns.csv", tmp_path)
    store = store_of(path)
    store.add(new_subscriber("cy@example.org", name="Cy", extra={"team": "green"}))
    _changed_and_written(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "team,email,joined_via,name,status,note,unsubscribed_at,subscribed_at"
    assert lines[1] == 'red,ada@example.org,web,Ada,active,"likes ""quotes""",,'
    assert lines[2].startswith("blue,bob@example.org,import,Bob,unsubscribed,,20")
    assert lines[3].startswith("green,cy@example.org,,Cy,active,,,20")


@pytest.mark.parametrize("name", ["bom_crlf_quoted.csv", "semicolon.csv", "tab.tsv"])
def test_a_write_back_keeps_the_files_own_dialect(name: str, tmp_path: Path) -> None:
    path = copy(name, tmp_path, "news.csv")
    original = (FIXTURES / name).read_bytes()
    store = _changed_and_written(path)
    rewritten = path.read_bytes()
    assert rewritten[:3] == original[:3]  # BOM kept where there was one
    header = original.splitlines(keepends=True)[0]
    new_header = rewritten.splitlines(keepends=True)[0]
    assert new_header.startswith(header.rstrip(b"\r\n"))
    assert new_header.endswith(b"\r\n") == header.endswith(b"\r\n")  # line ends kept
    assert [s.status for s in store_of(path).read() if s.key == "bob@example.org"] == ["unsubscribed"]
    assert store.get("bob@example.org") is not None


@pytest.mark.parametrize(
    "header, written",
    [
        ('email;"x,email"', '"email";"x,email"'),  # read with ';': unquoted it would read with ','
        ('email\t"x;email"', '"email"\t"x;email"'),  # read with tab: unquoted, with ';'
        ('email,"x;email",name', "email,x;email,name"),  # reads back the same: left as it was
    ],
)
def test_a_column_name_holding_another_delimiter_keeps_the_dialect_through_a_write_back(
    header: str, written: str, tmp_path: Path
) -> None:
    path = tmp_path / "subscribers" / "news.csv"
    path.parent.mkdir()
    delimiter = "\t" if "\t" in header else "," if header.startswith("email,") else ";"
    width = len(header.split(delimiter))
    pad = delimiter * (width - 2)
    path.write_text(
        f"{header}\nada@example.org{delimiter}1{pad}\nbob@example.org{delimiter}2{pad}\n", encoding="utf-8"
    )
    store = store_of(path)
    store.remove("bob@example.org")
    write_back(store, path)
    assert path.read_text(encoding="utf-8").splitlines()[0] == written
    assert [s.email for s in store_of(path).read()] == ["ada@example.org"]
    assert problems_in(path) == []
