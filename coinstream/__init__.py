"""The shell on top: the CLI, the local broker launcher and the local stack supervisor."""
