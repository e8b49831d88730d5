"""The local stack: which processes run, and the supervisor that runs them."""
