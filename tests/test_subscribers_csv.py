"""Awkward CSV files as people have them, each with its expected outcome."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from newsletter.errors import SubscriberError
from newsletter.statuses import SubscriberStatus
from newsletter.subscribers import SubscriberStore
from newsletter.subscribers.importing import import_file

FIXTURES = Path(__file__).parent / "fixtures" / "subscribers"


def copy(name: str, tmp_path: Path) -> SubscriberStore:
    target = tmp_path / name
    shutil.copy(FIXTURES / name, target)
    return SubscriberStore(target)


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
    store = copy(name, tmp_path)
    assert store.validate() == []
    assert [s.email for s in store.read()] == emails


def test_quoted_fields_keep_commas_quotes_and_keyword_lists(tmp_path: Path) -> None:
    ada, bob, carol = copy("bom_crlf_quoted.csv", tmp_path).read()
    assert ada.name == "Lovelace, Ada" and ada.keywords == ["reward models", "RLHF"]
    assert bob.name == 'Bob "The Builder" Stein' and bob.status == "active"
    assert carol.status == "unsubscribed"
    assert copy("semicolon.csv", tmp_path).read()[0].keywords == ["diffusion", "music"]
    assert copy("tab.tsv", tmp_path).read()[0].name == "Ada, Countess"


def test_bad_rows_are_reported_with_their_lines_and_skipped(tmp_path: Path) -> None:
    store = copy("bad_rows.csv", tmp_path)
    problems = [str(p).replace(str(tmp_path) + "/", "") for p in store.validate()]
    assert problems == [
        "bad_rows.csv:3: 'bob@' is not a valid address: There must be something after the @-sign.",
        "bad_rows.csv:4: status 'paused' is not one of active, unsubscribed, bounced, pending",
        "bad_rows.csv:5: subscribed_at 'last tuesday' is not an ISO 8601 date",
        "bad_rows.csv:6: 6 fields but the header has 5 (an unquoted delimiter?)",
        "bad_rows.csv:7: duplicate of 'ADA@Example.org' on line 2",
        "bad_rows.csv:8: email is empty",
    ]
    assert [s.email for s in store.iter_subscribers()] == ["ada@example.org", "fay@example.org"]


def test_strict_iteration_stops_at_the_first_bad_row_with_file_and_line(tmp_path: Path) -> None:
    store = copy("bad_rows.csv", tmp_path)
    with pytest.raises(SubscriberError) as caught:
        list(store.iter_subscribers(strict=True))
    assert caught.value.where == f"{store.path}:3"


def test_a_multiline_quoted_field_does_not_shift_later_line_numbers(tmp_path: Path) -> None:
    store = copy("multiline_field.csv", tmp_path)
    assert store.read()[0].extra == {"notes": "met at\nNeurIPS\n2025"}
    assert [p.line for p in store.validate()] == [5]


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "latin1.csv",
            (
                "latin1.csv is not UTF-8 text (byte 51 is 0xe9), in {path}:3, "
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
    store = copy(name, tmp_path)
    with pytest.raises(SubscriberError) as caught:
        store.iter_subscribers()
    assert caught.value.message == message.format(path=store.path)
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("name", ["latin1.csv", "no_email_column.csv", "empty.csv"])
def test_importing_an_unreadable_file_changes_nothing(name: str, tmp_path: Path) -> None:
    target = copy("semicolon.csv", tmp_path)
    before = target.path.read_bytes()
    with pytest.raises(SubscriberError):
        import_file(target, FIXTURES / name)
    assert target.path.read_bytes() == before


def test_unknown_columns_and_their_order_survive_a_rewrite(tmp_path: Path) -> None:
    store = copy("unknown_columns.csv", tmp_path)
    store.set_status("bob@example.org", SubscriberStatus.UNSUBSCRIBED)
    store.add("cy@example.org", name="Cy", extra={"team": "green"})
    store.compact()
    lines = store.path.read_text().splitlines()
    assert lines[0] == "team,email,joined_via,name,status,note,unsubscribed_at,subscribed_at"
    assert lines[1] == 'red,ada@example.org,web,Ada,active,"likes ""quotes""",,'
    assert lines[2].startswith("blue,bob@example.org,import,Bob,unsubscribed,,20")
    assert lines[3].startswith("green,cy@example.org,,Cy,active,,,20")


@pytest.mark.parametrize("name", ["bom_crlf_quoted.csv", "semicolon.csv", "tab.tsv"])
def test_a_rewrite_keeps_the_files_own_dialect(name: str, tmp_path: Path) -> None:
    store = copy(name, tmp_path)
    original = (FIXTURES / name).read_bytes()
    store.set_status("bob@example.org", SubscriberStatus.BOUNCED)
    store.compact()
    rewritten = store.path.read_bytes()
    assert rewritten[:3] == original[:3]  # BOM kept where there was one
    header = original.splitlines(keepends=True)[0]
    new_header = rewritten.splitlines(keepends=True)[0]
    assert new_header.startswith(header.rstrip(b"\r\n")) and new_header[-2:] == header[-2:]
    assert [s.status for s in store.read() if s.key == "bob@example.org"] == ["bounced"]


@pytest.mark.parametrize(
    "header, written",
    [
        ('email;"x,email"', '"email";"x,email"'),  # read with ';': unquoted it would read with ','
        ('email\t"x;email"', '"email"\t"x;email"'),  # read with tab: unquoted, with ';'
        ('email,"x;email",name', "email,x;email,name"),  # reads back the same: left as it was
    ],
)
def test_a_column_name_holding_another_delimiter_keeps_the_dialect_through_a_rewrite(
    header: str, written: str, tmp_path: Path
) -> None:
    path = tmp_path / "news.csv"
    delimiter = "\t" if "\t" in header else "," if header.startswith("email,") else ";"
    path.write_text(f"{header}\nada@example.org{delimiter}1\nbob@example.org{delimiter}2\n", encoding="utf-8")
    store = SubscriberStore(path)
    store.remove("bob@example.org")
    store.compact()
    assert path.read_text(encoding="utf-8").splitlines()[0] == written
    assert [s.email for s in store.read()] == ["ada@example.org"]
    assert store.validate() == []


def test_a_change_leaves_bad_rows_as_they_were(tmp_path: Path) -> None:
    store = copy("bad_rows.csv", tmp_path)
    before = store.path.read_text().splitlines()
    store.set_status("fay@example.org", SubscriberStatus.UNSUBSCRIBED)
    store.compact()
    after = store.path.read_text().splitlines()
    assert after[0] == before[0] + ",unsubscribed_at"
    assert [line.rstrip(",") for line in after[1:-1]] == [line.rstrip(",") for line in before[1:-1]]
    assert after[-1].startswith("fay@example.org,Fay,,unsubscribed,,20")
