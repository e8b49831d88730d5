"""ksqlDB statements, the local engine that runs them, the test runner and REST apply.

The supported ksqlDB subset, the commands and the restart guarantees are documented in
ksql/README.md.
"""
