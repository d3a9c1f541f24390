"""Storage: DSNs, the ClickHouse connection, the schema and its migrations, cluster DDL, rollup rebuilds."""
