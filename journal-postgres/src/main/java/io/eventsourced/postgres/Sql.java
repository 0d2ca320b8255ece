package io.eventsourced.postgres;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Every SQL text the plugins run, built once from validated identifiers: the DDL from the shipped
 * {@code schema.sql}, the statements of the journal and the snapshot store. Values always travel
 * as bind parameters of prepared statements; only the validated, quoted names are spliced in.
 */
final class Sql {

  /** The shipped DDL, runnable by psql; the plugins read the same file. */
  static final String SCHEMA_RESOURCE = "/io/eventsourced/postgres/schema.sql";

  private static final Pattern PSQL_VARIABLE = Pattern.compile(":\"([a-z_]+)\"");
  /** The one-line meta-commands the plugins skip: {@code \set} and the defaults' {@code \if}. */
  private static final Pattern ONE_LINE_META =
      Pattern.compile("\\\\set .*|\\\\if :\\{\\?[a-z_]+\\} \\\\else \\\\set .* \\\\endif");
  /** The start of a conditional block: {@code \if :flag} alone on its line. */
  private static final Pattern PSQL_IF = Pattern.compile("\\\\if :([a-z_]+)");

  final List<String> ddl;
  final String journal;
  final String snapshot;

  /**
   * Inserts the rows of a batch whose writes pass the gap check, failing the whole statement
   * with a unique violation if any row exists already (a stale expected sequenceNr). The fast
   * path: conflicts are rare, and a plain insert costs the server far less than one with an ON
   * CONFLICT clause (speculative insertion writes an extra WAL record per row).
   */
  final String appendFast;
  /** As {@link #appendFast}, also returning the key of every row that landed. */
  final String appendFastReturning;
  /**
   * Copies the rows of a batch in PostgreSQL's binary COPY format: the fastest way to store them
   * (the server inserts them page by page, one WAL record per heap page), used when no write of
   * the batch needs the gap check. Fails as a whole with a unique violation if any row exists.
   */
  final String copyIn;
  /** Inserts the rows of a batch whose writes pass the expected-sequenceNr check; counts rows. */
  final String appendBatch;
  /** As {@link #appendBatch}, also returning the key of every row that landed. */
  final String appendBatchReturning;
  final String highestSequenceNr;
  final String replay;
  final String snapshotUpsert;
  final String snapshotRetain;
  /**
   * Serializes the saves of one entity while retention is on: two saves' deletes would otherwise
   * lock each other's rows in opposite orders (a deadlock). Held to the end of the transaction.
   */
  final String snapshotSaveLock;
  final String snapshotLoadLatest;
  final String snapshotDelete;
  final String tableExists;
  /** The kind of a relation ({@code pg_class.relkind}) and whether it has an ordering column. */
  final String tableShape;
  /** Whether a schema of the given (unquoted) name exists. */
  final String schemaExists;
  /** Whether the journal table holds any row. */
  final String journalHoldsEvents;
  /** Whether the (schema qualified) index exists and is invalid; no row if it does not exist. */
  final String orderingIndexInvalid;
  /** The ordering index, schema qualified and quoted. */
  final String orderingIndex;
  /** The ordering index's DDL without blocking writes, for a DBA to run on a filled table. */
  final String createOrderingIndexOnline;
  /**
   * The relations {@code setup = on} creates (tables, and the ordering index when on), schema
   * qualified and quoted: when all exist, setup runs no DDL, so an application user without
   * CREATE rights can start on objects a DBA made.
   */
  final List<String> setupObjects;

  Sql(PostgresSettings settings) {
    String schema = quote(settings.schema());
    journal = schema + "." + quote(settings.journalTable());
    snapshot = schema + "." + quote(settings.snapshotTable());
    ddl =
        render(
            Map.of(
                "schema", settings.schema(),
                "journal_table", settings.journalTable(),
                "snapshot_table", settings.snapshotTable(),
                "journal_ordering_index",
                settings.journalTable() + PostgresSettings.ORDERING_INDEX_SUFFIX),
            Map.of("ordering_index", settings.orderingIndex()));

    // One statement per batch, whatever its size: the arrays are unnested server-side.
    // Optimistic concurrency per write, without aborting the batch (the journal first tries the
    // plain insert, and only after a unique violation this form, with ON CONFLICT):
    // - a stale expected sequenceNr means row expected+1 exists: ON CONFLICT skips the write's
    //   rows instead of failing the transaction, so other entities of the batch are unaffected;
    // - an expected sequenceNr beyond the highest would leave a gap: the write's rows carry
    //   check_nr = expected, and land only if that row exists. The journal sends check_nr = 0
    //   when it already knows the row exists (it stored or read it; rows are never deleted),
    //   which saves the probe in the steady state.
    // The caller sees a conflict as a write whose rows did not all land.
    // The probe is a scalar subquery on purpose: PostgreSQL may turn an EXISTS into a "hashed
    // SubPlan" that scans the whole table, and a generic plan made while the table was small
    // keeps doing so as it grows; a scalar subquery is always one primary key probe.
    String plainInsert =
        "INSERT INTO " + journal
            + " (type_name, entity_id, sequence_nr, serializer_id, manifest, payload)"
            + " SELECT w.type_name, w.entity_id, w.sequence_nr, w.serializer_id, w.manifest, w.payload"
            + " FROM unnest(?::text[], ?::text[], ?::int8[], ?::int8[], ?::int4[], ?::text[], ?::bytea[])"
            + " AS w(type_name, entity_id, sequence_nr, check_nr, serializer_id, manifest, payload)"
            + " WHERE w.check_nr = 0 OR (SELECT e.sequence_nr FROM " + journal + " e"
            + " WHERE e.type_name = w.type_name AND e.entity_id = w.entity_id"
            + " AND e.sequence_nr = w.check_nr) IS NOT NULL";
    appendFast = plainInsert;
    appendFastReturning = plainInsert + " RETURNING type_name, entity_id";
    copyIn =
        "COPY " + journal + " (type_name, entity_id, sequence_nr, serializer_id, manifest, payload)"
            + " FROM STDIN (FORMAT binary)";
    String insert = plainInsert + " ON CONFLICT DO NOTHING";
    appendBatch = insert;
    appendBatchReturning = insert + " RETURNING type_name, entity_id";
    highestSequenceNr =
        "SELECT max(sequence_nr) FROM " + journal + " WHERE type_name = ? AND entity_id = ?";
    replay =
        "SELECT sequence_nr, serializer_id, manifest, payload FROM " + journal
            + " WHERE type_name = ? AND entity_id = ? AND sequence_nr >= ? AND sequence_nr <= ?"
            + " ORDER BY sequence_nr LIMIT ?";
    snapshotUpsert =
        "INSERT INTO " + snapshot
            + " (type_name, entity_id, sequence_nr, serializer_id, manifest, payload)"
            + " VALUES (?, ?, ?, ?, ?, ?)"
            + " ON CONFLICT (type_name, entity_id, sequence_nr) DO UPDATE SET"
            + " serializer_id = excluded.serializer_id, manifest = excluded.manifest,"
            + " payload = excluded.payload, write_timestamp = excluded.write_timestamp";
    snapshotRetain =
        "DELETE FROM " + snapshot + " WHERE type_name = ? AND entity_id = ? AND sequence_nr < ("
            + "SELECT sequence_nr FROM " + snapshot + " WHERE type_name = ? AND entity_id = ?"
            + " ORDER BY sequence_nr DESC OFFSET ? LIMIT 1)";
    snapshotSaveLock = "SELECT pg_advisory_xact_lock(hashtextextended(? || '|' || ?, 0))";
    snapshotLoadLatest =
        "SELECT sequence_nr, serializer_id, manifest, payload FROM " + snapshot
            + " WHERE type_name = ? AND entity_id = ? AND sequence_nr <= ?"
            + " ORDER BY sequence_nr DESC LIMIT 1";
    snapshotDelete =
        "DELETE FROM " + snapshot + " WHERE type_name = ? AND entity_id = ? AND sequence_nr <= ?";
    tableExists = "SELECT to_regclass(?) IS NOT NULL";
    tableShape =
        "SELECT c.relkind::text, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid"
            + " AND a.attname = 'ordering' AND NOT a.attisdropped) FROM pg_class c WHERE c.oid = to_regclass(?)";
    schemaExists = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ?)";
    journalHoldsEvents = "SELECT EXISTS (SELECT 1 FROM " + journal + ")";
    orderingIndexInvalid = "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(?)";
    String indexName = quote(settings.journalTable() + PostgresSettings.ORDERING_INDEX_SUFFIX);
    orderingIndex = schema + "." + indexName;
    createOrderingIndexOnline =
        "CREATE INDEX CONCURRENTLY " + indexName + " ON " + journal + " (type_name, ordering)";
    setupObjects =
        settings.orderingIndex() ? List.of(journal, snapshot, orderingIndex) : List.of(journal, snapshot);
  }

  /** Whether a statement of {@link #ddl} is the schema's creation. */
  static boolean createsSchema(String ddl) {
    return ddl.stripLeading().regionMatches(true, 0, "CREATE SCHEMA ", 0, 14);
  }

  /**
   * Quotes a validated identifier. Validation already excludes quotes; quoting also keeps
   * reserved words such as {@code user} usable as names.
   */
  static String quote(String identifier) {
    return "\"" + identifier + "\"";
  }

  /**
   * The statements of the shipped {@code schema.sql} with its psql variables replaced: psql
   * meta-commands on one line ({@code \set}, the defaults' {@code \if ... \endif}) and comments
   * are dropped, {@code :"name"} becomes the quoted identifier, and a block between {@code \if
   * :flag} and {@code \endif} is kept only if the flag is true.
   */
  static List<String> render(Map<String, String> names, Map<String, Boolean> flags) {
    String text;
    try (InputStream in = Sql.class.getResourceAsStream(SCHEMA_RESOURCE)) {
      if (in == null) {
        throw new IllegalStateException("resource [" + SCHEMA_RESOURCE + "] is missing from the classpath");
      }
      text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read [" + SCHEMA_RESOURCE + "]", e);
    }
    List<String> statements = new ArrayList<>();
    StringBuilder current = new StringBuilder();
    ArrayDeque<Boolean> keep = new ArrayDeque<>();
    for (String line : text.split("\n")) {
      String trimmed = line.strip();
      Matcher block = PSQL_IF.matcher(trimmed);
      if (block.matches()) {
        Boolean flag = flags.get(block.group(1));
        if (flag == null) {
          throw new IllegalStateException(
              "[" + SCHEMA_RESOURCE + "] uses unknown flag [" + block.group(1) + "]");
        }
        keep.push(flag && (keep.isEmpty() || keep.peek()));
        continue;
      }
      if (trimmed.equals("\\endif")) {
        if (keep.isEmpty()) {
          throw new IllegalStateException("[" + SCHEMA_RESOURCE + "] has an \\endif without \\if");
        }
        keep.pop();
        continue;
      }
      if (trimmed.startsWith("\\") && !ONE_LINE_META.matcher(trimmed).matches()) {
        // \else, \elif or anything else this renderer would get wrong.
        throw new IllegalStateException(
            "[" + SCHEMA_RESOURCE + "] uses an unsupported psql meta-command [" + trimmed + "]");
      }
      if (trimmed.isEmpty() || trimmed.startsWith("--") || trimmed.startsWith("\\")
          || (!keep.isEmpty() && !keep.peek())) {
        continue;
      }
      current.append(trimmed).append(' ');
      if (trimmed.endsWith(";")) {
        statements.add(substitute(current.toString().strip(), names));
        current.setLength(0);
      }
    }
    if (!current.toString().isBlank() || !keep.isEmpty()) {
      throw new IllegalStateException("[" + SCHEMA_RESOURCE + "] ends with an unterminated statement or block");
    }
    return List.copyOf(statements);
  }

  private static String substitute(String statement, Map<String, String> names) {
    Matcher m = PSQL_VARIABLE.matcher(statement);
    StringBuilder out = new StringBuilder();
    while (m.find()) {
      String value = names.get(m.group(1));
      if (value == null) {
        throw new IllegalStateException(
            "[" + SCHEMA_RESOURCE + "] uses unknown variable [" + m.group(1) + "]");
      }
      m.appendReplacement(out, Matcher.quoteReplacement(quote(value)));
    }
    m.appendTail(out);
    return out.toString();
  }
}
