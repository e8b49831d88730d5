"""`coinstream ksql`: test statements, run them on Kafka, or apply them to a real ksqlDB server.

coinstream ksql test -s statements.sql -i input.json -o output.json
coinstream ksql run [FILES...]            (default: ksql/*.sql in file-name order)
coinstream ksql apply [--server URL] [FILES...]
coinstream ksql conformance [--areas] QTT_FILES...
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from coinstream.cli.metrics_endpoint import metrics_endpoint, metrics_port
from coinstream.cli.setting_options import setting_option
from coinstream.common.processes import stop_requested_on_signals

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
@click.option(
    "-s",
    "--statements",
    "statements",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="File with the statements to run.",
)
@click.option(
    "-i",
    "--input-file",
    "input_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help='JSON file {"inputs": [...]} in ksql-test-runner format.',
)
@click.option(
    "-o",
    "--output-file",
    "output_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help='JSON file {"outputs": [...]} with the expected records.',
)
@click.option(
    "-d",
    "--define",
    "defines",
    multiple=True,
    metavar="NAME=VALUE",
    help="A variable for `${NAME}` references in the statements (repeatable), as ksqlDB's DEFINE.",
)
def test_command(statements: str, input_file: str, output_file: str, defines: tuple[str, ...]) -> None:
    """Run statements over test inputs and compare with expected outputs (ksql-test-runner files).

    Exit status: 0 outputs match, 1 outputs differ, 2 a statement was rejected, 3 internal error.
    """
    from coinstream.ksql.testrunner import run_files

    variables = {}
    for item in defines:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--define")
        variables[name.strip()] = value
    result = run_files(statements, input_file, output_file, variables or None)
    stream = sys.stdout if result.exit_code == 0 else sys.stderr
    click.echo(result.report, file=stream)
    sys.exit(result.exit_code)


def _plan_or_exit(files: list[Path], variables: dict[str, str]):
    from coinstream.ksql.errors import KsqlError
    from coinstream.ksql.planner import plan_script

    if not files:
        raise click.UsageError("no statement files (and no ksql/*.sql found)")
    try:
        return plan_script(read_script(files), variables)
    except KsqlError as error:
        click.echo(f"coinstream ksql: statement rejected: {error.describe()}", err=True)
        sys.exit(2)


@command.command(name="run")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--app-id",
    default="coinstream-ksql",
    show_default=True,
    help="Consumer group and changelog prefix; a new id reprocesses the inputs from the start.",
)
@setting_option(
    "--commit-interval-ms",
    setting="ksql_commit_interval_ms",
    help="How often outputs are flushed, state is checkpointed and offsets are committed",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Emit one output per update (like ksqlDB with its record cache off) instead of the latest "
    "value per window at each commit.",
)
@click.option(
    "--idle-exit", type=float, default=None, help="Stop after this many seconds without input (batch runs, tests)."
)
@click.option(
    "--processing-log-topic",
    default="ksql_processing_log",
    show_default=True,
    help="Topic receiving records that could not be processed, with the reason.",
)
@click.option(
    "--session-timeout-ms",
    type=click.IntRange(min=500),
    default=None,
    help="Consumer group session timeout (default: common.kafka_config's). Shorter = faster restarts.",
)
@setting_option(
    "--metrics-port", "port_option", setting="ksql_metrics_port", help="Prometheus /metrics on METRICS_HOST"
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where window state is kept on local disk, so that it outlives the broker's changelogs "
    "(default: COINSTREAM_DATA_DIR/ksql-state).",
)
@click.pass_obj
def run_command(
    settings,
    files: tuple[str, ...],
    app_id: str,
    commit_interval_ms: int,
    no_cache: bool,
    idle_exit: float | None,
    processing_log_topic: str,
    session_timeout_ms: int | None,
    port_option: int | None,
    state_dir: Path | None,
) -> None:
    """Run the statements against Kafka (default: the project's ksql/*.sql, in file-name order)."""
    from coinstream.ksql.errors import KsqlError
    from coinstream.ksql.kafka_runner import KafkaRunner, RunnerError
    from coinstream.ksql.metrics import EngineMetrics

    catalog = _plan_or_exit(statement_files(files), settings.ksql_variables())
    metrics = EngineMetrics()
    try:
        # The endpoint first: a busy port is reported before anything touches Kafka.
        with metrics_endpoint(
            metrics.registry,
            metrics_port(settings.ksql_metrics_port, port_option),
            settings.metrics_host,
            "engine",
            "KSQL_METRICS_PORT",
        ):
            interval_ms = commit_interval_ms
            runner = KafkaRunner(
                catalog,
                settings,
                app_id=app_id,
                commit_interval_ms=interval_ms,
                cache=not no_cache,
                processing_log_topic=processing_log_topic,
                idle_exit_s=idle_exit,
                session_timeout_ms=session_timeout_ms,
                metrics=metrics,
                state_dir=state_dir or settings.coinstream_data_dir / "ksql-state",
            )
            with stop_requested_on_signals("stopping after the current cycle", on_stop=runner.stop):
                stats = runner.run()
    except KsqlError as error:
        click.echo(f"coinstream ksql run: {error.describe()}", err=True)
        sys.exit(2)
    except RunnerError as error:
        click.echo(f"coinstream ksql run: {error}", err=True)
        sys.exit(1)
    seconds = stats.processing_seconds
    rate = f", {stats.records_in / seconds:.0f} records/s over {seconds:.2f} s" if seconds > 0 else ""
    click.echo(
        f"ksql run: {stats.records_in} record(s) in, {stats.records_out} out, "
        f"{stats.processing_errors} processing-log entr(y/ies){rate}"
    )


@command.command(name="conformance")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--areas", is_flag=True, help="Also print a Markdown table of the results per feature area.")
@click.option("--verbose", is_flag=True, help="A line for every test, not only failures and crashes.")
@click.option("--only", default=None, help="Run only the tests whose name contains this text.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Time limit per test, seconds.")
def conformance_command(files: tuple[str, ...], areas: bool, verbose: bool, only: str | None, timeout: float) -> None:
    """Run ksqlDB query-validation-test (QTT) JSON files in-process and print the summary.

    Exit status: 0 when nothing failed or crashed, 1 otherwise.
    """
    from coinstream.ksql.conformance import main

    argv = [*files, "--timeout", str(timeout)]
    argv += ["--areas"] if areas else []
    argv += ["--verbose"] if verbose else []
    argv += ["--only", only] if only is not None else []
    sys.exit(main(argv))


@command.command(name="apply")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--server", default=None, help="ksqlDB server URL (default: KSQLDB_URL).")
@click.pass_obj
def apply_command(settings, files: tuple[str, ...], server: str | None) -> None:
    """Send the statements to a ksqlDB server's REST API; existing streams/tables are left alone."""
    from coinstream.ksql.errors import KsqlError
    from coinstream.ksql.rest_apply import ApplyError, KsqlDbClient, apply_script, safe_url
    from coinstream.ksql.variables import substitute

    url = server or settings.ksqldb_url
    if not url:
        raise click.UsageError("no ksqlDB server: pass --server or set KSQLDB_URL")
    paths = statement_files(files)
    if not paths:
        raise click.UsageError("no statement files (and no ksql/*.sql found)")
    password = settings.ksqldb_password.get_secret_value() if settings.ksqldb_password else None
    client = KsqlDbClient(url, settings.ksqldb_user, password)
    try:
        report = apply_script(substitute(read_script(paths), settings.ksql_variables()), client)
    except KsqlError as error:
        click.echo(f"coinstream ksql apply: not sent, the file is not valid ksqlDB: {error.describe()}", err=True)
        sys.exit(2)
    except ApplyError as error:
        click.echo(f"coinstream ksql apply: {safe_url(url)}: {error}", err=True)
        sys.exit(1)
    finally:
        client.close()
    click.echo(report.summary())
