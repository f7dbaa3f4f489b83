-- Schema version bookkeeping for the edge. Later migrations add accounts, devices, relays and the audit log.
-- Timestamps are integer epoch milliseconds (DESIGN.md).
CREATE TABLE IF NOT EXISTS schema_meta (
  key TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
