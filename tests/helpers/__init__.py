"""What tests share: helpers, and small programs the tests run as separate processes (so clients
really live in other processes)."""
