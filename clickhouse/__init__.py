"""ClickHouse: schema files, migrations, the ClickPipes-style loader and the embedded HTTP server."""
