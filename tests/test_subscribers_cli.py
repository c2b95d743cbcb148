"""`newsletter subscribers ...` through CliRunner, comparing exact output."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.lists import store_of

from newsletter.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "subscribers"
LIST = "subscribers/news.csv"


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("NEWSLETTER_SUBSCRIBERS_DIR", "NEWSLETTER_DEFAULT_LIST", "NEWSLETTER_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["subscribers", *args])


@pytest.fixture
def news(workdir: Path) -> Path:
    (workdir / "subscribers").mkdir()
    path = workdir / LIST
    path.write_text(
        "email,name,keywords,status,subscribed_at,unsubscribed_at\n"
        "alice@example.org,Alice,diffusion models; music,active,2026-11-01T10:00:00+00:00,\n"
        "bob@example.org,Bob,robotics; diffusion models,active,2026-11-02T10:00:00+00:00,\n"
        "carol@example.org,Carol,robotics,unsubscribed,2026-11-03T10:00:00+00:00,2026-11-04T10:00:00+00:00\n"
    )
    return path


def test_add_then_list_as_a_table(workdir: Path) -> None:
    result = run("add", "dave@example.org", "--name", "Dave", "--keywords", "graphs; music", "--list", "news")
    assert (result.exit_code, result.stdout) == (0, "Added dave@example.org to news.\n")
    result = run("list", "--list", "news")
    assert result.stdout == (
        "email             name  status  keywords\n"
        "----------------  ----  ------  -------------\n"
        "dave@example.org  Dave  active  graphs; music\n"
        "1 subscriber\n"
    )


def test_add_a_duplicate_in_other_case_fails_with_one_line(news: Path) -> None:
    result = run("add", "ALICE@example.org", "--list", "news")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: ALICE@example.org is already on list news, see it with `newsletter subscribers "
        "list`, or add it with --resubscribe to make it active again\n"
    )


def test_add_resubscribe_reactivates_an_unsubscribed_address(news: Path) -> None:
    result = run("add", "carol@example.org", "--resubscribe", "--list", "news")
    assert result.stdout == "Resubscribed carol@example.org to news.\n"
    carol = store_of(news).get("carol@example.org")
    assert carol is not None
    assert carol.status == "active" and carol.unsubscribed_at is None and carol.keywords == ["robotics"]
    result = run("add", "carol@example.org", "--resubscribe", "--list", "news")
    assert result.stdout == "carol@example.org is already active on news; nothing changed.\n"


def test_add_resubscribe_on_an_active_reader_says_what_it_changed(
    news: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    args = ("--name", "Robert", "--keywords", "control", "--resubscribe", "--list", "news")
    result = run("add", "bob@example.org", *args)
    assert (result.exit_code, result.stdout) == (
        0,
        "bob@example.org is already active on news; changed name 'Bob' -> 'Robert', "
        "keywords 'robotics; diffusion models' -> 'control'.\n",
    )
    again = run("add", "bob@example.org", *args)
    assert again.stdout == "bob@example.org is already active on news; nothing changed.\n"
    bob = store_of(news).get("bob@example.org")
    assert bob is not None and (bob.name, bob.keywords) == ("Robert", ["control"])


def test_set_changes_only_the_fields_given_and_says_so(
    news: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    result = run(
        "set", "BOB@example.org", "--keywords", "robotics, control", "--frequency", "daily", "--list", "news"
    )
    assert (result.exit_code, result.stdout) == (
        0,
        "Changed BOB@example.org on news: keywords 'robotics; diffusion models' -> 'robotics; control', "
        "frequency 'weekly' -> 'daily'.\n",
    )
    bob = store_of(news).get("bob@example.org")
    assert bob is not None
    assert (bob.name, bob.keywords, bob.frequency, bob.status) == (
        "Bob",
        ["robotics", "control"],
        "daily",
        "active",
    )
    same = run("set", "bob@example.org", "--frequency", "daily", "--list", "news")
    assert same.stdout == "bob@example.org on news already has these values: nothing changed.\n"


def test_set_keeps_an_unsubscribed_reader_unsubscribed(news: Path) -> None:
    result = run("set", "carol@example.org", "--name", "Caroline", "--list", "news")
    assert result.stdout == "Changed carol@example.org on news: name 'Carol' -> 'Caroline'.\n"
    carol = store_of(news).get("carol@example.org")
    assert carol is not None and (carol.name, carol.status) == ("Caroline", "unsubscribed")


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["nobody@example.org", "--name", "X"], 1, "Error: nobody@example.org is not on list news"),
        (["bob@example.org"], 2, "Error: pass at least one of --name, --keywords and --frequency"),
        (["bob@example.org", "--frequency", "hourly"], 2, "Error: Invalid value for '--frequency'"),
    ],
    ids=["not on the list", "nothing to set", "unknown frequency"],
)
def test_set_refuses_with_one_error_line(news: Path, args: list[str], code: int, error: str) -> None:
    result = run("set", *args, "--list", "news")
    assert result.exit_code == code
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert line.startswith(error)


def test_add_an_invalid_address_fails(news: Path) -> None:
    result = run("add", "alice(at)example.org", "--list", "news")
    assert result.exit_code == 1 and result.stderr.startswith(
        "Error: 'alice(at)example.org' is not a valid address"
    )


def test_unsubscribe_twice_and_remove(news: Path) -> None:
    assert (
        run("unsubscribe", "Bob@example.org", "--list", "news").stdout
        == "Unsubscribed Bob@example.org from news.\n"
    )
    assert (
        run("unsubscribe", "bob@example.org", "--list", "news").stdout
        == "bob@example.org was already unsubscribed on news.\n"
    )
    assert run("remove", "bob@example.org", "--list", "news").stdout == "Removed bob@example.org from news.\n"
    result = run("remove", "bob@example.org", "--list", "news")
    assert result.exit_code == 1 and "bob@example.org is not on list news" in result.stderr


def test_list_filters_by_status_and_keyword(news: Path) -> None:
    result = run("list", "--list", "news", "--keyword", "ROBOT", "--status", "active", "--json")
    assert [row["email"] for row in json.loads(result.stdout)] == ["bob@example.org"]
    result = run("list", "--list", "news", "--status", "unsubscribed", "--csv")
    assert result.stdout == (
        "email,name,keywords,status,subscribed_at,unsubscribed_at\n"
        "carol@example.org,Carol,robotics,unsubscribed,2026-11-03T10:00:00+00:00,"
        "2026-11-04T10:00:00+00:00\n"
    )


def test_missing_list_is_one_line_with_the_fix(workdir: Path) -> None:
    result = run("list", "--list", "nope")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: subscriber list nope not found, in {workdir / 'subscribers/nope.csv'}, "
        "create it with `newsletter subscribers add` or pass --list\n"
    )


def test_import_counts_added_updated_skipped_and_rejected(news: Path, workdir: Path) -> None:
    source = workdir / "incoming.csv"
    source.write_text(
        "email;name;keywords\nalice@example.org;Alice M;\nerin@example.org;Erin;ml\n"
        "bad-address;X;\nCAROL@example.org;Carol;robotics\n"
    )
    result = run("import", str(source), "--list", "news", "--on-conflict", "update")
    assert result.stdout == f"Imported {source} into news: 1 added, 1 updated, 1 skipped, 1 rejected.\n"
    assert result.stderr == (
        f"{source}:4: 'bad-address' is not a valid address: "
        "An email address must have an @-sign. (rejected)\n"
    )
    final = {s.key: s for s in store_of(news).read()}
    assert final["alice@example.org"].name == "Alice M"
    assert final["alice@example.org"].keywords == ["diffusion models", "music"]
    assert final["carol@example.org"].status == "unsubscribed"  # an import never re-subscribes


def test_strict_import_with_a_bad_row_imports_nothing(news: Path, workdir: Path) -> None:
    before = news.read_bytes()
    source = workdir / "incoming.csv"
    source.write_text("email\nerin@example.org\nbad-address\n")
    result = run("import", str(source), "--list", "news", "--strict")
    assert result.exit_code == 1 and "1 rows rejected, nothing imported" in result.stderr
    assert news.read_bytes() == before


@pytest.mark.parametrize("name", ["latin1.csv", "no_email_column.csv"])
def test_import_of_an_unreadable_file_is_one_line_and_changes_nothing(name: str, news: Path) -> None:
    before = news.read_bytes()
    result = run("import", str(FIXTURES / name), "--list", "news")
    assert result.exit_code == 1 and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert news.read_bytes() == before


def test_validate_lists_every_problem_and_exits_1(workdir: Path) -> None:
    (workdir / "subscribers").mkdir()
    shutil.copy(FIXTURES / "bad_rows.csv", workdir / "subscribers" / "bad.csv")
    result = run("validate", "--list", "bad")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split(": ", 1)[0].rsplit("/", 1)[-1] for line in lines] == [
        f"bad.csv:{n}" for n in (3, 4, 5, 6, 7, 8)
    ]
    assert result.stderr.startswith("6 problems in ")


def test_validate_a_clean_list_exits_0(news: Path) -> None:
    result = run("validate", "--list", "news")
    assert (result.exit_code, result.stdout) == (0, f"{news}: no problems\n")


def test_stats_counts_statuses_and_top_keywords(news: Path) -> None:
    result = run("stats", "--list", "news")
    assert result.stdout == (
        "news: 3 subscribers\n"
        "  active            2\n"
        "  unsubscribed      1\n"
        "  bounced           0\n"
        "  pending           0\n"
        "Active without keywords: 0\n"
        "Top keywords (active):\n"
        "       2  diffusion models\n"
        "       1  music\n"
        "       1  robotics\n"
    )


def test_export_to_a_file_round_trips(news: Path, workdir: Path) -> None:
    result = run("export", "--list", "news", "-o", "out.csv")
    assert result.exit_code == 0 and result.stderr == "Exported 3 subscribers from news to out.csv.\n"
    assert (workdir / "out.csv").read_text() == news.read_text()


def test_every_subscribers_command_has_help() -> None:
    from newsletter.cli.subscribers import subscribers

    for name, command in subscribers.commands.items():
        assert command.help and len(command.help.splitlines()[0]) > 10, name
        assert CliRunner().invoke(main, ["subscribers", name, "--help"]).exit_code == 0


FORMULAS = ["=cmd|' /C calc'!A0", "+1+2", "-2+3", "@SUM(A1)"]


@pytest.mark.parametrize("name", FORMULAS)
def test_export_defuses_cells_a_spreadsheet_would_run_as_formulas(news: Path, name: str) -> None:
    assert run("add", "v@example.org", "--name", name, "--list", "news").exit_code == 0
    result = run("export", "--list", "news")
    exported = {row["email"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    assert exported["v@example.org"]["name"] == "'" + name
    assert exported["alice@example.org"]["name"] == "Alice"


@pytest.mark.parametrize("note", ["\t=1+1", '=HYPERLINK("http://x")'])
def test_export_defuses_formulas_in_columns_we_do_not_know(workdir: Path, note: str) -> None:
    (workdir / "subscribers").mkdir()
    with (workdir / LIST).open("w", newline="") as handle:
        csv.writer(handle).writerows([["email", "status", "=note"], ["v@example.org", "active", note]])
    result = run("export", "--list", "news")
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["email", "status", "'=note"],
        ["v@example.org", "active", "'" + note.replace("\t", " ")],  # a control is a space
    ]


def test_export_raw_round_trips_formula_cells_byte_for_byte(news: Path, workdir: Path) -> None:
    assert run("add", "v@example.org", "--name", FORMULAS[0], "--list", "news").exit_code == 0
    before = news.read_bytes()
    assert run("export", "--raw", "--list", "news", "-o", "raw.csv").exit_code == 0
    raw = (workdir / "raw.csv").read_bytes()
    assert raw.startswith(before)
    added = next(
        csv.DictReader(
            io.StringIO(raw[len(before) :].decode()), fieldnames=before.decode().split("\n")[0].split(",")
        )
    )
    assert added["name"] == FORMULAS[0]


@pytest.mark.parametrize("command", [["list"], ["stats"], ["export"], ["add", "x@example.org"], ["sync"]])
def test_a_stray_quote_is_one_line_naming_the_row_where_it_opened(workdir: Path, command: list[str]) -> None:
    (workdir / "subscribers").mkdir()
    rows = [f"u{i}@example.org,U{i}" for i in range(100_000)]
    rows[9] = 'u9@example.org,"Ulla'  # row 10, line 11: the quote never closes
    (workdir / LIST).write_text("email,name\n" + "\n".join(rows) + "\n")
    result = run(*command, "--list", "news")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == (
        f'Error: a quote (") opened on line 11 of news.csv is never closed, so the rows after it '
        f"cannot be read, in {Path(LIST).resolve()}:11, "
        'remove the stray " on that line, or close the quoted field'
    )


def test_validate_names_every_damaged_line(workdir: Path) -> None:
    (workdir / "subscribers").mkdir()
    (workdir / LIST).write_text('email,name\na@example.org,"Ann\nb@example.org,Bob,extra\nc@example.org,Cy\n')
    result = run("validate", "--list", "news")
    assert result.exit_code == 1
    assert [line.split(": ", 1)[0].rsplit("/", 1)[-1] for line in result.stdout.splitlines()] == [
        "news.csv:2",
        "news.csv:3",
    ]


def test_a_line_break_inside_a_cell_is_refused_with_its_line(workdir: Path) -> None:
    (workdir / "subscribers").mkdir()
    (workdir / LIST).write_bytes(b'email,status,note\nv@example.org,active,"line one\rline two"\n')
    result = run("list", "--list", "news")
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: a line break inside a cell, in {Path(LIST).resolve()}:2, put the cell on one line\n"
    )


def test_add_to_a_new_list_makes_its_csv_file(workdir: Path) -> None:
    assert run("add", "a@example.org", "--name", "A", "--list", "fresh").exit_code == 0
    lines = (workdir / "subscribers" / "fresh.csv").read_text().splitlines()
    assert lines[0] == "email,name,keywords,status,subscribed_at,unsubscribed_at"
    assert lines[1].startswith("a@example.org,A,,active,20")


def test_sync_writes_what_the_database_learned_into_the_file(news: Path) -> None:
    assert run("unsubscribe", "alice@example.org", "--list", "news").exit_code == 0
    assert "alice@example.org,Alice,diffusion models; music,active" in news.read_text()  # not yet
    result = run("sync", "--list", "news")
    assert result.stdout == f"Synced news with {news}: 3 subscribers, 1 active.\n"
    assert (
        news.read_text()
        .splitlines()[1]
        .startswith("alice@example.org,Alice,diffusion models; music,unsubscribed,")
    )


def test_import_takes_the_column_names_other_tools_use(news: Path, workdir: Path) -> None:
    source = workdir / "incoming.csv"
    source.write_text("E-mail,Full name,Topics\nerin@example.org,Erin,ml; vision\n")
    assert run("import", str(source), "--list", "news").exit_code == 0
    erin = store_of(news).get("erin@example.org")
    assert erin is not None and (erin.name, erin.keywords) == ("Erin", ["ml", "vision"])


@pytest.mark.parametrize(
    "column, meant", [("keyword", "keywords"), ("Topics", "keywords"), ("nmae", "name"), ("team", None)]
)
def test_a_misspelt_column_in_the_list_is_one_line_naming_it(
    workdir: Path, column: str, meant: str | None
) -> None:
    (workdir / "subscribers").mkdir()
    (workdir / LIST).write_text(f"email,{column}\na@example.org,x\n")
    result = run("list", "--list", "news")
    if meant is None:  # nothing like one of ours: kept as a column of the user's own
        assert result.exit_code == 0
        return
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: news.csv has a column '{column}': did you mean `{meant}`?, in {Path(LIST).resolve()}:1, "
        f"rename the column to {meant} (its values are not read under another name)\n"
    )
