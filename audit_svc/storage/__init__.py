"""Storage adapters. PostgreSQL is the source of truth; SQL lives only here."""
