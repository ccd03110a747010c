"""Storage. PostgreSQL is the source of truth; SQL lives only here.

The domain sees storage through the Protocols of `protocols` (`EventStore` for the
write path, `EventReader` for reads and chain ranges, `SinkStore` for the sinks'
cursors, checkpoints and archived ranges). The PostgreSQL adapters implement them:
`event_writes.PgEventStore` (and `ChainLock`, the chain's advisory lock),
`event_reads.PgEventReader`, `sink_state.PgSinkState`; `postgres` holds the pool, the
row mapping and `map_db_errors`, where driver errors become domain errors. Importing
this package imports no driver.
"""
