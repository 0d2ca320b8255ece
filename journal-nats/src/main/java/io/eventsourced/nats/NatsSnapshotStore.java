package io.eventsourced.nats;

import io.eventsourced.PersistenceId;
import io.eventsourced.PluginContext;
import io.eventsourced.journal.JournalException;
import io.eventsourced.snapshot.SnapshotRecord;
import io.eventsourced.snapshot.SnapshotStore;
import io.nats.client.JetStreamApiException;
import io.nats.client.KeyValue;
import io.nats.client.KeyValueManagement;
import io.nats.client.KeyValueOptions;
import io.nats.client.api.KeyValueConfiguration;
import io.nats.client.api.KeyValueEntry;
import io.nats.client.PurgeOptions;
import io.nats.client.api.KeyValueOperation;
import io.nats.client.api.StreamInfo;
import io.nats.client.api.StreamInfoOptions;
import io.nats.client.api.Subject;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.Done;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link SnapshotStore} on a NATS JetStream key-value bucket. Configured at {@code
 * eventsourced.snapshot-store.nats} (see the module's {@code reference.conf}).
 *
 * <p>Each snapshot is one key {@code <type>.<id>.<sequenceNr>} (type and id encoded as in the
 * journal's subjects), holding serializer id, manifest and payload. Saving at the same sequence
 * number overwrites the key (the bucket keeps one revision per key); loading lists the entity's
 * keys (one stream info request filtered to them) and reads the highest one at or below the
 * bound; deleting purges those keys' subjects from the bucket's stream, leaving no markers.
 * All calls block, so they run on the plugin dispatcher.
 */
public final class NatsSnapshotStore implements SnapshotStore {
  private static final Logger log = LoggerFactory.getLogger(NatsSnapshotStore.class);
  private static final int BUCKET_NOT_FOUND = 10059;

  private final SharedConnection shared;
  private final KeyValue bucket;
  private final Executor dispatcher;
  private final SnapshotSettings settings;
  private final String stream;
  private final String subjectPrefix;
  private final AtomicBoolean closed = new AtomicBoolean();

  /**
   * Creates the store; called by the runtime. Connects (or joins the shared connection) and, with
   * {@code setup = on}, creates the bucket if it is missing.
   *
   * @param context the plugin context
   * @throws IllegalArgumentException if the configuration is invalid
   * @throws IllegalStateException if the servers cannot be reached or the bucket is missing
   */
  public NatsSnapshotStore(PluginContext context) {
    this.settings = SnapshotSettings.fromConfig(context.config(), context.configPath());
    this.dispatcher = context.dispatcher();
    // The bucket's own stream and subjects, as the key-value layer of JetStream names them.
    this.stream = "KV_" + settings.bucket();
    this.subjectPrefix = "$KV." + settings.bucket() + ".";
    this.shared =
        SharedConnection.acquire(context.system(), settings.connection(), context.keyPath("connection"));
    try {
      ensureBucket(context.configPath());
      this.bucket = shared.connection().keyValue(settings.bucket(), keyValueOptions());
    } catch (IOException e) {
      shared.release();
      throw new IllegalStateException(
          "cannot open bucket [" + settings.bucket() + "] on [" + settings.connection().serversText() + "]: " + e.getMessage(),
          e);
    } catch (RuntimeException e) {
      shared.release();
      throw e;
    }
    log.info(
        "NATS snapshot store [{}] uses bucket [{}] on [{}]",
        context.configPath(),
        settings.bucket(),
        settings.connection().serversText());
  }

  /** Every key-value request waits {@code request-timeout}, as the journal's requests do. */
  private KeyValueOptions keyValueOptions() {
    return KeyValueOptions.builder().jsRequestTimeout(settings.connection().requestTimeout()).build();
  }

  private void ensureBucket(String path) throws IOException {
    String servers = settings.connection().serversText();
    KeyValueManagement kvm = shared.connection().keyValueManagement(keyValueOptions());
    try {
      kvm.getStatus(settings.bucket());
    } catch (JetStreamApiException e) {
      if (e.getApiErrorCode() != BUCKET_NOT_FOUND) {
        throw new IllegalStateException(
            "cannot read bucket [" + settings.bucket() + "] on [" + servers + "]: " + e.getMessage(), e);
      }
      if (!settings.setup()) {
        throw new IllegalStateException(
            "bucket ["
                + settings.bucket()
                + "] does not exist on ["
                + servers
                + "]; create it or set ["
                + path
                + ".setup = on]",
            e);
      }
      try {
        kvm.create(
            KeyValueConfiguration.builder()
                .name(settings.bucket())
                .description("eventsourced snapshots")
                .storageType(settings.storage())
                .replicas(settings.replicas())
                .maxBucketSize(settings.maxBytes())
                .maxHistoryPerKey(1)
                .build());
        log.info("Created key-value bucket [{}] for snapshots", settings.bucket());
      } catch (JetStreamApiException created) {
        throw new IllegalStateException(
            "cannot create bucket [" + settings.bucket() + "] on [" + servers + "]: " + created.getMessage(),
            created);
      }
    }
  }

  private static String prefix(PersistenceId id) {
    return Keys.entityKey(id) + ".";
  }

  @Override
  public CompletionStage<Done> save(SnapshotRecord snapshot) {
    return run(
        snapshot.persistenceId(),
        snapshot.sequenceNr(),
        "save the snapshot at sequenceNr [" + snapshot.sequenceNr() + "] of",
        () -> {
          String tooLong =
              NatsJournal.subjectTooLong(
                  shared.connection(), "$KV." + settings.bucket() + "." + prefix(snapshot.persistenceId()) + snapshot.sequenceNr());
          if (tooLong != null) {
            throw new IllegalArgumentException(tooLong + "; nothing was stored");
          }
          if (Envelope.hasLoneSurrogate(snapshot.manifest())) {
            throw new IllegalArgumentException(
                "its manifest contains a lone surrogate, which UTF-8 cannot hold; nothing was stored");
          }
          bucket.put(
              prefix(snapshot.persistenceId()) + snapshot.sequenceNr(),
              Envelope.encodeSnapshot(snapshot.serializerId(), snapshot.manifest(), snapshot.payload()));
          return Done.getInstance();
        });
  }

  @Override
  public CompletionStage<Optional<SnapshotRecord>> loadLatest(PersistenceId persistenceId, long maxSequenceNr) {
    return run(
        persistenceId,
        maxSequenceNr,
        "load the latest snapshot at or below sequenceNr [" + maxSequenceNr + "] of",
        () -> {
          // Newest first, so a snapshot deleted between listing and reading falls back to the next.
          List<Long> candidates = sequenceNrs(persistenceId, maxSequenceNr);
          candidates.sort((a, b) -> Long.compare(b, a));
          for (long seq : candidates) {
            KeyValueEntry entry = bucket.get(prefix(persistenceId) + seq);
            if (entry != null && entry.getOperation() == KeyValueOperation.PUT && entry.getValue() != null) {
              Envelope.SnapshotBody body = Envelope.decodeSnapshot(entry.getValue());
              return Optional.of(
                  new SnapshotRecord(persistenceId, seq, body.serializerId(), body.manifest(), body.payload()));
            }
          }
          return Optional.empty();
        });
  }

  @Override
  public CompletionStage<Done> delete(PersistenceId persistenceId, long maxSequenceNr) {
    return run(
        persistenceId,
        maxSequenceNr,
        "delete the snapshots at or below sequenceNr [" + maxSequenceNr + "] of",
        () -> {
          for (long seq : sequenceNrs(persistenceId, maxSequenceNr)) {
            // Purging the key's subject in the bucket's stream leaves no delete marker behind.
            shared.management().purgeStream(stream, PurgeOptions.subject(subjectPrefix + prefix(persistenceId) + seq));
          }
          return Done.getInstance();
        });
  }

  /**
   * The sequence numbers of the entity's snapshots at or below a bound: one stream info request
   * filtered to the entity's keys, which answers at once even when there are none.
   */
  private List<Long> sequenceNrs(PersistenceId id, long maxSequenceNr) throws IOException, JetStreamApiException {
    String keyPrefix = subjectPrefix + prefix(id);
    StreamInfo info = shared.management().getStreamInfo(stream, StreamInfoOptions.filterSubjects(keyPrefix + "*"));
    List<Long> result = new ArrayList<>();
    List<Subject> subjects = info.getStreamState().getSubjects();
    if (subjects == null) {
      return result;
    }
    for (Subject subject : subjects) {
      String name = subject.getName();
      if (name.startsWith(keyPrefix)) {
        try {
          long seq = Long.parseLong(name.substring(keyPrefix.length()));
          if (seq <= maxSequenceNr) {
            result.add(seq);
          }
        } catch (NumberFormatException e) {
          log.debug("Ignoring foreign key [{}] in bucket [{}]", name, settings.bucket());
        }
      }
    }
    return result;
  }

  /** A blocking bucket operation. */
  private interface Call<T> {
    T call() throws IOException, JetStreamApiException, InterruptedException;
  }

  private <T> CompletionStage<T> run(PersistenceId id, long sequenceNr, String what, Call<T> call) {
    CompletableFuture<T> result = new CompletableFuture<>();
    if (closed.get()) {
      result.completeExceptionally(
          new JournalException(
              "cannot " + what + " [" + id + "] in bucket [" + settings.bucket() + "]: the NATS snapshot store is closed",
              id, sequenceNr, null));
      return result;
    }
    try {
      dispatcher.execute(
          () -> {
            try {
              result.complete(call.call());
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              result.completeExceptionally(failure(id, sequenceNr, what, e));
            } catch (IOException | JetStreamApiException | RuntimeException e) {
              result.completeExceptionally(failure(id, sequenceNr, what, e));
            } catch (Error e) {
              // An Error from the client: the entity waiting for this (a recovery, a snapshot)
              // must still hear of it. What the JVM cannot recover from is rethrown afterwards,
              // so that Pekko ends the JVM (pekko.jvm-exit-on-fatal-error) as anywhere else.
              result.completeExceptionally(failure(id, sequenceNr, what, e));
              if ((e instanceof VirtualMachineError && !(e instanceof StackOverflowError)) || e instanceof LinkageError) {
                throw e;
              }
            }
          });
    } catch (RuntimeException e) {
      // Never thrown from the method (e.g. a dispatcher rejecting work at shutdown).
      result.completeExceptionally(failure(id, sequenceNr, what, e));
    }
    return result;
  }

  private JournalException failure(PersistenceId id, long sequenceNr, String what, Throwable e) {
    return new JournalException(
        "cannot " + what + " [" + id + "] in bucket [" + settings.bucket() + "]: " + e, id, sequenceNr, e);
  }

  /** The shared connection; for tests in this package. */
  io.nats.client.Connection connection() {
    return shared.connection();
  }

  /** Releases this plugin's use of the shared connection; idempotent. */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      shared.release();
    }
  }
}
