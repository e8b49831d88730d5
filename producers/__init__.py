"""Producers: the LiveCoinWatch client, the current-rates and daily-close producers, the simulated API."""
