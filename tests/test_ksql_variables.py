"""`${name}` substitution and the statements as written: split by the grammar, mapped back."""

from __future__ import annotations

import pytest

from coinstream.ksql.errors import InvalidStatement
from coinstream.ksql.variables import statement_templates, substitute

SCRIPT = """-- a comment; with a semicolon
CREATE STREAM s (k STRING KEY, v INT) WITH (KAFKA_TOPIC='s;t', VALUE_FORMAT='JSON');
CREATE STREAM o AS SELECT k, v FROM s WHERE v > ${low} AND v < ${High} AND k <> '$${low}' EMIT CHANGES;
"""


def test_substitution_is_textual_case_insensitive_and_escapable():
    assert substitute("x > ${low} AND y = '${LOW}' AND z = '$${low}'", {"LOW": "12345"}) == (
        "x > 12345 AND y = '12345' AND z = '${low}'"
    )


def test_an_undefined_variable_is_an_error_with_its_position():
    with pytest.raises(InvalidStatement) as error:
        substitute("SELECT 1;\n  WHERE x > ${missing}", {"low": "1"})
    assert "variable ${missing} is not defined (known: low)" in str(error.value)
    assert (error.value.line, error.value.column) == (2, 13)


def test_each_statement_as_substituted_and_as_written():
    templates = statement_templates(SCRIPT, {"low": "1000000", "high": "7"})
    assert templates == [
        (
            "CREATE STREAM s (k STRING KEY, v INT) WITH (KAFKA_TOPIC='s;t', VALUE_FORMAT='JSON');",
            "CREATE STREAM s (k STRING KEY, v INT) WITH (KAFKA_TOPIC='s;t', VALUE_FORMAT='JSON');",
        ),
        (
            "CREATE STREAM o AS SELECT k, v FROM s WHERE v > 1000000 AND v < 7 AND k <> '${low}' EMIT CHANGES;",
            "CREATE STREAM o AS SELECT k, v FROM s WHERE v > ${low} AND v < ${High} AND k <> '$${low}' EMIT CHANGES;",
        ),
    ]
