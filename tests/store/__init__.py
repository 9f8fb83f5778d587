"""The state store on SQLite and real PostgreSQL."""
