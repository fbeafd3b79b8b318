//! Integration tests of the ingest server: the router without a socket, real servers on
//! port 0, and the same storage checks on SQLite and on PostgreSQL (127.0.0.1:5432).

mod collect;
mod dedup;
mod edge;
mod helpers;
mod monitors;
mod shutdown;
mod stats;
mod trace;
mod wal;
