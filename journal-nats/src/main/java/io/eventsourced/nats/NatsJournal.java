package io.eventsourced.nats;

import io.eventsourced.PersistenceId;
import io.eventsourced.PluginContext;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.ConcurrencyConflictException;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.Message;
import io.nats.client.PublishOptions;
import io.nats.client.JetStreamSubscription;
import io.nats.client.PullSubscribeOptions;
import io.nats.client.PushSubscribeOptions;
import io.nats.client.api.AckPolicy;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.DeliverPolicy;
import io.nats.client.api.DiscardPolicy;
import io.nats.client.api.MessageGetRequest;
import io.nats.client.api.MessageInfo;
import io.nats.client.api.PublishAck;
import io.nats.client.api.StreamConfiguration;
import io.nats.client.api.StreamInfo;
import io.nats.client.impl.Headers;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;
import java.util.function.Function;
import org.apache.pekko.Done;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link Journal} on NATS JetStream: one stream, one subject per entity, the server enforcing
 * optimistic concurrency. Configured at {@code eventsourced.journal.nats} (see the module's
 * {@code reference.conf}).
 *
 * <h2>Mapping</h2>
 *
 * <ul>
 *   <li>Every entity has its own subject {@code <subject-prefix>.<type>.<id>} in the stream; type
 *       and id are encoded reversibly (letters, digits, {@code -} and {@code _} stay, every other
 *       character becomes {@code =XX} per UTF-8 byte), so any id works, wildcards and dots
 *       included.
 *   <li>One atomic write is one message: an envelope of all its events, so they are stored
 *       together or not at all. Its header {@code Es-Seq} carries the entity's sequence number of
 *       the first event, or {@code first-last} when it holds several. Stream sequences stay
 *       internal.
 *   <li>Every publish, the very first of an entity included (expecting 0), carries the expected
 *       last subject sequence: the stream sequence of the entity's last message. The journal
 *       caches that per entity after each append, replay and lookup, and looks it up from the last
 *       message of the subject on a miss. The server rejects a publish whose expectation is stale
 *       with API error 10071, which becomes a {@link ConcurrencyConflictException}.
 *   <li>Each publish carries a message id ({@code <type>.<id>:<first sequenceNr>:<write id>}) that
 *       is unique per append call. When an acknowledgement is lost (timeout, reconnect) the
 *       journal republishes the same message; within the stream's duplicate window the server
 *       answers with the original acknowledgement instead of storing it twice.
 *   <li>Publishes are asynchronous and pipelined on one shared connection: many entities' writes
 *       are in flight at once, each caller waiting only for its own acknowledgement.
 *   <li>Replay looks up the subject's last message (which also gives the highest sequence
 *       number), finds the start message by binary search over the subject (for replays that do
 *       not start at 1), then streams the subject through an ordered consumer (ephemeral,
 *       flow-controlled, filtered to the subject) and stops at the highest sequence number. A
 *       write that holds everything asked for is served from the last message alone.
 *   <li>Mass recovery: replays requested at about the same time are gathered, and a group of at
 *       least {@code shared-scan.min-replays} that must read the stream is served by one shared
 *       scan: a single pull consumer over the subjects of their type (or the whole stream),
 *       from the group's lowest start to its highest last message, routing each message by
 *       subject. On nats-server 2.9 every filtered consumer walks the interleaved stream, so this
 *       saves a walk per entity. Each replay keeps its own bounds, order, contiguity check and
 *       failure, and completes as soon as it has everything. A lone replay never waits; one that
 *       finds a group gathering once it is prepared joins that group.
 * </ul>
 *
 * <p>Blocking calls (lookups, replays, setup) run on the plugin dispatcher, never on the caller's
 * or the NATS client's threads. A successful append completes on the client's thread that
 * processes acknowledgements, to save a thread hand-off per write: dependent stages must not
 * block (the runtime only pipes the outcome to the entity). Replays, lookups and failed appends
 * complete on the plugin dispatcher (an append the client rejects at once, on the caller's
 * thread).
 */
public final class NatsJournal implements Journal {
  private static final Logger log = LoggerFactory.getLogger(NatsJournal.class);

  /** Header carrying the sequence number of the first event, or {@code first-last}. */
  static final String SEQ_HEADER = "Es-Seq";

  /** Header in which the server keeps a message's id. */
  private static final String MSG_ID_HEADER = "Nats-Msg-Id";

  static final int WRONG_LAST_SEQUENCE = 10071;
  /** JetStream API error: consumer not found. */
  private static final int CONSUMER_NOT_FOUND = 10014;
  /** Tries to delete a shared scan's consumer. */
  private static final int DELETE_ATTEMPTS = 3;
  static final int NO_MESSAGE_FOUND = 10037;
  static final int STREAM_NOT_FOUND = 10059;

  /** A group closes after at most this many gather windows, however requests keep coming. */
  private static final long MAX_GATHER_WINDOWS = 50;

  /** How often a gathering drain looks for new requests. */
  private static final long GATHER_POLL_NANOS = 1_000_000;

  /** Most messages one pull request of a shared scan asks for. */
  private static final int SCAN_BATCH = 2000;

  /** About the most bytes one pull request of a shared scan asks for. */
  private static final long SCAN_REQUEST_BYTES = 4L * 1024 * 1024;

  /** The scan's client-side buffer: above what its outstanding requests can deliver. */
  private static final long SCAN_PENDING_BYTES = 64L * 1024 * 1024;

  /** Bytes counted per message for headers when sizing requests (ours are about 150). */
  private static final int SCAN_HEADER_ALLOWANCE = 256;

  /** Messages per pull request so that one request holds about {@link #SCAN_REQUEST_BYTES}. */
  static int batchFor(long largestMessageBytes) {
    long perMessage = Math.max(1, largestMessageBytes) + SCAN_HEADER_ALLOWANCE;
    return (int) Math.max(1, Math.min(SCAN_BATCH, SCAN_REQUEST_BYTES / perMessage));
  }

  /**
   * After how long without a pull request the server removes a shared scan's consumer: long
   * enough for slow event handlers to work through what arrived, short enough to clean up after
   * a crashed process.
   */
  private static final Duration SCAN_CONSUMER_INACTIVE = Duration.ofMinutes(10);

  /** See {@link #worthScanning}: fitted to the measured break-even of 16 of 50 entities. */
  private static final double SCAN_BREAK_EVEN = 24;

  /** Threads preparing a shared scan's members at once; their lookups are round trips. */
  private static final int PREPARE_PARALLELISM = 4;

  private final SharedConnection shared;
  private final Connection connection;
  private final JetStream jetStream;
  private final JetStreamManagement management;
  private final Executor dispatcher;
  private final JournalSettings settings;
  private final String subjectPrefix;
  private final PositionCache positions;
  private final String writerId;
  private final AtomicLong writeCounter = new AtomicLong();
  private final AtomicBoolean closed = new AtomicBoolean();
  /** Replays waiting for a drain task, which groups them (see {@link #drain()}). */
  private final Queue<Replay> queued = new ConcurrentLinkedQueue<>();
  /** Whether a drain task is scheduled or gathering; a new request then needs no other. */
  private final AtomicBoolean drainScheduled = new AtomicBoolean();
  private final AtomicLong sharedScans = new AtomicLong();
  /** Replays that started alone and joined a gathering group; for tests in this package. */
  private final AtomicLong rejoinedReplays = new AtomicLong();
  /** Rejected republishes confirmed from the stored first attempt; for tests in this package. */
  private final AtomicLong confirmedRepublishes = new AtomicLong();
  /** Publishes with an unknown outcome (acknowledgement timed out or lost); for tests here. */
  private final AtomicLong lostAcknowledgements = new AtomicLong();
  /** Whether a drain is gathering a group (see {@link #gather}); a lone replay then joins it. */
  private volatile boolean gathering;
  private final AtomicLong sharedScanMessages = new AtomicLong();

  /** Where an entity's last message is: its last sequence number and its stream sequence. */
  record Position(long sequenceNr, long streamSequence) {}

  /**
   * Creates the journal; called by the runtime. Connects (or joins the shared connection) and,
   * with {@code setup = on}, creates the stream if it is missing.
   *
   * @param context the plugin context
   * @throws IllegalArgumentException if the configuration is invalid
   * @throws IllegalStateException if the servers cannot be reached or the stream is missing
   */
  public NatsJournal(PluginContext context) {
    this(JournalSettings.fromConfig(context.config(), context.configPath()), context);
  }

  private NatsJournal(JournalSettings settings, PluginContext context) {
    this.settings = settings;
    this.positions = new PositionCache(settings.positionCacheSize());
    this.dispatcher = context.dispatcher();
    this.subjectPrefix = settings.subjectPrefix() + ".";
    this.writerId = Long.toString(ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE, 36);
    this.shared =
        SharedConnection.acquire(context.system(), settings.connection(), context.keyPath("connection"));
    this.connection = shared.connection();
    this.jetStream = shared.jetStream();
    this.management = shared.management();
    try {
      ensureStream(context.configPath());
    } catch (RuntimeException e) {
      shared.release();
      throw e;
    }
    log.info(
        "NATS journal [{}] uses stream [{}] with subjects [{}>] on [{}]",
        context.configPath(),
        settings.stream(),
        subjectPrefix,
        settings.connection().serversText());
  }

  /**
   * A warning if lookups of an existing stream may be stale, else null. With direct get allowed,
   * jnats reads a subject's last message from any replica, one that may lag behind the leader:
   * a stored write could then be reported as a conflict, or an entity recover without its latest
   * events. The journal creates its streams without direct get; an operator's stream may have it.
   */
  static String staleLookups(StreamConfiguration config) {
    if (!config.getAllowDirect() || config.getReplicas() <= 1) {
      return null;
    }
    return "Stream [" + config.getName() + "] allows direct get with [" + config.getReplicas()
        + "] replicas: an entity's last event may then be read from a replica behind the leader,"
        + " so a stored write can be reported as a conflict and a recovery can miss the latest"
        + " events. Turn allow_direct off for a journal's stream";
  }

  private void ensureStream(String path) {
    String stream = settings.stream();
    String subjects = subjectPrefix + ">";
    try {
      StreamInfo info = management.getStreamInfo(stream);
      if (!info.getConfiguration().getSubjects().contains(subjects)) {
        throw new IllegalStateException(
            "stream ["
                + stream
                + "] on ["
                + settings.connection().serversText()
                + "] does not capture subjects ["
                + subjects
                + "] (it has "
                + info.getConfiguration().getSubjects()
                + "); fix ["
                + path
                + ".stream.subject-prefix] or the stream");
      }
      if (info.getConfiguration().getDiscardPolicy() == DiscardPolicy.Old
          && (info.getConfiguration().getMaxBytes() > 0 || info.getConfiguration().getMaxMsgs() > 0)) {
        log.warn(
            "Stream [{}] discards old messages at its limits: events may be lost. Use discard policy"
                + " new for a journal",
            stream);
      }
      String staleLookups = staleLookups(info.getConfiguration());
      if (staleLookups != null) {
        log.warn("{}", staleLookups);
      }
      if (info.getConfiguration().getMaxAge().compareTo(Duration.ZERO) > 0
          || info.getConfiguration().getMaxMsgsPerSubject() > 0) {
        // Either removes an entity's oldest events: its recovery then fails ("sequenceNr [1] is
        // missing"), unless a snapshot covers them.
        log.warn(
            "Stream [{}] removes old messages (max age [{}], max messages per subject [{}]): events may be"
                + " lost. A journal's stream keeps everything",
            stream, info.getConfiguration().getMaxAge(), info.getConfiguration().getMaxMsgsPerSubject());
      }
    } catch (JetStreamApiException e) {
      if (e.getApiErrorCode() != STREAM_NOT_FOUND) {
        throw new IllegalStateException(
            "cannot read stream [" + stream + "] on [" + settings.connection().serversText() + "]: "
                + e.getMessage(),
            e);
      }
      if (!settings.setup()) {
        throw new IllegalStateException(
            "stream ["
                + stream
                + "] does not exist on ["
                + settings.connection().serversText()
                + "]; create it (subjects ["
                + subjects
                + "]) or set ["
                + path
                + ".setup = on]",
            e);
      }
      createStream(subjects);
    } catch (IOException e) {
      throw new IllegalStateException(
          "cannot read stream [" + stream + "] on [" + settings.connection().serversText() + "]: "
              + e.getMessage(),
          e);
    }
  }

  private void createStream(String subjects) {
    StreamConfiguration config =
        StreamConfiguration.builder()
            .name(settings.stream())
            .description("eventsourced journal")
            .subjects(subjects)
            .storageType(settings.storage())
            .replicas(settings.replicas())
            .maxBytes(settings.maxBytes())
            .maxAge(settings.maxAge())
            .duplicateWindow(settings.duplicateWindow())
            // A journal must never drop old events to make room: refuse new writes instead.
            .discardPolicy(DiscardPolicy.New)
            .build();
    try {
      management.addStream(config);
      log.info("Created stream [{}] for subjects [{}]", settings.stream(), subjects);
    } catch (JetStreamApiException | IOException e) {
      throw new IllegalStateException(
          "cannot create stream ["
              + settings.stream()
              + "] on ["
              + settings.connection().serversText()
              + "]: "
              + e.getMessage(),
          e);
    }
  }

  // ------------------------------------------------------------------ append

  @Override
  public CompletionStage<Done> append(AtomicWrite write) {
    CompletableFuture<Done> result = new CompletableFuture<>();
    if (closed.get()) {
      result.completeExceptionally(closedError(write.persistenceId(), write.expectedSequenceNr() + 1));
      return result;
    }
    try {
      Outgoing out = new Outgoing(write);
      if (write.expectedSequenceNr() == 0) {
        publish(out, 0, true, 0, result);
        return result;
      }
      Position known = positions.get(write.persistenceId());
      if (known != null && known.sequenceNr() == write.expectedSequenceNr()) {
        publish(out, known.streamSequence(), false, 0, result);
      } else {
        // A cache miss needs a blocking lookup of the subject's last message.
        dispatcher.execute(() -> lookupAndPublish(out, result, false, -1));
      }
    } catch (JournalException e) {
      result.completeExceptionally(e);
    } catch (RuntimeException e) {
      // Never thrown from the method (e.g. a dispatcher rejecting work at shutdown).
      result.completeExceptionally(
          new JournalException(
              "cannot append events for [" + write.persistenceId() + "]: " + e,
              write.persistenceId(),
              write.expectedSequenceNr() + 1,
              e));
    }
    return result;
  }

  /** One atomic write prepared for publishing; reused by retries so the message id stays. */
  private final class Outgoing {
    final AtomicWrite write;
    final String subject;
    final Headers headers;
    final byte[] body;
    final String messageId;

    Outgoing(AtomicWrite write) {
      this.write = write;
      PersistenceId id = write.persistenceId();
      String key = Keys.entityKey(id);
      this.subject = subjectPrefix + key;
      long first = write.expectedSequenceNr() + 1;
      String tooLong = subjectTooLong(connection, subject);
      if (tooLong != null) {
        throw new JournalException(
            "cannot append events for [" + id + "] from sequenceNr [" + first + "]: " + tooLong
                + "; nothing was stored",
            id, first, null);
      }
      long last = write.highestSequenceNr();
      this.headers = new Headers().put(SEQ_HEADER, first == last ? Long.toString(first) : first + "-" + last);
      for (PersistentRepr event : write.events()) {
        if (Envelope.hasLoneSurrogate(event.manifest())) {
          throw new JournalException(
              "cannot append events for [" + id + "] from sequenceNr [" + first + "]: the manifest of"
                  + " the event at sequenceNr [" + event.sequenceNr() + "] contains a lone surrogate,"
                  + " which UTF-8 cannot hold; nothing was stored",
              id, first, null);
        }
      }
      this.body = Envelope.encodeEvents(write.events());
      this.messageId = key + ":" + first + ":" + writerId + "-" + Long.toString(writeCounter.incrementAndGet(), 36);
      // What the server counts against max_payload: headers (ours plus the expectation and the
      // message id that jnats adds) and body. Checked here so an oversized write fails at once
      // instead of the server closing the connection.
      long size =
          headers.serializedLength()
              + "Nats-Msg-Id: \r\n".length()
              + messageId.getBytes(StandardCharsets.UTF_8).length
              + "Nats-Expected-Last-Subject-Sequence: 18446744073709551615\r\n".length()
              + body.length;
      long maxPayload = connection.getMaxPayload();
      if (maxPayload > 0 && size > maxPayload) {
        throw new JournalException(
            "cannot append events for ["
                + id
                + "] from sequenceNr ["
                + first
                + "]: the write of ["
                + write.events().size()
                + "] events is ["
                + size
                + "] bytes, more than the server's max_payload of ["
                + maxPayload
                + "] bytes; nothing was stored",
            id,
            first,
            null);
      }
    }
  }

  /**
   * Publishes asynchronously. {@code verified} says the expected stream sequence was read from
   * the server for this write (or is 0), so a rejection is a conflict; otherwise it came from the
   * cache and a rejection is first checked against the stored position.
   */
  private void publish(
      Outgoing out, long expectedStreamSequence, boolean verified, int attempt, CompletableFuture<Done> result) {
    PublishOptions options =
        PublishOptions.builder()
            .expectedLastSubjectSequence(expectedStreamSequence)
            .messageId(out.messageId)
            .build();
    CompletableFuture<PublishAck> ack;
    try {
      ack = jetStream.publishAsync(out.subject, out.headers, out.body, options);
    } catch (RuntimeException e) {
      // Rejected by the client before sending (closed connection, full reconnect buffer).
      retryOrFail(out, expectedStreamSequence, verified, attempt, result, e);
      return;
    }
    // Runs on the client's thread that processes acknowledgements: only bookkeeping here.
    ack.whenComplete(
        (pubAck, error) -> {
          if (error == null) {
            AtomicWrite write = out.write;
            remember(write.persistenceId(), new Position(write.highestSequenceNr(), pubAck.getSeqno()));
            if (log.isDebugEnabled()) {
              log.debug(
                  "Stored [{}] events of [{}] up to sequenceNr [{}]{}",
                  write.events().size(),
                  write.persistenceId(),
                  write.highestSequenceNr(),
                  pubAck.isDuplicate() ? " (acknowledged as duplicate of an earlier attempt)" : "");
            }
            // Completed right here: a hop to the dispatcher costs a thread wake-up per write on
            // the latency-bound path; the runtime only pipes the result to the entity.
            result.complete(Done.getInstance());
            return;
          }
          Throwable cause = unwrap(error);
          if (cause instanceof JetStreamApiException api && api.getApiErrorCode() == WRONG_LAST_SEQUENCE) {
            positions.remove(out.write.persistenceId());
            long republishedAfter = attempt > 0 ? expectedStreamSequence : -1;
            handOff(dispatcher, () -> lookupAndPublish(out, result, verified, republishedAfter), out.write, result, cause);
          } else {
            handOff(dispatcher, () -> retryOrFail(out, expectedStreamSequence, verified, attempt, result, cause), out.write, result, cause);
          }
        });
  }

  /**
   * Runs a follow-up of a publish on an executor; if the executor refuses it (the dispatcher
   * shutting down), fails the write instead of leaving its caller waiting forever. The write's
   * outcome is then unknown: its publish may have been stored.
   */
  static void handOff(
      Executor executor, Runnable task, AtomicWrite write, CompletableFuture<Done> result, Throwable cause) {
    try {
      executor.execute(task);
    } catch (RuntimeException e) {
      JournalException failure =
          new JournalException(
              "cannot confirm the append of events for [" + write.persistenceId() + "] from sequenceNr ["
                  + (write.expectedSequenceNr() + 1) + "]: the journal is shutting down"
                  + " (the write may or may not be stored): " + cause,
              write.persistenceId(), write.expectedSequenceNr() + 1, cause);
      failure.addSuppressed(e);
      result.completeExceptionally(failure);
    }
  }

  /**
   * Reads the stream sequence of the entity's last message; publishes if it holds the expected
   * sequence number, else reports the conflict. After a rejection of a verified publish it only
   * reads the stored sequence number for the conflict error: the server has decided.
   *
   * @param republishedAfter for a rejected republish of a write whose acknowledgement was lost,
   *     the stream sequence its publishes expected, else -1. If the first attempt was stored and
   *     the republish came after the duplicate window, the server rejects the republish as stale;
   *     the first attempt can only have landed as the entity's next message after that sequence,
   *     and carries this write's message id there
   */
  private void lookupAndPublish(
      Outgoing out, CompletableFuture<Done> result, boolean rejectedVerified, long republishedAfter) {
    AtomicWrite write = out.write;
    PersistenceId id = write.persistenceId();
    Position actual;
    try {
      if (republishedAfter >= 0) {
        MessageInfo slot = messageAtOrAfter(id, republishedAfter + 1);
        if (slot != null && slot.getHeaders() != null
            && out.messageId.equals(slot.getHeaders().getFirst(MSG_ID_HEADER))) {
          remember(id, new Position(write.highestSequenceNr(), slot.getSeq()));
          confirmedRepublishes.incrementAndGet();
          log.debug(
              "Republished write of [{}] up to sequenceNr [{}] was rejected, but its first publish is stored",
              id, write.highestSequenceNr());
          result.complete(Done.getInstance());
          return;
        }
      }
      actual = lookup(id);
    } catch (JournalException e) {
      if (republishedAfter >= 0) {
        // The first attempt may be stored; without the server's answer nobody can tell.
        result.completeExceptionally(
            new JournalException(
                "cannot confirm the append of events for [" + id + "] from sequenceNr ["
                    + (write.expectedSequenceNr() + 1) + "] (the write may or may not be stored): " + e.getMessage(),
                id, write.expectedSequenceNr() + 1, e));
      } else if (rejectedVerified) {
        result.completeExceptionally(new ConcurrencyConflictException(id, write.expectedSequenceNr(), -1));
      } else {
        // No publish of this write reached the server yet (or it was rejected).
        result.completeExceptionally(
            new JournalException(
                "cannot append events for [" + id + "] from sequenceNr [" + (write.expectedSequenceNr() + 1)
                    + "]; nothing was stored: " + e.getMessage(),
                id, write.expectedSequenceNr() + 1, e));
      }
      return;
    }
    if (rejectedVerified || actual.sequenceNr() != write.expectedSequenceNr()) {
      if (log.isDebugEnabled()) {
        log.debug(
            "Conflict on [{}]: expected sequenceNr [{}], stored [{}]",
            id,
            write.expectedSequenceNr(),
            actual.sequenceNr());
      }
      result.completeExceptionally(
          new ConcurrencyConflictException(id, write.expectedSequenceNr(), actual.sequenceNr()));
      return;
    }
    // The position is fresh from the server: a rejection of this publish is a real conflict.
    publish(out, actual.streamSequence(), true, 0, result);
  }

  private void retryOrFail(
      Outgoing out,
      long expectedStreamSequence,
      boolean verified,
      int attempt,
      CompletableFuture<Done> result,
      Throwable cause) {
    AtomicWrite write = out.write;
    PersistenceId id = write.persistenceId();
    long first = write.expectedSequenceNr() + 1;
    positions.remove(id);
    boolean uncertain = isUncertain(cause);
    if (uncertain) {
      lostAcknowledgements.incrementAndGet();
      shared.checkLiveness(dispatcher);
    }
    if (uncertain && attempt < settings.publishRetries() && !closed.get()) {
      log.debug("Acknowledgement for [{}] at sequenceNr [{}] lost ({}); republishing", id, first, cause.toString());
      // The delayed executor hands the task to the dispatcher only after the backoff; guarded
      // there too, so a dispatcher shut down meanwhile fails the write.
      Executor guarded = task -> handOff(dispatcher, task, write, result, cause);
      Executor later =
          CompletableFuture.delayedExecutor(settings.retryBackoff().toNanos(), TimeUnit.NANOSECONDS, guarded);
      handOff(later, () -> publish(out, expectedStreamSequence, verified, attempt + 1, result), write, result, cause);
      return;
    }
    String what = outcome(cause, attempt);
    result.completeExceptionally(
        new JournalException(
            "cannot append events for ["
                + id
                + "] from sequenceNr ["
                + first
                + "] after ["
                + (attempt + 1)
                + "] attempts: "
                + what
                + ": "
                + cause,
            id,
            first,
            cause));
  }

  /**
   * Room in a NATS control line ({@code HPUB <subject> <reply inbox> <sizes>}) for what is not
   * the subject: a reply inbox of about 50 characters, the sizes and separators.
   */
  private static final int CONTROL_LINE_RESERVE = 128;

  /**
   * Why a subject cannot be published, or null: jnats refuses a control line longer than its
   * {@code maxControlLine} (4 KB by default) with a bare "Control line is too long".
   */
  static String subjectTooLong(Connection connection, String subject) {
    int limit = connection.getOptions().getMaxControlLine() - CONTROL_LINE_RESERVE;
    int length = subject.getBytes(StandardCharsets.UTF_8).length;
    return length <= limit
        ? null
        : "its id is too long: the entity's subject takes [" + length + "] bytes, more than the ["
            + limit + "] that fit in a NATS control line (the connection's max control line less"
            + " room for the reply inbox)";
  }

  /**
   * What a caller is told of a write that failed for good. Only an attempt after an uncertain one
   * is ever made (a republish), so a definite failure of a republish still leaves the first
   * attempt's outcome unknown.
   */
  static String outcome(Throwable cause, int attempt) {
    return attempt > 0 || isUncertain(cause)
        ? "the outcome is unknown (the write may or may not be stored)"
        : "nothing was stored";
  }

  /**
   * A failure after which the message may have been stored, or which a republish may get past:
   * republishing resolves it. jnats completes an asynchronous publish that the server answers
   * with "503 No Responders" (no stream leader, as during a cluster's election) with a
   * RuntimeException around an IOException.
   */
  static boolean isUncertain(Throwable cause) {
    if (cause instanceof JetStreamApiException) {
      return false; // The server answered: the write was not stored.
    }
    return cause instanceof IOException
        || cause instanceof CancellationException
        || cause instanceof java.util.concurrent.TimeoutException
        || cause instanceof IllegalStateException
        || cause instanceof RuntimeException && cause.getCause() instanceof IOException;
  }

  // ------------------------------------------------------------------ lookups

  @Override
  public CompletionStage<Long> highestSequenceNr(PersistenceId persistenceId) {
    CompletableFuture<Long> result = new CompletableFuture<>();
    if (closed.get()) {
      result.completeExceptionally(closedError(persistenceId, 0));
      return result;
    }
    try {
      dispatcher.execute(
          () -> {
            try {
              result.complete(lookup(persistenceId).sequenceNr());
            } catch (RuntimeException e) {
              result.completeExceptionally(e);
            }
          });
    } catch (RuntimeException e) {
      result.completeExceptionally(
          new JournalException("cannot read the highest sequenceNr of [" + persistenceId + "]: " + e, persistenceId, 0, e));
    }
    return result;
  }

  /** Reads the entity's last message; blocking. Updates the cache. */
  private Position lookup(PersistenceId id) {
    MessageInfo last = lastMessage(id);
    if (last == null) {
      positions.remove(id);
      return new Position(0, 0);
    }
    Position position = new Position(range(last.getHeaders(), id)[1], last.getSeq());
    remember(id, position);
    return position;
  }

  private MessageInfo lastMessage(PersistenceId id) {
    String subject = subjectPrefix + Keys.entityKey(id);
    try {
      MessageInfo info = management.getLastMessage(settings.stream(), subject);
      return info == null || !info.isMessage() ? null : info;
    } catch (JetStreamApiException e) {
      if (e.getApiErrorCode() == NO_MESSAGE_FOUND) {
        return null;
      }
      throw new JournalException(
          "cannot read the last event of [" + id + "] from stream [" + settings.stream() + "]: " + e.getMessage(),
          id,
          0,
          e);
    } catch (IOException | RuntimeException e) {
      shared.checkLiveness(dispatcher);
      throw new JournalException(
          "cannot read the last event of [" + id + "] from stream [" + settings.stream() + "]: " + e,
          id,
          0,
          e);
    }
  }

  /** The subject's first message at or after a stream sequence, or null; blocking. */
  private MessageInfo nextForSubject(String subject, long streamSequence) throws IOException, JetStreamApiException {
    try {
      MessageInfo info = management.getMessage(settings.stream(), MessageGetRequest.nextForSubject(streamSequence, subject));
      return info == null || !info.isMessage() ? null : info;
    } catch (JetStreamApiException e) {
      if (e.getApiErrorCode() == NO_MESSAGE_FOUND) {
        return null;
      }
      throw e;
    }
  }

  /** The entity's first message at or after a stream sequence, or null; blocking. */
  private MessageInfo messageAtOrAfter(PersistenceId id, long streamSequence) {
    try {
      return nextForSubject(subjectPrefix + Keys.entityKey(id), streamSequence);
    } catch (JetStreamApiException e) {
      throw new JournalException(
          "cannot read the events of [" + id + "] from stream [" + settings.stream() + "]: " + e.getMessage(), id, 0, e);
    } catch (IOException | RuntimeException e) {
      shared.checkLiveness(dispatcher);
      throw new JournalException(
          "cannot read the events of [" + id + "] from stream [" + settings.stream() + "]: " + e, id, 0, e);
    }
  }

  private void remember(PersistenceId id, Position position) {
    positions.remember(id, position);
  }

  /** The first and last sequence number of a message, from its {@code Es-Seq} header. */
  static long[] range(Headers headers, PersistenceId id) {
    String value = headers == null ? null : headers.getFirst(SEQ_HEADER);
    if (value == null) {
      throw new JournalException(
          "message of [" + id + "] has no " + SEQ_HEADER + " header; is the stream shared with other writers?",
          id,
          0,
          null);
    }
    try {
      int dash = value.indexOf('-');
      if (dash < 0) {
        long seq = Long.parseLong(value);
        return new long[] {seq, seq};
      }
      return new long[] {Long.parseLong(value.substring(0, dash)), Long.parseLong(value.substring(dash + 1))};
    } catch (NumberFormatException e) {
      throw new JournalException(
          "message of [" + id + "] has a malformed " + SEQ_HEADER + " header [" + value + "]", id, 0, e);
    }
  }

  // ------------------------------------------------------------------ replay

  @Override
  public CompletionStage<Done> replay(
      PersistenceId persistenceId,
      long fromSequenceNr,
      long toSequenceNr,
      long max,
      Consumer<PersistentRepr> onEvent) {
    CompletableFuture<Done> result = new CompletableFuture<>();
    if (closed.get()) {
      result.completeExceptionally(closedError(persistenceId, fromSequenceNr));
      return result;
    }
    Replay replay = new Replay(persistenceId, fromSequenceNr, toSequenceNr, max, onEvent, result);
    if (settings.sharedScanMinReplays() == 0) {
      // Nothing to gather: one task per replay.
      execute(replay, replay::runAlone);
      return result;
    }
    queued.add(replay);
    scheduleDrain();
    return result;
  }

  private void scheduleDrain() {
    if (!drainScheduled.compareAndSet(false, true)) {
      return; // The scheduled drain takes it.
    }
    try {
      dispatcher.execute(this::drain);
    } catch (RuntimeException e) {
      // The dispatcher refuses work (shutting down): nothing will take the queue.
      drainScheduled.set(false);
      for (Replay r; (r = queued.poll()) != null; ) {
        r.fail(new JournalException("cannot replay [" + r.id + "]: " + e, r.id, r.from, e));
      }
    }
  }

  /**
   * Takes the queued replays, on a dispatcher thread. A lone request runs at once on its own
   * subject, so a single entity's recovery never waits. Several requests at once mean a burst of
   * recoveries is likely under way: the drain waits the gather window for more, then serves a
   * group of at least {@code shared-scan.min-replays} with one shared scan and smaller groups one
   * by one.
   */
  private void drain() {
    List<Replay> group = new ArrayList<>();
    try {
      take(group);
      if (group.size() > 1) {
        gather(group);
      }
    } finally {
      // Even after an Error in a completed replay's dependents: else no replay would ever run.
      drainScheduled.set(false);
    }
    if (!queued.isEmpty()) {
      // Queued after the last take: the next group, served on another thread.
      scheduleDrain();
    }
    try {
      if (group.size() >= settings.sharedScanMinReplays()) {
        runShared(group);
      } else {
        runEach(group);
      }
    } catch (RuntimeException | Error e) {
      // Only a bug gets here; no caller may be left waiting (completing twice changes nothing).
      log.error("Replay of a group of [{}] failed unexpectedly", group.size(), e);
      for (Replay r : group) {
        r.result.completeExceptionally(
            new JournalException("cannot replay [" + r.id + "]: " + e, r.id, r.from, e));
      }
    }
  }

  /** Moves the queued replays into {@code group}; those that ask for nothing complete at once. */
  private void take(List<Replay> group) {
    for (Replay r; (r = queued.poll()) != null; ) {
      if (r.asksForNothing()) {
        r.complete();
      } else {
        group.add(r);
      }
    }
  }

  /**
   * Takes further requests into the group until none has arrived for the gather window, or for
   * at most {@link #MAX_GATHER_WINDOWS} windows. Entities re-spawned together reach their
   * replays spread over a while (each loads its snapshot first), so a fixed window would split
   * them into several groups, each scanning the same range.
   */
  private void gather(List<Replay> group) {
    gathering = true;
    try {
      gatherUntilQuiet(group);
    } finally {
      gathering = false;
    }
  }

  private void gatherUntilQuiet(List<Replay> group) {
    long window = settings.sharedScanGatherWindow().toNanos();
    long cap = System.nanoTime() + MAX_GATHER_WINDOWS * window;
    long quietUntil = System.nanoTime() + window;
    while (true) {
      long until = Math.min(quietUntil, cap);
      long left = until - System.nanoTime();
      if (left <= 0) {
        return;
      }
      LockSupport.parkNanos(this, Math.min(left, GATHER_POLL_NANOS));
      if (Thread.currentThread().isInterrupted()) {
        take(group);
        return; // Shutting down: serve what is there.
      }
      int before = group.size();
      take(group);
      if (group.size() > before) {
        quietUntil = System.nanoTime() + window;
      }
    }
  }

  /** Runs each replay on its own subject, all but the first on other dispatcher threads. */
  private void runEach(List<Replay> replays, boolean prepared) {
    for (int i = 1; i < replays.size(); i++) {
      Replay r = replays.get(i);
      execute(r, prepared ? r::consumeAlone : r::runAlone);
    }
    if (!replays.isEmpty()) {
      Replay first = replays.get(0);
      if (prepared) {
        first.consumeAlone();
      } else {
        first.runAlone();
      }
    }
  }

  private void runEach(List<Replay> replays) {
    runEach(replays, false);
  }

  private void execute(Replay replay, Runnable task) {
    try {
      dispatcher.execute(task);
    } catch (RuntimeException e) {
      replay.fail(new JournalException("cannot replay [" + replay.id + "]: " + e, replay.id, replay.from, e));
    }
  }

  /**
   * Serves a group: prepares each replay as a lone one would (last message, start position),
   * completing those that need no reading, then reads the rest with one shared scan if there are
   * still enough of them, else each on its own subject. Blocking.
   */
  private void runShared(List<Replay> group) {
    long started = System.nanoTime();
    List<Replay> reading = prepareAll(group);
    if (reading.size() < settings.sharedScanMinReplays() || !worthScanning(reading)) {
      // Most were served from their last message, or the group is a small share of what a scan
      // would deliver: one consumer per entity costs less.
      runEach(reading, true);
      return;
    }
    new SharedScan(reading, System.nanoTime() - started).run();
  }

  /**
   * Whether one shared scan costs less than a consumer per entity. A scan delivers every message
   * of its range, so its cost is set by the range; per-entity consumers cost a server walk each.
   * Measured on nats-server 2.9 with 50 interleaved entities: the scan was even with per-entity
   * consumers at 16 of 50 entities and about 3x faster at 50 of 50. Hence: scan when the members
   * beyond the first outnumber {@link #SCAN_BREAK_EVEN} times the share of the range that is
   * not their subjects' messages. A range shared with other types counts against the scan too.
   */
  static boolean worthScanning(List<Replay> reading) {
    long first = Long.MAX_VALUE;
    long last = 0;
    double wanted = 0;
    Set<String> subjects = new HashSet<>();
    for (Replay r : reading) {
      first = Math.min(first, Math.max(1, r.startStreamSequence));
      last = Math.max(last, r.lastStreamSequence);
      if (subjects.add(r.subject)) {
        // The member's messages from its start to its last message (not only those asked for:
        // a bound stops the scan early and per-entity consumers alike), estimated from its
        // events and the events per message of its first and last writes.
        wanted += Math.max(0, r.highest - r.next + 1) / Math.max(1.0, r.eventsPerMessage);
      }
    }
    double share = last < first ? 1 : Math.min(1.0, wanted / (last - first + 1));
    return subjects.size() - 1 >= SCAN_BREAK_EVEN * (1 - share);
  }

  /**
   * Prepares a group's replays on this thread and up to {@link #PREPARE_PARALLELISM} - 1 helper
   * tasks, since preparing is a few round trips per replay (about 20 for one after a snapshot).
   * This thread takes whatever no helper has taken, so the group never waits for a free
   * dispatcher thread; it only waits for preparations already running.
   *
   * @return the replays that must read the stream
   */
  private List<Replay> prepareAll(List<Replay> group) {
    Queue<Replay> todo = new ConcurrentLinkedQueue<>(group);
    CountDownLatch prepared = new CountDownLatch(group.size());
    Runnable work =
        () -> {
          for (Replay r; (r = todo.poll()) != null; ) {
            r.prepareForScan();
            prepared.countDown();
          }
        };
    int helpers = Math.min(PREPARE_PARALLELISM - 1, group.size() / 4);
    for (int i = 0; i < helpers; i++) {
      try {
        dispatcher.execute(work);
      } catch (RuntimeException e) {
        break; // This thread does the rest.
      }
    }
    work.run();
    boolean interrupted = false;
    while (true) {
      try {
        // Bounded: each preparation ends within a few request timeouts.
        prepared.await();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    List<Replay> reading = new ArrayList<>(group.size());
    for (Replay r : group) {
      if (r.needsReading) {
        reading.add(r);
      }
    }
    return reading;
  }

  /** Shared scans started so far; for tests in this package. */
  long sharedScans() {
    return sharedScans.get();
  }

  /** Replays that started alone and joined a gathering group; for tests in this package. */
  long rejoinedReplays() {
    return rejoinedReplays.get();
  }

  /** Rejected republishes confirmed from the stored first attempt; for tests in this package. */
  long confirmedRepublishes() {
    return confirmedRepublishes.get();
  }

  /** Publishes whose acknowledgement was lost so far; for tests in this package. */
  long lostAcknowledgements() {
    return lostAcknowledgements.get();
  }

  /** Messages received by shared scans so far; for tests in this package. */
  long sharedScanMessages() {
    return sharedScanMessages.get();
  }

  /** Whether every requested replay has been taken by a drain and no drain is scheduled; for tests here. */
  boolean replaysTaken() {
    return queued.isEmpty() && !drainScheduled.get();
  }

  /** Whether a drain is gathering a group; for tests in this package. */
  boolean gathering() {
    return gathering;
  }

  /**
   * One pull consumer serving a group of replays: filtered to the type of all members (or the
   * whole stream for mixed types), from the lowest start to the highest last stream sequence of
   * the group, each message routed by subject to its member. On nats-server 2.9 each filtered
   * consumer makes the server walk the interleaved stream, so one scan for N replays saves N - 1
   * walks; in exchange every message of the filter in the range reaches this client.
   */
  private final class SharedScan {
    final List<Replay> members;
    final Map<String, List<Replay>> bySubject;
    final String filter;
    final long firstStreamSequence;
    final long lastStreamSequence;
    final long prepareNanos;
    int unfinished;

    /** The largest last message of the members, the first guess at message sizes. */
    long largestLastMessage;

    SharedScan(List<Replay> members, long prepareNanos) {
      this.members = members;
      this.prepareNanos = prepareNanos;
      this.bySubject = new HashMap<>(members.size() * 2);
      long first = Long.MAX_VALUE;
      long last = 0;
      String type = members.get(0).id.typeName();
      boolean oneType = true;
      for (Replay r : members) {
        // A list: the same entity may be replayed twice at once.
        bySubject.computeIfAbsent(r.subject, s -> new ArrayList<>(1)).add(r);
        first = Math.min(first, r.startStreamSequence);
        last = Math.max(last, r.lastStreamSequence);
        largestLastMessage = Math.max(largestLastMessage, r.lastMessageBytes);
        oneType &= r.id.typeName().equals(type);
      }
      this.filter = subjectPrefix + (oneType ? Keys.encode(type) + ".>" : ">");
      this.firstStreamSequence = first;
      this.lastStreamSequence = last;
      this.unfinished = members.size();
    }

    void run() {
      sharedScans.incrementAndGet();
      long started = System.nanoTime();
      long messages = 0;
      if (log.isDebugEnabled()) {
        log.debug(
            "Shared scan of [{}] replays over [{}] from stream sequence [{}] to [{}] (prepared in [{}] ms)",
            members.size(),
            filter,
            firstStreamSequence,
            lastStreamSequence,
            prepareNanos / 1_000_000);
      }
      // A pull consumer, so that at most two batches are ever on their way: a push consumer
      // delivers the whole type at the server's pace, and a client that folds events more slowly
      // exceeds the server's per-connection buffer, which makes the server close the connection
      // shared by every entity (seen with nats-server 2.9 and three concurrent scans).
      ConsumerConfiguration config =
          ConsumerConfiguration.builder()
              .filterSubject(filter)
              .ackPolicy(AckPolicy.None)
              .deliverPolicy(DeliverPolicy.ByStartSequence)
              .startSequence(firstStreamSequence)
              // Removed by the server should this process die mid-scan.
              .inactiveThreshold(SCAN_CONSUMER_INACTIVE)
              .build();
      PullSubscribeOptions options =
          PullSubscribeOptions.builder().stream(settings.stream()).configuration(config).build();
      JetStreamSubscription subscription;
      try {
        subscription = jetStream.subscribe(filter, options);
      } catch (IOException | JetStreamApiException | RuntimeException e) {
        failUnfinished(r -> r.replayError("cannot start reading (shared scan of [" + members.size() + "] replays)", e));
        return;
      }
      Duration wait = settings.connection().requestTimeout();
      // At most two pull requests are outstanding, each for at most SCAN_BATCH messages and
      // about SCAN_REQUEST_BYTES (sized by the largest message seen so far), well under the
      // server's and the client's 64 MB buffers. Requests end by count, so the accounting is
      // exact: a new one goes out once no more than one request's worth is still due.
      int batch = batchFor(largestLastMessage);
      long requested = 0;
      long largest = largestLastMessage;
      try {
        subscription.setPendingLimits(-1, SCAN_PENDING_BYTES);
        subscription.pull(batch);
        subscription.pull(batch);
        requested = 2L * batch;
        while (unfinished > 0) {
          Message m = subscription.nextMessage(wait);
          if (subscription.getDroppedCount() > 0) {
            throw new IllegalStateException(
                "the client dropped [" + subscription.getDroppedCount() + "] messages of the scan");
          }
          if (m != null) {
            // Consumer sequences count delivered messages: a jump means messages were lost on
            // the way (never a gap in the entity's history, which the members check).
            long delivered = m.metaData().consumerSequence();
            if (delivered != messages + 1) {
              throw new IllegalStateException(
                  "messages of the scan were lost between server and client (delivery ["
                      + delivered + "] after [" + messages + "])");
            }
            largest = Math.max(largest, m.getSubject().length() + m.getData().length);
            if (requested - (messages + 1) <= batch) {
              batch = batchFor(largest);
              subscription.pull(batch);
              requested += batch;
            }
          }
          if (m == null) {
            checkLiveness();
            failUnfinished(
                r ->
                    r.replayError(
                        "no event arrived within ["
                            + wait
                            + "] in a shared scan of ["
                            + members.size()
                            + "] replays (expected up to sequenceNr ["
                            + r.end
                            + "]) while reading",
                        null));
            return;
          }
          messages++;
          List<Replay> targets = bySubject.get(m.getSubject());
          if (targets != null) {
            for (Replay r : targets) {
              if (!r.finished) {
                r.offer(m);
                if (r.finished) {
                  unfinished--;
                }
              }
            }
          }
          if (unfinished > 0 && m.metaData().streamSequence() >= lastStreamSequence) {
            // Every member's last message is behind: what a member still lacks is not stored.
            failUnfinished(
                r ->
                    r.replayError(
                        "sequenceNr [" + r.next + "] is missing (not found up to the entity's last message) while reading",
                        null));
            return;
          }
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        failUnfinished(
            r -> new JournalException("interrupted while replaying [" + r.id + "]", r.id, r.next, e));
      } catch (Throwable t) {
        // A connection error, or anything unexpected: no member may be left waiting.
        failUnfinished(r -> r.replayError("cannot read (shared scan of [" + members.size() + "] replays)", t));
      } finally {
        sharedScanMessages.addAndGet(messages);
        String consumer = null;
        try {
          consumer = subscription.getConsumerName();
          subscription.unsubscribe();
        } catch (RuntimeException e) {
          log.debug("Could not end the shared replay subscription on [{}]: {}", filter, e.toString());
        }
        if (consumer != null) {
          deleteScanConsumer(consumer);
        }
        if (log.isDebugEnabled()) {
          log.debug(
              "Shared scan of [{}] replays over [{}] ended after [{}] messages in [{}] ms",
              members.size(),
              filter,
              messages,
              (System.nanoTime() - started) / 1_000_000);
        }
      }
    }

    /**
     * Deletes the scan's consumer, retrying a timed-out request: a busy server can miss one
     * answer, and an undeleted consumer stays for its inactive threshold (10 minutes).
     */
    private void deleteScanConsumer(String consumer) {
      for (int attempt = 1; ; attempt++) {
        try {
          management.deleteConsumer(settings.stream(), consumer);
          return;
        } catch (JetStreamApiException e) {
          // The server answered; "not found" means an earlier, timed-out attempt deleted it.
          if (e.getApiErrorCode() != CONSUMER_NOT_FOUND) {
            leftBehind(consumer, e);
          }
          return;
        } catch (IOException | RuntimeException e) {
          if (connection.getStatus() == Connection.Status.CLOSED) {
            // Shutting down (or the connection gave up): no request can succeed, and the server
            // removes the consumer on its own; nothing for an operator to do.
            log.debug("Shared replay consumer [{}] left to the server: the connection is closed", consumer);
            return;
          }
          if (attempt == DELETE_ATTEMPTS) {
            leftBehind(consumer, e);
            return;
          }
        }
      }
    }

    private void leftBehind(String consumer, Exception e) {
      // Harmless for the replays, but a server error or timeout on a live connection is worth
      // an operator's look: consumers pile up if it keeps happening.
      log.warn(
          "Could not delete the shared replay consumer [{}] of stream [{}]; the server removes it after [{}] without requests: {}",
          consumer,
          settings.stream(),
          SCAN_CONSUMER_INACTIVE,
          e.toString());
    }

    private void failUnfinished(Function<Replay, Throwable> error) {
      for (Replay r : members) {
        if (!r.finished) {
          r.fail(error.apply(r));
        }
      }
      unfinished = 0;
    }

    private void checkLiveness() {
      try {
        shared.checkLiveness(dispatcher);
      } catch (RuntimeException e) {
        log.debug("Could not check the NATS connection: {}", e.toString());
      }
    }
  }

  /**
   * One replay: its bounds, its consumer and its stage. Runs on a dispatcher thread, alone or as
   * a member of a shared scan; blocking.
   */
  private final class Replay {
    final PersistenceId id;
    final String subject;
    final long from;
    final long to;
    final long max;
    final Consumer<PersistentRepr> onEvent;
    final CompletableFuture<Done> result;
    long remaining;
    long next;
    /** Set by {@link #prepare}: the highest sequenceNr to deliver. */
    long end;
    /** Set by {@link #prepare}: where reading starts; 0 for the subject's first message. */
    long startStreamSequence;
    /** Set by {@link #prepare}: the stream sequence of the entity's last message. */
    long lastStreamSequence;
    /** Set by {@link #prepare}: the entity's highest stored sequenceNr. */
    long highest;
    /** Set by {@link #prepare}: the size of the entity's last message (subject and body). */
    long lastMessageBytes;
    /**
     * Set by {@link #prepare}: events per message, estimated from the entity's last message (and
     * its first, when read).
     */
    double eventsPerMessage = 1;
    /** Completed or failed; only touched by the thread serving this replay. */
    boolean finished;
    /** Set by {@link #prepareForScan}: prepared and still to be served by reading the stream. */
    boolean needsReading;
    /** Started alone and handed itself to a gathering group; never hands itself on twice. */
    boolean rejoined;
    /** Prepared by {@link #runAlone} before it joined a group; not prepared again. */
    boolean prepared;

    Replay(
        PersistenceId id,
        long from,
        long to,
        long max,
        Consumer<PersistentRepr> onEvent,
        CompletableFuture<Done> result) {
      this.id = id;
      this.subject = subjectPrefix + Keys.entityKey(id);
      this.from = Math.max(1, from);
      this.to = to;
      this.max = max;
      this.remaining = max;
      this.onEvent = onEvent;
      this.result = result;
      this.next = this.from;
    }

    boolean asksForNothing() {
      return max <= 0 || from > to;
    }

    /**
     * Serves this replay on its own: prepares, then reads its subject if needed. A replay that
     * started alone but finds a group gathering once prepared (the first of a mass recovery, whose
     * other entities were still loading snapshots) joins that group instead, once: on nats-server
     * 2.9 its own consumer would walk the whole interleaved stream beside the shared scan.
     */
    void runAlone() {
      guarded(
          () -> {
            if (!prepared) {
              if (asksForNothing() || !prepare(false)) {
                return true;
              }
              prepared = true;
              if (!rejoined && gathering) {
                rejoined = true;
                rejoinedReplays.incrementAndGet();
                queued.add(this);
                scheduleDrain();
                return false;
              }
            }
            consume();
            return true;
          });
    }

    /** Reads the subject of a prepared replay. */
    void consumeAlone() {
      guarded(
          () -> {
            consume();
            return true;
          });
    }

    private void guarded(Step step) {
      try {
        if (step.run()) {
          complete();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        fail(new JournalException("interrupted while replaying [" + id + "]", id, from, e));
      } catch (Throwable t) {
        fail(t);
      }
    }

    /** Prepares as a member of a shared scan; a failure fails this replay only. */
    void prepareForScan() {
      try {
        if (prepared) {
          // Prepared when it started alone; a replay from 1 still needs its first message's
          // position, so that the scan starts no earlier than its members need.
          if (startStreamSequence == 0) {
            MessageInfo first = nextAtOrAfter(1);
            startStreamSequence = first == null ? lastStreamSequence : first.getSeq();
          }
          needsReading = true;
          return;
        }
        needsReading = prepare(true);
        if (!needsReading) {
          complete();
        }
      } catch (Throwable t) {
        fail(t);
      }
    }

    void complete() {
      finished = true;
      result.complete(Done.getInstance());
    }

    void fail(Throwable error) {
      finished = true;
      result.completeExceptionally(error);
    }

    /**
     * Reads the subject's last message, which gives the highest sequenceNr, and delivers from it
     * when it holds everything asked for; otherwise finds where reading must start.
     *
     * @param exactStart also look up the subject's first message for replays from 1, so a shared
     *     scan starts no earlier than its members need (a lone consumer finds it by itself)
     * @return true if the stream must be read
     */
    boolean prepare(boolean exactStart) {
      MessageInfo last = lastMessage(id);
      if (last == null) {
        positions.remove(id);
        return false;
      }
      long[] lastRange = range(last.getHeaders(), id);
      remember(id, new Position(lastRange[1], last.getSeq()));
      highest = lastRange[1];
      lastMessageBytes = subject.length() + (last.getData() == null ? 0 : last.getData().length);
      eventsPerMessage = lastRange[1] - lastRange[0] + 1;
      end = Math.min(to, lastRange[1]);
      if (from > end) {
        return false;
      }
      if (lastRange[0] <= from) {
        // Everything asked for is in the last message: no consumer needed.
        deliver(last.getData(), lastRange[0]);
        return false;
      }
      lastStreamSequence = last.getSeq();
      if (from > 1) {
        startStreamSequence = locate(lastStreamSequence);
      } else if (exactStart) {
        MessageInfo first = nextAtOrAfter(1);
        startStreamSequence = first == null ? lastStreamSequence : first.getSeq();
        if (first != null) {
          long[] firstRange = range(first.getHeaders(), id);
          eventsPerMessage = (eventsPerMessage + firstRange[1] - firstRange[0] + 1) / 2;
        }
      } else {
        startStreamSequence = 0;
      }
      return true;
    }

    /**
     * The stream sequence of the message holding {@code from}: binary search over the stream
     * sequences with "first message of the subject at or after", about log2(stream length) message
     * gets. Only replays that do not start at 1 (after a snapshot) need it.
     */
    long locate(long lastStreamSequence) {
      // Invariant: the first subject message at or after hi ends at or after from.
      long lo = 1;
      long hi = lastStreamSequence;
      long answer = lastStreamSequence;
      while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        MessageInfo m = nextAtOrAfter(mid);
        if (m == null || m.getSeq() > hi) {
          // No subject message in [mid, hi]: the first one at or after mid is the one at or
          // after hi, so mid keeps the invariant. (Moving lo past mid instead would skip the
          // messages in [lo, mid), the one holding from among them.)
          hi = mid;
        } else if (range(m.getHeaders(), id)[1] >= from) {
          hi = mid;
          answer = m.getSeq();
        } else {
          lo = m.getSeq() + 1;
        }
      }
      return answer;
    }

    MessageInfo nextAtOrAfter(long streamSequence) {
      try {
        return nextForSubject(subject, streamSequence);
      } catch (IOException | JetStreamApiException | RuntimeException e) {
        throw replayError("cannot locate", e);
      }
    }

    /**
     * Streams the subject from {@link #startStreamSequence} through an ordered consumer: an
     * ephemeral, flow-controlled push consumer filtered to the subject that the client recreates
     * from the last seen position if a message goes missing, so delivery is gap-free and in order.
     */
    void consume() throws InterruptedException {
      ConsumerConfiguration.Builder config = ConsumerConfiguration.builder();
      if (startStreamSequence > 0) {
        config.deliverPolicy(DeliverPolicy.ByStartSequence).startSequence(startStreamSequence);
      } else {
        config.deliverPolicy(DeliverPolicy.All);
      }
      PushSubscribeOptions options =
          PushSubscribeOptions.builder().stream(settings.stream()).ordered(true).configuration(config.build()).build();
      JetStreamSubscription subscription;
      try {
        subscription = jetStream.subscribe(subject, options);
      } catch (IOException | JetStreamApiException | IllegalStateException e) {
        throw replayError("cannot start reading", e);
      }
      Duration wait = settings.connection().requestTimeout();
      try {
        while (true) {
          Message m;
          try {
            m = subscription.nextMessage(wait);
          } catch (IllegalStateException e) {
            // The subscription or connection closed. Only here: the consumer's own exception,
            // an IllegalStateException too, must fail the replay unchanged.
            throw replayError("cannot read", e);
          }
          if (m == null) {
            throw replayError(
                "no event arrived within [" + wait + "] while reading (expected up to sequenceNr [" + end + "])",
                null);
          }
          long[] r = range(m.getHeaders(), id);
          if (r[0] > next) {
            throw replayError("sequenceNr [" + next + "] is missing (the next stored is [" + r[0] + "]) while reading", null);
          }
          if (!deliver(m.getData(), r[0]) || next > end) {
            return;
          }
        }
      } finally {
        try {
          subscription.unsubscribe();
        } catch (IllegalStateException e) {
          log.debug("Could not end the replay subscription of [{}]: {}", id, e.toString());
        }
      }
    }

    /**
     * Takes one message of this replay's subject in a shared scan; finishes the replay when it
     * has everything, when a sequenceNr is missing, or when its consumer throws. Never throws:
     * one member's failure must not end the scan for the others.
     */
    void offer(Message m) {
      try {
        long[] r = range(m.getHeaders(), id);
        if (r[1] < next) {
          return; // Before this replay's start: the group's scan started earlier.
        }
        if (r[0] > next) {
          fail(replayError("sequenceNr [" + next + "] is missing (the next stored is [" + r[0] + "]) while reading", null));
          return;
        }
        if (!deliver(m.getData(), r[0]) || next > end) {
          complete();
        }
      } catch (Throwable t) {
        fail(t);
      }
    }

    /** Delivers the events of one message up to {@link #end}; false when done. */
    boolean deliver(byte[] body, long first) {
      boolean more;
      try {
        more =
            Envelope.decodeEvents(
                body,
                id,
                first,
                next,
                end,
                event -> {
                  try {
                    onEvent.accept(event);
                  } catch (RuntimeException e) {
                    throw new ConsumerFailure(e);
                  }
                  next = event.sequenceNr() + 1;
                  remaining--;
                  return remaining > 0;
                });
      } catch (ConsumerFailure e) {
        // The consumer's own exception fails the replay unchanged.
        throw e.failure;
      } catch (IllegalArgumentException e) {
        throw replayError("cannot decode the event at sequenceNr [" + Math.max(first, next) + "]", e);
      }
      return more && remaining > 0;
    }

    JournalException replayError(String what, Throwable cause) {
      return new JournalException(
          what + " events of [" + id + "] from sequenceNr [" + next + "] in stream [" + settings.stream() + "]"
              + (cause == null ? "" : ": " + cause),
          id,
          next,
          cause);
    }
  }

  /** A blocking step of a replay; returns whether the replay is served (false: handed on). */
  private interface Step {
    boolean run() throws InterruptedException;
  }

  /** Carries an exception of the replay consumer through the decoder. */
  private static final class ConsumerFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final transient RuntimeException failure;

    ConsumerFailure(RuntimeException failure) {
      super(null, null, false, false);
      this.failure = failure;
    }
  }

  // ------------------------------------------------------------------ lifecycle

  private JournalException closedError(PersistenceId id, long sequenceNr) {
    return new JournalException("the NATS journal is closed; cannot serve [" + id + "]", id, sequenceNr, null);
  }

  /**
   * The meaningful failure: a JetStream API error anywhere in the chain (jnats wraps it in a
   * RuntimeException in asynchronous publishes), else the innermost wrapped cause.
   */
  static Throwable unwrap(Throwable error) {
    for (Throwable t = error; t != null; t = t.getCause()) {
      if (t instanceof JetStreamApiException) {
        return t;
      }
      if (t.getCause() == t) {
        break;
      }
    }
    Throwable t = error;
    while ((t instanceof CompletionException || t instanceof java.util.concurrent.ExecutionException)
        && t.getCause() != null) {
      t = t.getCause();
    }
    return t;
  }

  /** The shared connection; for tests in this package. */
  Connection connection() {
    return connection;
  }

  /** The shared connection's holder, with its liveness check; for tests in this package. */
  SharedConnection shared() {
    return shared;
  }

  /** Releases this plugin's use of the shared connection; idempotent. */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      shared.release();
      positions.clear();
    }
  }
}
