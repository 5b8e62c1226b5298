//! Persistence: migrations, customers, DNC, campaigns, attempts and the append-only event log (SQLite; PostgreSQL-shaped).
