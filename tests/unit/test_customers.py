"""Profile rows: every problem found before anything is written, as ``line N: …`` with ids and never a name or
an e-mail; what a row gives replaces, what it leaves out is kept."""

from __future__ import annotations

import json

import pytest

from spanledger import ConfigError, ImportRejected
from spanledger._customers.profiles import MAX_ROWS, changes_of, format_of, read_text
from spanledger._model.customer import Customer

SECRET_NAME = "Zoë Quartermaine"
SECRET_EMAIL = "zoe.q@private.example"


def test_a_good_csv_with_metadata_columns() -> None:
    text = (
        "\ufeffuser_id,tenant_id,display_name,email,plan,metadata.seats,metadata\n"
        'alice, acme ,Alice Chen,alice@acme.io,pro,5,"{""region"": ""eu""}"\n'
        ",acme,ACME Corp,billing@acme.io,enterprise,,\n"
        "\n"
        "carol,,Carol,,free,,\n"
    )
    alice, acme, carol = read_text(text, format="csv")
    assert (alice.key, alice.line, alice.values) == (
        ("acme", "alice"),
        2,
        {"display_name": "Alice Chen", "email": "alice@acme.io", "plan": "pro", "metadata": {"region": "eu"}},
    )
    assert alice.metadata_entries == {"seats": "5"}
    assert alice.applied_to(None).metadata == {"region": "eu", "seats": "5"}
    assert (acme.key, acme.applied_to(None).kind, carol.key, carol.line) == (("acme", ""), "tenant", ("", "carol"), 5)


def test_jsonl_rows_keep_what_they_leave_out() -> None:
    stored = Customer("acme", "alice", "Alice", "alice@acme.io", "pro", {"seats": "5", "region": "eu"})
    (change,) = read_text(
        '{"user_id": "alice", "tenant_id": "acme", "plan": null, "metadata.seats": ""}\n', format="jsonl"
    )
    after = change.applied_to(stored)
    assert (after.display_name, after.email, after.plan, after.metadata) == (
        "Alice",
        "alice@acme.io",
        "",
        {"region": "eu"},
    )
    (numbers,) = read_text('{"user_id": 42, "metadata": {"seats": 5, "beta": true, "ratio": 0.5}}', format="jsonl")
    assert numbers.key == ("", "42") and numbers.values["metadata"] == {"beta": "true", "ratio": "0.5", "seats": "5"}


def test_every_bad_row_is_reported_by_line_and_nothing_is_accepted() -> None:
    lines = [
        json.dumps({"user_id": "ok", "tenant_id": "acme"}),
        json.dumps({"user_id": "a", "email": SECRET_EMAIL.replace("@", " at ")}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"tenant_id": ""}),
        json.dumps({"user_id": "b", "display_name": SECRET_NAME.replace(" ", "\t")}),
        json.dumps({"user_id": "c", "colour": "red"}),
        json.dumps({"user_id": "x" * 300}),
        json.dumps({"user_id": "d", "metadata": ["a"]}),
        json.dumps({"user_id": "ok", "tenant_id": "acme"}),
        json.dumps({"user_id": "e", "metadata": {"k": {"nested": 1}}}),
    ]
    with pytest.raises(ImportRejected) as caught:
        read_text("\n".join(lines), format="jsonl", source="people.jsonl")
    errors = caught.value.errors
    assert [e.split(":")[0] for e in errors] == [f"line {n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]
    assert errors[0] == "line 2: email is not an e-mail address"
    assert errors[4] == "line 6: display_name holds a control character (a line break, a tab …)"
    assert errors[5] == "line 7: unknown field(s) 'colour'"
    assert errors[8] == "line 10: user 'ok' of tenant 'acme' is already given on line 1"
    message = str(caught.value)
    assert message.startswith("people.jsonl: 10 bad row(s), nothing imported: line 2: ")
    assert isinstance(caught.value, ConfigError)
    # names and e-mail addresses are never echoed: an error may be logged anywhere
    for text in (message, *errors):
        assert SECRET_NAME not in text and "private.example" not in text and "zoe.q" not in text


def test_a_csv_with_an_unknown_column_or_no_id_column_is_refused_at_its_header() -> None:
    with pytest.raises(ImportRejected, match=r"line 1: unknown column\(s\) 'mail'"):
        read_text("user_id,mail\nalice,a@b.io\n", format="csv")
    with pytest.raises(ImportRejected, match="line 1: no user_id or tenant_id column"):
        read_text("display_name\nAlice\n", format="csv")
    with pytest.raises(ImportRejected, match="line 3: has 3 cells; the header has 2"):
        read_text("user_id,plan\nalice,pro\nbob,pro,extra\n", format="csv")
    with pytest.raises(ImportRejected, match="line 2: metadata is not a JSON object"):
        read_text("user_id,metadata\nalice,{oops\n", format="csv")


def test_file_formats_and_the_row_limit() -> None:
    assert [format_of(n) for n in ("a.csv", "B.JSONL", "c.ndjson", "d.json")] == ["csv", "jsonl", "jsonl", "jsonl"]
    with pytest.raises(ConfigError, match=r"use a \.csv or \.jsonl file"):
        format_of("people.xlsx")
    rows = ((n, {"user_id": f"u{n}"}) for n in range(1, MAX_ROWS + 3))
    with pytest.raises(ImportRejected, match=f"more than {MAX_ROWS:,} rows"):
        changes_of(rows)
    assert read_text("", format="csv") == [] and read_text("\n\n", format="jsonl") == []
