-- Schema of the eventsourced PostgreSQL journal and snapshot store.
--
-- The plugins run exactly these statements at start when `setup = on` (the default),
-- idempotently, with the names configured in `eventsourced.postgres`.
-- With `setup = off`, a DBA creates the objects with psql; the names default to the
-- plugin defaults and can be set with -v, e.g.
--
--   psql -v schema=eventsourced -v journal_table=event_journal \
--        -v snapshot_table=snapshot -v ordering_index=off -f schema.sql
--
-- Requires PostgreSQL 12 or later.

\if :{?schema} \else \set schema eventsourced \endif
\if :{?journal_table} \else \set journal_table event_journal \endif
\if :{?snapshot_table} \else \set snapshot_table snapshot \endif
\if :{?ordering_index} \else \set ordering_index off \endif
\set journal_ordering_index :journal_table '_type_ordering_idx'

CREATE SCHEMA IF NOT EXISTS :"schema";

-- One row per event. The primary key leads with the entity key, so replay and the
-- highest sequenceNr of one entity are ordered scans of the primary key index.
-- The key columns use the "C" collation: byte-wise comparison is all a key needs, and it is
-- cheaper than a locale's collation on every index insert and lookup.
-- `ordering` is a global, increasing position for by-type queries (projections).
CREATE TABLE IF NOT EXISTS :"schema".:"journal_table" (
  type_name       text        COLLATE "C" NOT NULL,
  entity_id       text        COLLATE "C" NOT NULL,
  sequence_nr     bigint      NOT NULL,
  ordering        bigint      GENERATED ALWAYS AS IDENTITY,
  serializer_id   integer     NOT NULL,
  manifest        text        NOT NULL,
  payload         bytea       NOT NULL,
  write_timestamp timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (type_name, entity_id, sequence_nr)
);

-- Events of one entity type in global order, for by-type queries (projections). Off by
-- default: nothing in the library queries by type yet, and the index costs every insert
-- (about 20 % of the server's CPU time in the W1 benchmark). `ordering` is filled either way,
-- so the index can be added later, online: CREATE INDEX CONCURRENTLY ... (type_name, ordering).
\if :ordering_index
CREATE INDEX IF NOT EXISTS :"journal_ordering_index"
  ON :"schema".:"journal_table" (type_name, ordering);
\endif

-- One row per snapshot; saving the same entity and sequenceNr again overwrites it.
CREATE TABLE IF NOT EXISTS :"schema".:"snapshot_table" (
  type_name       text        COLLATE "C" NOT NULL,
  entity_id       text        COLLATE "C" NOT NULL,
  sequence_nr     bigint      NOT NULL,
  serializer_id   integer     NOT NULL,
  manifest        text        NOT NULL,
  payload         bytea       NOT NULL,
  write_timestamp timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (type_name, entity_id, sequence_nr)
);
