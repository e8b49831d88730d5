"""ksqlDB statements, the local engine that runs them, the test runner and REST apply."""
