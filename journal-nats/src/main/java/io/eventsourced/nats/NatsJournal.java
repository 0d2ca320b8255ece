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
import io.nats.client.PushSubscribeOptions;
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
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
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

  static final int WRONG_LAST_SEQUENCE = 10071;
  static final int NO_MESSAGE_FOUND = 10037;
  static final int STREAM_NOT_FOUND = 10059;

  private final SharedConnection shared;
  private final Connection connection;
  private final JetStream jetStream;
  private final JetStreamManagement management;
  private final Executor dispatcher;
  private final JournalSettings settings;
  private final String subjectPrefix;
  private final Map<PersistenceId, Position> positions = new ConcurrentHashMap<>();
  private final String writerId;
  private final AtomicLong writeCounter = new AtomicLong();
  private final AtomicBoolean closed = new AtomicBoolean();

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
        dispatcher.execute(() -> lookupAndPublish(out, result, false));
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
      long last = write.highestSequenceNr();
      this.headers = new Headers().put(SEQ_HEADER, first == last ? Long.toString(first) : first + "-" + last);
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
            dispatcher.execute(() -> lookupAndPublish(out, result, verified));
          } else {
            dispatcher.execute(() -> retryOrFail(out, expectedStreamSequence, verified, attempt, result, cause));
          }
        });
  }

  /**
   * Reads the stream sequence of the entity's last message; publishes if it holds the expected
   * sequence number, else reports the conflict. After a rejection of a verified publish it only
   * reads the stored sequence number for the conflict error: the server has decided.
   */
  private void lookupAndPublish(Outgoing out, CompletableFuture<Done> result, boolean rejectedVerified) {
    AtomicWrite write = out.write;
    PersistenceId id = write.persistenceId();
    Position actual;
    try {
      actual = lookup(id);
    } catch (JournalException e) {
      if (rejectedVerified) {
        result.completeExceptionally(new ConcurrencyConflictException(id, write.expectedSequenceNr(), -1));
      } else {
        result.completeExceptionally(e);
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
      shared.checkLiveness(dispatcher);
    }
    if (uncertain && attempt < settings.publishRetries() && !closed.get()) {
      log.debug("Acknowledgement for [{}] at sequenceNr [{}] lost ({}); republishing", id, first, cause.toString());
      Executor later =
          CompletableFuture.delayedExecutor(settings.retryBackoff().toNanos(), TimeUnit.NANOSECONDS, dispatcher);
      later.execute(() -> publish(out, expectedStreamSequence, verified, attempt + 1, result));
      return;
    }
    String what = uncertain ? "the outcome is unknown (the write may or may not be stored)" : "nothing was stored";
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

  /** A failure after which the message may have been stored: republishing resolves it. */
  private static boolean isUncertain(Throwable cause) {
    if (cause instanceof JetStreamApiException) {
      return false; // The server answered: the write was not stored.
    }
    return cause instanceof IOException
        || cause instanceof CancellationException
        || cause instanceof java.util.concurrent.TimeoutException
        || cause instanceof IllegalStateException;
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

  private void remember(PersistenceId id, Position position) {
    if (settings.positionCacheSize() == 0) {
      return;
    }
    if (positions.size() >= settings.positionCacheSize() && !positions.containsKey(id)) {
      // Bounded: evict an arbitrary entry; a later miss only costs one lookup.
      Iterator<PersistenceId> it = positions.keySet().iterator();
      if (it.hasNext()) {
        positions.remove(it.next());
      }
    }
    positions.merge(id, position, (old, now) -> now.sequenceNr() >= old.sequenceNr() ? now : old);
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
    try {
      dispatcher.execute(
          () -> {
            try {
              if (max > 0 && fromSequenceNr <= toSequenceNr) {
                new Replay(persistenceId, Math.max(1, fromSequenceNr), toSequenceNr, max, onEvent).run();
              }
              result.complete(Done.getInstance());
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              result.completeExceptionally(
                  new JournalException("interrupted while replaying [" + persistenceId + "]", persistenceId, fromSequenceNr, e));
            } catch (Throwable t) {
              result.completeExceptionally(t);
            }
          });
    } catch (RuntimeException e) {
      result.completeExceptionally(
          new JournalException("cannot replay [" + persistenceId + "]: " + e, persistenceId, fromSequenceNr, e));
    }
    return result;
  }

  /** One replay, run on a dispatcher thread; blocking. */
  private final class Replay {
    final PersistenceId id;
    final String subject;
    final long from;
    final long to;
    final Consumer<PersistentRepr> onEvent;
    long remaining;
    long next;

    Replay(PersistenceId id, long from, long to, long max, Consumer<PersistentRepr> onEvent) {
      this.id = id;
      this.subject = subjectPrefix + Keys.entityKey(id);
      this.from = from;
      this.to = to;
      this.remaining = max;
      this.onEvent = onEvent;
      this.next = from;
    }

    void run() throws InterruptedException {
      MessageInfo last = lastMessage(id);
      if (last == null) {
        positions.remove(id);
        return;
      }
      long[] lastRange = range(last.getHeaders(), id);
      remember(id, new Position(lastRange[1], last.getSeq()));
      long end = Math.min(to, lastRange[1]);
      if (from > end) {
        return;
      }
      if (lastRange[0] <= from) {
        // Everything asked for is in the last message: no consumer needed.
        deliver(last.getData(), lastRange[0], end);
        return;
      }
      long start = from == 1 ? 0 : locate(last.getSeq());
      consume(start, end);
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
          lo = mid + 1;
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
        MessageInfo info = management.getMessage(settings.stream(), MessageGetRequest.nextForSubject(streamSequence, subject));
        return info == null || !info.isMessage() ? null : info;
      } catch (JetStreamApiException e) {
        if (e.getApiErrorCode() == NO_MESSAGE_FOUND) {
          return null;
        }
        throw replayError("cannot locate", e);
      } catch (IOException | RuntimeException e) {
        throw replayError("cannot locate", e);
      }
    }

    /**
     * Streams the subject from a stream sequence through an ordered consumer: an ephemeral,
     * flow-controlled push consumer filtered to the subject that the client recreates from the
     * last seen position if a message goes missing, so delivery is gap-free and in order.
     */
    void consume(long startStreamSequence, long end) throws InterruptedException {
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
          Message m = subscription.nextMessage(wait);
          if (m == null) {
            throw replayError(
                "no event arrived within [" + wait + "] while reading (expected up to sequenceNr [" + end + "])",
                null);
          }
          long[] r = range(m.getHeaders(), id);
          if (r[0] > next) {
            throw replayError("sequenceNr [" + next + "] is missing (the next stored is [" + r[0] + "]) while reading", null);
          }
          if (!deliver(m.getData(), r[0], end) || next > end) {
            return;
          }
        }
      } catch (IllegalStateException e) {
        throw replayError("cannot read", e);
      } finally {
        try {
          subscription.unsubscribe();
        } catch (IllegalStateException e) {
          log.debug("Could not end the replay subscription of [{}]: {}", id, e.toString());
        }
      }
    }

    /** Delivers the events of one message within bounds; false when done. */
    boolean deliver(byte[] body, long first, long end) {
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
  private static Throwable unwrap(Throwable error) {
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

  /** Releases this plugin's use of the shared connection; idempotent. */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      shared.release();
      positions.clear();
    }
  }
}
