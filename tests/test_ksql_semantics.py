"""ksqlDB semantics the engine reproduces beyond its own statements (issue 15), with hand-computed outputs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coinstream.ksql.errors import KsqlError
from coinstream.ksql.planner import plan_script
from coinstream.ksql.testrunner import EXIT_MATCH, EXIT_REJECTED, run


def plain(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def outputs(statements: str, inputs: list[dict], topic: str = "O") -> list[tuple]:
    result = run(statements, inputs, [])
    assert result.exit_code == EXIT_MATCH, result.report
    return [(r["key"], plain(r["value"])) for r in result.actual.get(topic, [])]


SOURCE = "CREATE STREAM s (id INT KEY, a INT, b BOOLEAN, d DOUBLE) WITH (kafka_topic='s', value_format='JSON');\n"


def test_a_null_value_passes_a_projection_and_not_a_filter() -> None:
    inputs = [{"topic": "s", "key": 1, "value": None}, {"topic": "s", "key": 2, "value": {"a": 5}}]
    assert outputs(SOURCE + "CREATE STREAM o AS SELECT id, a FROM s;", inputs) == [(1, None), (2, {"A": 5})]
    assert outputs(SOURCE + "CREATE STREAM o AS SELECT id, a FROM s WHERE a IS NULL;", inputs) == []


def test_comparisons_with_null_are_false_and_between_is_built_from_them() -> None:
    sql = SOURCE + (
        "CREATE STREAM o AS SELECT id, a = 1 AS eq, NOT (a = 1) AS ne, a BETWEEN 0 AND 9 AS btw, "
        "a NOT BETWEEN 0 AND 9 AS nbtw FROM s;"
    )
    got = outputs(sql, [{"topic": "s", "key": 1, "value": {"a": None}}, {"topic": "s", "key": 2, "value": {"a": 1}}])
    assert got == [
        (1, {"EQ": False, "NE": True, "BTW": False, "NBTW": True}),
        (2, {"EQ": True, "NE": False, "BTW": True, "NBTW": False}),
    ]


def test_and_or_not_fail_on_a_null_operand_they_evaluate() -> None:
    # Java's && / || / ! on Booleans: TRUE OR <null> is TRUE (short cut), <null> OR TRUE fails -> NULL.
    sql = SOURCE + "CREATE STREAM o AS SELECT id, (a = 1) OR b AS x, b OR (a = 1) AS y, NOT b AS z FROM s;"
    result = run(sql, [{"topic": "s", "key": 1, "value": {"a": 1, "b": None}}], [])
    assert [plain(r["value"]) for r in result.actual["O"]] == [{"X": True, "Y": None, "Z": None}]
    assert len(result.processing_log) == 2


def test_double_against_decimal_compares_the_double_as_its_decimal_text() -> None:
    sql = SOURCE + "CREATE STREAM o AS SELECT id, d <= 1.1 AS le, d = 1.10 AS eq FROM s;"
    assert outputs(sql, [{"topic": "s", "key": 1, "value": {"d": 1.1}}]) == [(1, {"LE": True, "EQ": True})]


def test_nan_and_infinity_are_json_strings() -> None:
    sql = SOURCE + "CREATE STREAM o AS SELECT id, SQRT(d) AS r, LN(d) AS l FROM s;"
    got = outputs(sql, [{"topic": "s", "key": 1, "value": {"d": -1.0}}, {"topic": "s", "key": 2, "value": {"d": 0.0}}])
    assert got == [(1, {"R": "NaN", "L": "NaN"}), (2, {"R": 0.0, "L": "-Infinity"})]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT id, ROWTIME FROM s", "Reserved column name in select: `ROWTIME`"),
        ("SELECT id, a AS ROWOFFSET FROM s", "`ROWOFFSET` is a reserved column name"),
        ("SELECT id, a <> NULL AS x FROM s", "Comparison with NULL not supported"),
        ("SELECT id, GREATEST(a, CAST(a AS BIGINT)) AS g FROM s", "ambiguous method parameters"),
        ("SELECT id, 1.7976931348623159E308 AS big FROM s", "Number overflows DOUBLE"),
    ],
)
def test_statements_ksqldb_refuses_are_refused(query: str, message: str) -> None:
    with pytest.raises(KsqlError) as error:
        plan_script(SOURCE + f"CREATE STREAM o AS {query};")
    assert message in error.value.describe()


def test_format_rules_ksqldb_enforces() -> None:
    refused = [
        "CREATE STREAM k (id INT KEY, a INT) WITH (kafka_topic='k', value_format='KAFKA', wrap_single_value=true);",
        "CREATE STREAM m (id INT KEY, a INT, b INT) WITH (kafka_topic='m', value_format='JSON', wrap_single_value=false);",
        "CREATE STREAM w (a INT) WITH (kafka_topic='w', value_format='JSON', window_type='SESSION');",
        "CREATE OR REPLACE SOURCE STREAM r (id INT KEY, a INT) WITH (kafka_topic='r', value_format='JSON');",
        "CREATE STREAM c (id INT KEY, a INT) WITH (kafka_topic='c', value_format='DELIMITED');\n"
        "CREATE TABLE t AS SELECT id, AVG(a) AS m FROM c GROUP BY id;",
    ]
    for statements in refused:
        result = run(statements, [], [])
        assert result.exit_code == EXIT_REJECTED, statements


def test_delimited_first_field_quoting_and_text_keys() -> None:
    sql = (
        "CREATE STREAM s (k STRING KEY, a INT, t STRING) WITH (kafka_topic='s', format='DELIMITED');\n"
        "CREATE STREAM o AS SELECT k, a, t FROM s;"
    )
    result = run(sql, [{"topic": "s", "key": "x", "value": "-1,!a"}, {"topic": "s", "key": "y", "value": "2,b "}], [])
    assert [(r["key"], r["value"]) for r in result.actual["O"]] == [("x", '"-1","!a"'), ("y", '2,"b "')]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, MAP('a' := 1) AS m FROM s",  # constructor syntax the grammar lacks
        "SELECT id, TRANSFORM(ARRAY[1], x => x + 1) AS t FROM s",  # lambdas
        "SELECT id, 'a' + 'b' AS c FROM s",  # + on strings
        "SELECT id, a = '1' AS c FROM s",  # ksqlDB converts the literal
        "SELECT id, DATEADD(DAYS, 1, CAST(NULL AS DATE)) AS d FROM s",  # a built-in not implemented
        "SELECT id, LEN(CAST(NULL AS BYTES)) AS l FROM s",  # an overload not implemented
    ],
)
def test_valid_ksqldb_out_of_reach_is_unsupported_not_invalid(query: str) -> None:
    with pytest.raises(KsqlError) as error:
        plan_script(SOURCE + f"CREATE STREAM o AS {query};")
    assert error.value.kind == "unsupported", error.value.describe()
