"""One module per sub-command, each exposing `command` (discovered by `coinstream.cli`)."""
