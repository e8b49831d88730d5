"""The embedded ClickHouse server: chDB behind ClickHouse's HTTP interface on 127.0.0.1.

chDB runs ClickHouse in-process, and one process owns a data directory. This package
lets that one process serve every other one over ClickHouse's own HTTP protocol, so producers,
loaders, dashboards and `coinstream sql` use clickhouse-connect exactly as against a real server.

Modules, one job each: `protocol` (request/response conventions), `compression` (body codecs),
`sqlscan` (where a query ends and insert data starts), `auth` (users), `engine` (chDB and the
worker pool), `sessions` (ClickHouse HTTP sessions), `app` (the aiohttp handlers), `runner`
(start/stop), `launcher` (run it as a subprocess, for tests and the local stack).
"""
