"""`coinstream ksql`: test statements, run them on Kafka, or apply them to a real ksqlDB server.

    coinstream ksql test -s statements.sql -i input.json -o output.json
    coinstream ksql run [FILES...]            (default: ksql/*.sql in file-name order)
    coinstream ksql apply [--server URL] [FILES...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

DEFAULT_STATEMENTS_DIR = Path(__file__).resolve().parents[3] / "ksql"


def statement_files(files: tuple[str, ...]) -> list[Path]:
    """The given files, or the project's ksql/*.sql in file-name order."""
    if files:
        return [Path(f) for f in files]
    return sorted(DEFAULT_STATEMENTS_DIR.glob("*.sql"))


def read_script(files: list[Path]) -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in files)


@click.group(name="ksql")
def command() -> None:
    """ksqlDB statements: the local engine, its test runner, and REST apply to a real ksqlDB."""


@command.command(name="test")
@click.option("-s", "--statements", "statements", required=True, type=click.Path(exists=True, dir_okay=False),
              help="File with the statements to run.")
@click.option("-i", "--input-file", "input_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help='JSON file {"inputs": [...]} in ksql-test-runner format.')
@click.option("-o", "--output-file", "output_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help='JSON file {"outputs": [...]} with the expected records.')
def test_command(statements: str, input_file: str, output_file: str) -> None:
    """Run statements over test inputs and compare with expected outputs (ksql-test-runner files).

    Exit status: 0 outputs match, 1 outputs differ, 2 a statement was rejected.
    """
    from ksql.testrunner import run_files

    result = run_files(statements, input_file, output_file)
    stream = sys.stdout if result.exit_code == 0 else sys.stderr
    click.echo(result.report, file=stream)
    sys.exit(result.exit_code)
