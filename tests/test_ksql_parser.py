"""The ksql parser and planner: identifier rules, error positions, unsupported vs invalid."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from coinstream.ksql import ast
from coinstream.ksql.errors import InvalidStatement, UnsupportedStatement
from coinstream.ksql.parser import parse
from coinstream.ksql.planner import plan_script
from coinstream.ksql.types import DOUBLE, STRING, array_of, decimal_type, struct_of

ROOT = Path(__file__).resolve().parents[1]
STREAM = "CREATE STREAM s (id BIGINT KEY, v BIGINT, name VARCHAR) WITH (kafka_topic='t', value_format='JSON');\n"


def test_reference_statements_parse_verbatim() -> None:
    text = (ROOT / "tests/ksql/reference/statements.sql").read_text()
    statements = parse(text)
    assert [type(s).__name__ for s in statements] == ["CreateSource", "CreateAsSelect", "CreateAsSelect"]
    ohlc, mov_avg = statements[1], statements[2]
    assert ohlc.name == "OHLC_BY_MINUTE"
    assert mov_avg.name == "60_SEC_MOV_AVG"  # identifiers may start with a digit; unquoted upper-cased
    assert [item.alias for item in ohlc.query.select] == [
        None,
        "COIN_CODE",
        "WINDOW_START",
        "OPEN",
        "HIGH",
        "LOW",
        "CLOSE",
    ]
    assert mov_avg.query.window == ast.WindowSpec("HOPPING", 60_000, 30_000, None, None)
    assert ohlc.query.window == ast.WindowSpec("TUMBLING", 60_000, None, None, None)
    assert ohlc.query.emit == "CHANGES"
    assert ohlc.text.startswith("CREATE TABLE ohlc_by_minute AS SELECT") and ohlc.text.endswith("EMIT CHANGES;")


def test_project_statements_plan() -> None:
    catalog = plan_script(
        "\n".join(Path(p).read_text() for p in sorted(glob.glob(str(ROOT / "ksql/*.sql")))),
        {"max_clock_skew_ms": "60000"},
    )
    stream = catalog.sources["COINS_CURRENT_STREAM"]
    assert stream.topic == "coins_current_full"
    assert stream.timestamp_column == "FETCHED_AT"
    assert [c.name for c in stream.key_columns] == ["COIN"]
    assert stream.find("CODE")[1].type == STRING
    assert stream.find("DELTA")[1].type == struct_of(
        [(name, DOUBLE) for name in ("hour", "day", "week", "month", "quarter", "year")]
    )
    assert stream.find("CATEGORIES")[1].type == array_of(STRING)
    rejected, ohlc, mov_avg = catalog.queries
    assert (rejected.sink.topic, ohlc.sink.topic, mov_avg.sink.topic) == (
        "coins_current_rejected",
        "ohlc_by_minute",
        "mov_avg_60s",
    )
    assert [c.name for c in rejected.sink.value_columns] == ["CODE", "RATE", "FETCHED_AT", "REASON"]
    assert [c.name for c in ohlc.sink.value_columns] == ["COIN_CODE", "WINDOW_START", "OPEN", "HIGH", "LOW", "CLOSE"]
    assert [c.name for c in mov_avg.sink.value_columns] == ["COIN_CODE", "WINDOW_START", "MOV_AVG"]
    assert (ohlc.windows.size, ohlc.windows.advance, ohlc.windows.grace) == (60_000, 60_000, 120_000)
    assert (mov_avg.windows.size, mov_avg.windows.advance, mov_avg.windows.grace) == (60_000, 30_000, 120_000)


def test_identifier_rules() -> None:
    statement = parse(
        'CREATE STREAM `Mixed` (`lower` INT KEY, plain DECIMAL(4, 2), "Dq" STRING) '
        "WITH (kafka_topic='t', value_format='JSON');"
    )[0]
    assert statement.name == "Mixed"
    assert [(c.name, c.type, c.constraint) for c in statement.columns] == [
        ("lower", parse_type("INT"), "KEY"),
        ("PLAIN", decimal_type(4, 2), None),
        ("Dq", STRING, None),
    ]


def parse_type(name: str):
    return parse(f"CREATE STREAM x (a {name}) WITH (kafka_topic='t', value_format='JSON');")[0].columns[0].type


def test_non_reserved_words_work_as_names() -> None:
    catalog = plan_script(
        "CREATE STREAM s (id BIGINT KEY, value BIGINT, size INT, key STRING) "
        "WITH (kafka_topic='t', value_format='JSON');\n"
        "CREATE TABLE t AS SELECT id, COUNT(*) AS count, MAX(size) AS open FROM s GROUP BY id;"
    )
    assert [c.name for c in catalog.queries[0].sink.value_columns] == ["COUNT", "OPEN"]


@pytest.mark.parametrize(
    "text, line, column, fragment",
    [
        (
            "CREATE STREAM s (a INT) WITH (kafka_topic='t', value_format='JSON');\nCREATE STREAM x AS SELECT a FRM s;",
            2,
            33,
            "syntax error at 's'",
        ),  # "a FRM" is column a aliased FRM, so `s` is the error
        ("CREATE STREAM s (a INT) WITH (kafka_topic='t', value_format='JSON')", 1, 68, "unexpected end of input"),
        (
            "CREATE STREAM s (a INT) WITH (kafka_topic='t', value_format='JSON');\n"
            "CREATE TABLE x AS SELECT a, COUNT(*) FROM s WINDOW TUMBLING (SIZE 1 FORTNIGHT) GROUP BY a;",
            2,
            69,
            "unknown time unit 'FORTNIGHT'",
        ),
        ("CREATE STREAM s (a INT $) WITH (kafka_topic='t');", 1, 24, "unexpected character '$'"),
    ],
)
def test_syntax_errors_carry_positions(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(InvalidStatement) as error:
        parse(text)
    assert (error.value.line, error.value.column) == (line, column)
    assert fragment in error.value.message
    assert str(error.value).startswith(f"invalid: line {line}:{column}: ")


@pytest.mark.parametrize(
    "text, line, column, fragment",
    [
        (STREAM + "CREATE STREAM x AS SELECT id, nope FROM s;", 2, 31, "SELECT column 'NOPE' cannot be resolved"),
        (STREAM + "CREATE STREAM x AS SELECT id, v FROM missing;", 2, 38, "MISSING does not exist"),
        ("CREATE STREAM s (a INT) WITH (value_format='JSON');", 1, 1, 'Missing required property "KAFKA_TOPIC"'),
        (STREAM + "CREATE TABLE x AS SELECT COUNT(*) AS c FROM s GROUP BY v;", 2, 19, "Key missing from projection"),
        (
            STREAM + "CREATE TABLE x AS SELECT v, name, COUNT(*) AS c FROM s GROUP BY v;",
            2,
            29,
            "Non-aggregate SELECT expression(s) not part of GROUP BY: NAME",
        ),
        (STREAM + "CREATE STREAM x AS SELECT id, v + name AS bad FROM s;", 2, 31, "unsupported arithmetic"),
        (STREAM + "CREATE TABLE x AS SELECT id, v FROM s;", 2, 1, "Your SELECT query produces a STREAM"),
        (
            STREAM + "CREATE TABLE x AS SELECT v, COUNT(*) AS c FROM s GROUP BY v EMIT FINAL;",
            2,
            19,
            "EMIT FINAL is only supported for windowed aggregations",
        ),
        (
            STREAM + "CREATE STREAM x AS SELECT id, NO_SUCH_FN(v) AS y FROM s;",
            2,
            31,
            "Can't find any functions with the name 'NO_SUCH_FN'",
        ),
        (
            "CREATE TABLE t (a INT KEY, b INT) WITH (kafka_topic='t', value_format='JSON');",
            1,
            17,
            "please use 'PRIMARY KEY' for tables",
        ),
    ],
)
def test_invalid_statements(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(InvalidStatement) as error:
        plan_script(text)
    assert fragment in error.value.message
    assert (error.value.line, error.value.column) == (line, column)


@pytest.mark.parametrize(
    "text, construct",
    [
        ("INSERT INTO x SELECT * FROM y;", "INSERT statements"),
        ("DROP STREAM s;", "DROP statements"),
        ("SELECT * FROM s EMIT CHANGES;", "transient (push/pull) SELECT queries"),
        (STREAM + "CREATE STREAM j AS SELECT * FROM s JOIN s2 ON s.id = s2.id;", "JOIN"),
        (STREAM + "CREATE STREAM p AS SELECT * FROM s PARTITION BY v;", "PARTITION BY"),
        (
            STREAM
            + "CREATE TABLE w AS SELECT id, COUNT(*) AS c FROM s WINDOW SESSION (5 SECONDS) GROUP BY id EMIT FINAL;",
            "EMIT FINAL with SESSION windows",
        ),
        (STREAM + "CREATE STREAM l AS SELECT id, TRANSFORM(v, x => x + 1) AS y FROM s;", "lambda functions"),
        (STREAM + "CREATE STREAM f AS SELECT id, SPLIT(name, ',') AS parts FROM s;", "function SPLIT"),
        (
            STREAM + "CREATE TABLE c AS SELECT id, COLLECT_LIST(v) AS l FROM s GROUP BY id;",
            "aggregate function COLLECT_LIST",
        ),
        ("CREATE STREAM a (x INT) WITH (kafka_topic='t', value_format='AVRO');", "format AVRO"),
        ("CREATE TYPE money AS DECIMAL(10, 2);", "CREATE TYPE statements"),
    ],
)
def test_unsupported_constructs_are_named(text: str, construct: str) -> None:
    with pytest.raises(UnsupportedStatement) as error:
        plan_script(text)
    assert error.value.construct.startswith(construct)
    assert str(error.value).startswith("unsupported: ")


def test_windowed_source_import_rejects_bad_window_size() -> None:
    with pytest.raises(InvalidStatement) as error:
        plan_script(
            "CREATE TABLE t (k STRING PRIMARY KEY, v BIGINT) WITH (kafka_topic='t', value_format='JSON', "
            "WINDOW_TYPE='Hopping', WINDOW_SIZE='30 bobs');"
        )
    assert error.value.message == (
        "Configuration WINDOW_SIZE is invalid: Invalid duration: '30 bobs'. Unknown time unit: 'BOBS'"
    )


def test_variables_are_substituted_and_the_written_statement_is_kept() -> None:
    """`${name}` as ksqlDB substitutes it; the statement as written (what names a query's
    changelog) stays the same whatever the value, so a changed setting keeps the window state."""
    from coinstream.ksql.errors import InvalidStatement

    script = (
        "-- a comment; with a semicolon\n"
        "CREATE STREAM s (k STRING KEY, v BIGINT) WITH (kafka_topic='s', value_format='JSON');\n"
        "CREATE TABLE t AS SELECT k, COUNT(*) AS n FROM s WHERE v > ${limit} AND k <> '$${x}; y' "
        "GROUP BY k;\n"
    )
    written = []
    for value in ("5", "500"):
        catalog = plan_script(script, {"LIMIT": value})
        (query,) = catalog.queries
        assert query.statement.text.startswith(
            f"CREATE TABLE t AS SELECT k, COUNT(*) AS n FROM s WHERE v > {value} AND k <> '${{x}}; y'"
        )
        written.append(catalog.written_text(query.statement.text))
    assert written[0] == written[1] == script.splitlines()[2]
    with pytest.raises(InvalidStatement, match=r"variable \$\{limit\} is not defined"):
        plan_script(script, {})
