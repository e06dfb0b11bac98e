"""Storage: the one place that knows the schema and writes SQL (SQLite or PostgreSQL)."""
