package io.eventsourced.tck;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.ConcurrencyConflictException;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.PersistentRepr;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.IntStream;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The conformance suite every {@link Journal} passes. A backend's test extends this class and
 * implements {@link #journal()}; each test uses fresh persistence ids, so tests do not interfere
 * with each other or with earlier runs against the same store.
 *
 * <p>Ports the applicable cases of Pekko's {@code JournalSpec} and adds the contracts of this
 * project: optimistic concurrency, atomic multi-event writes, concurrency across entities, any id.
 */
public abstract class JournalTck {

  /** Serializer id stored with the TCK's events; the journal must keep it as given. */
  protected static final int SERIALIZER_ID = 4;

  /**
   * The journal under test. Called once per test; may return the same instance every time.
   *
   * @return the journal
   */
  protected abstract Journal journal();

  /**
   * How long one journal operation may take before the test fails.
   *
   * @return the timeout
   */
  protected Duration timeout() {
    return Duration.ofSeconds(30);
  }

  /**
   * A persistence id no earlier test or run has used.
   *
   * @return a fresh id of type {@code tck}
   */
  protected PersistenceId freshId() {
    return PersistenceId.of("tck", UUID.randomUUID().toString());
  }

  // ---------------------------------------------------------------- Pekko JournalSpec cases

  @Test
  @DisplayName("replays all events of an entity in order")
  void replaysAll() {
    PersistenceId id = writtenFive();
    assertThat(sequenceNrs(replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE))).containsExactly(1L, 2L, 3L, 4L, 5L);
  }

  @Test
  @DisplayName("replays from a lower bound")
  void replaysFromLowerBound() {
    PersistenceId id = writtenFive();
    assertThat(sequenceNrs(replay(id, 3, Long.MAX_VALUE, Long.MAX_VALUE))).containsExactly(3L, 4L, 5L);
  }

  @Test
  @DisplayName("replays from every lower bound when many entities' writes interleave irregularly")
  void replaysFromEveryLowerBoundInterleaved() {
    // Recovery after a snapshot replays from N > 1. A journal that locates N by searching a
    // shared log (NATS: the stream) must cross irregular gaps between an entity's writes: a
    // seeded random interleaving of 12 entities, writes of 1 to 3 events.
    List<PersistenceId> ids = new ArrayList<>();
    for (int e = 0; e < 12; e++) {
      ids.add(freshId());
    }
    long[] last = new long[ids.size()];
    Random random = new Random(42);
    for (int i = 0; i < 240; i++) {
      int e = random.nextInt(ids.size());
      int count = 1 + random.nextInt(3);
      await(journal().append(write(ids.get(e), last[e], count)));
      last[e] += count;
    }
    for (int e = 0; e < ids.size(); e++) {
      PersistenceId id = ids.get(e);
      for (long from = 1; from <= last[e]; from++) {
        List<PersistentRepr> events = replay(id, from, Long.MAX_VALUE, Long.MAX_VALUE);
        assertThat(sequenceNrs(events)).as("replay of %s from %s", id, from).containsExactlyElementsOf(range(from, last[e]));
        assertThat(payloads(events).get(0)).isEqualTo(payload(id, from));
      }
    }
  }

  @Test
  @DisplayName("replays up to an upper bound")
  void replaysToUpperBound() {
    PersistenceId id = writtenFive();
    assertThat(sequenceNrs(replay(id, 1, 3, Long.MAX_VALUE))).containsExactly(1L, 2L, 3L);
  }

  @Test
  @DisplayName("replays at most max events")
  void replaysWithLimit() {
    PersistenceId id = writtenFive();
    assertThat(sequenceNrs(replay(id, 1, Long.MAX_VALUE, 3))).containsExactly(1L, 2L, 3L);
  }

  @Test
  @DisplayName("replays with lower bound, upper bound and limit combined")
  void replaysWithBoundsCombined() {
    PersistenceId id = writtenFive();
    assertThat(sequenceNrs(replay(id, 2, 4, 2))).containsExactly(2L, 3L);
    assertThat(sequenceNrs(replay(id, 2, 3, 5))).containsExactly(2L, 3L);
  }

  @Test
  @DisplayName("replays a single event when from equals to")
  void replaysFromEqualsTo() {
    PersistenceId id = writtenFive();
    assertThat(sequenceNrs(replay(id, 3, 3, Long.MAX_VALUE))).containsExactly(3L);
  }

  @Test
  @DisplayName("replays a single event with limit 1")
  void replaysLimitOne() {
    PersistenceId id = writtenFive();
    assertThat(sequenceNrs(replay(id, 2, Long.MAX_VALUE, 1))).containsExactly(2L);
  }

  @Test
  @DisplayName("replays nothing with limit 0")
  void replaysNothingWithLimitZero() {
    PersistenceId id = writtenFive();
    assertThat(replay(id, 1, Long.MAX_VALUE, 0)).isEmpty();
  }

  @Test
  @DisplayName("replays nothing when from is greater than to")
  void replaysNothingWhenFromAboveTo() {
    PersistenceId id = writtenFive();
    assertThat(replay(id, 4, 3, Long.MAX_VALUE)).isEmpty();
  }

  @Test
  @DisplayName("replays nothing beyond the highest sequenceNr")
  void replaysNothingBeyondHighest() {
    PersistenceId id = writtenFive();
    assertThat(replay(id, 6, Long.MAX_VALUE, Long.MAX_VALUE)).isEmpty();
  }

  @Test
  @DisplayName("reports highest sequenceNr 0 and replays nothing for an unknown entity")
  void unknownEntity() {
    PersistenceId id = freshId();
    assertThat(await(journal().highestSequenceNr(id))).isZero();
    assertThat(replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE)).isEmpty();
  }

  @Test
  @DisplayName("stores the last two of five events written as one atomic write")
  void lastTwoAsOneAtomicWrite() {
    PersistenceId id = freshId();
    for (long seq = 1; seq <= 3; seq++) {
      await(journal().append(write(id, seq - 1, 1)));
    }
    await(journal().append(write(id, 3, 2)));
    List<PersistentRepr> events = replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE);
    assertThat(sequenceNrs(events)).containsExactly(1L, 2L, 3L, 4L, 5L);
    assertThat(payloads(events)).containsExactly(payload(id, 1), payload(id, 2), payload(id, 3), payload(id, 4), payload(id, 5));
    assertThat(await(journal().highestSequenceNr(id))).isEqualTo(5L);
  }

  // ---------------------------------------------------------------- our contracts

  @Test
  @DisplayName("keeps serializer id, manifest and payload of every event as written")
  void keepsSerializerIdManifestAndPayload() {
    PersistenceId id = freshId();
    PersistentRepr event = new PersistentRepr(id, 1, 7710, "com.example.Evt$V2", new byte[] {0, 1, -1, 127, -128});
    await(journal().append(new AtomicWrite(id, 0, List.of(event))));
    PersistentRepr read = replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE).get(0);
    assertThat(read.persistenceId()).isEqualTo(id);
    assertThat(read.sequenceNr()).isEqualTo(1);
    assertThat(read.serializerId()).isEqualTo(7710);
    assertThat(read.manifest()).isEqualTo("com.example.Evt$V2");
    assertThat(read.payload()).containsExactly(0, 1, -1, 127, -128);
  }

  @Test
  @DisplayName("keeps every event's own manifest and serializer id when an entity's events cycle through many types")
  void keepsManifestsOfManyTypes() {
    PersistenceId id = freshId();
    List<PersistentRepr> events = new ArrayList<>();
    for (int seq = 1; seq <= 60; seq++) {
      // 12 types in a cycle (more than a journal would sensibly cache), then one type repeated
      String manifest = seq <= 48 ? "com.example.Evt" + (seq % 12) + "-é" : "com.example.Last";
      events.add(new PersistentRepr(id, seq, 100 + seq % 5, manifest, payload(id, seq)));
    }
    await(journal().append(new AtomicWrite(id, 0, events)));
    List<PersistentRepr> read = replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE);
    assertThat(read).extracting(PersistentRepr::manifest)
        .containsExactlyElementsOf(events.stream().map(PersistentRepr::manifest).toList());
    assertThat(read).extracting(PersistentRepr::serializerId)
        .containsExactlyElementsOf(events.stream().map(PersistentRepr::serializerId).toList());
    assertThat(payloads(read)).containsExactlyElementsOf(payloads(events));
  }

  @Test
  @DisplayName("reports the highest sequenceNr after several writes")
  void highestSequenceNrAfterWrites() {
    PersistenceId id = freshId();
    await(journal().append(write(id, 0, 3)));
    await(journal().append(write(id, 3, 1)));
    assertThat(await(journal().highestSequenceNr(id))).isEqualTo(4L);
  }

  @Test
  @DisplayName("fails a write with a stale expected sequenceNr with the conflict error and stores nothing")
  void conflictingWriteStoresNothing() {
    PersistenceId id = writtenFive();
    Throwable stale = failure(journal().append(write(id, 3, 2)));
    assertThat(stale).isInstanceOf(ConcurrencyConflictException.class);
    assertThat(((ConcurrencyConflictException) stale).persistenceId()).isEqualTo(id);
    assertThat(((ConcurrencyConflictException) stale).expectedSequenceNr()).isEqualTo(3);
    Throwable ahead = failure(journal().append(write(id, 7, 1)));
    assertThat(ahead).isInstanceOf(ConcurrencyConflictException.class);
    Throwable fresh = failure(journal().append(write(id, 0, 1)));
    assertThat(fresh).isInstanceOf(ConcurrencyConflictException.class);
    List<PersistentRepr> events = replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE);
    assertThat(sequenceNrs(events)).containsExactly(1L, 2L, 3L, 4L, 5L);
    assertThat(payloads(events).get(3)).isEqualTo(payload(id, 4));
    assertThat(await(journal().highestSequenceNr(id))).isEqualTo(5L);
  }

  @Test
  @DisplayName("lets exactly one of two concurrent writers with the same expected sequenceNr win")
  void twoConcurrentWritersOneWins() {
    for (int round = 0; round < 10; round++) {
      PersistenceId id = freshId();
      await(journal().append(write(id, 0, 1)));
      AtomicWrite a = new AtomicWrite(id, 1, List.of(event(id, 2, "writer-a"), event(id, 3, "writer-a")));
      AtomicWrite b = new AtomicWrite(id, 1, List.of(event(id, 2, "writer-b")));
      CompletableFuture<?> first = journal().append(a).toCompletableFuture();
      CompletableFuture<?> second = journal().append(b).toCompletableFuture();
      Throwable errorA = outcome(first);
      Throwable errorB = outcome(second);
      assertThat(errorA == null ^ errorB == null)
          .as("exactly one writer wins (a failed: %s, b failed: %s)", errorA, errorB)
          .isTrue();
      Throwable loser = errorA != null ? errorA : errorB;
      assertThat(loser).isInstanceOf(ConcurrencyConflictException.class);
      String winner = errorA == null ? "writer-a" : "writer-b";
      List<PersistentRepr> events = replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE);
      assertThat(sequenceNrs(events)).containsExactlyElementsOf(
          range(1, errorA == null ? 3 : 2));
      for (PersistentRepr e : events.subList(1, events.size())) {
        assertThat(new String(e.payload(), StandardCharsets.UTF_8)).isEqualTo(winner);
      }
    }
  }

  @Test
  @DisplayName("stores an atomic write of several events all together or not at all")
  void atomicWriteAllOrNothing() {
    PersistenceId id = freshId();
    await(journal().append(write(id, 0, 4)));
    assertThat(sequenceNrs(replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE))).containsExactly(1L, 2L, 3L, 4L);
    // A rejected multi-event write leaves no trace, not even its first event.
    Throwable error = failure(journal().append(write(id, 2, 3)));
    assertThat(error).isInstanceOf(ConcurrencyConflictException.class);
    assertThat(sequenceNrs(replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE))).containsExactly(1L, 2L, 3L, 4L);
    await(journal().append(write(id, 4, 3)));
    List<PersistentRepr> events = replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE);
    assertThat(sequenceNrs(events)).containsExactly(1L, 2L, 3L, 4L, 5L, 6L, 7L);
    assertThat(payloads(events).get(6)).isEqualTo(payload(id, 7));
  }

  @Test
  @DisplayName("keeps contiguous sequences when 50 entities write concurrently")
  void fiftyEntitiesConcurrently() {
    int entities = 50;
    int writesPerEntity = 20;
    List<PersistenceId> ids = IntStream.range(0, entities).mapToObj(i -> freshId()).toList();
    // Each entity writes one write at a time (as the runtime does), all entities at once.
    List<CompletableFuture<Long>> chains = new ArrayList<>();
    for (int e = 0; e < entities; e++) {
      PersistenceId id = ids.get(e);
      int batch = 1 + e % 3;
      CompletableFuture<Long> chain = CompletableFuture.completedFuture(0L);
      for (int w = 0; w < writesPerEntity; w++) {
        chain = chain.thenCompose(last -> journal().append(write(id, last, batch)).thenApply(done -> last + batch));
      }
      chains.add(chain);
    }
    CompletableFuture.allOf(chains.toArray(CompletableFuture[]::new)).orTimeout(timeout().toMillis(), TimeUnit.MILLISECONDS).join();
    for (int e = 0; e < entities; e++) {
      PersistenceId id = ids.get(e);
      long expected = (long) writesPerEntity * (1 + e % 3);
      List<PersistentRepr> events = replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE);
      assertThat(sequenceNrs(events)).as("events of %s", id).containsExactlyElementsOf(range(1, expected));
      for (PersistentRepr event : events) {
        assertThat(event.persistenceId()).isEqualTo(id);
        assertThat(event.payload()).isEqualTo(payload(id, event.sequenceNr()));
      }
      assertThat(await(journal().highestSequenceNr(id))).isEqualTo(expected);
    }
  }

  @Test
  @DisplayName("accepts ids with . * > | / space and non-ASCII characters and keeps them apart")
  void anyIdWorks() {
    String base = UUID.randomUUID().toString();
    List<String> suffixes = List.of("", ".", "a.b", "*", ">", "a.*.>", "|", "a|b", "/", "a/b", " ", "a b", "ünïcødé", "日本語", "emoji😀", "%2E", "_", "-");
    List<PersistenceId> ids = suffixes.stream().map(s -> PersistenceId.of("tck", base + s)).toList();
    for (int i = 0; i < ids.size(); i++) {
      await(journal().append(write(ids.get(i), 0, i % 3 + 1)));
    }
    for (int i = 0; i < ids.size(); i++) {
      PersistenceId id = ids.get(i);
      List<PersistentRepr> events = replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE);
      assertThat(sequenceNrs(events)).as("events of [%s]", id).containsExactlyElementsOf(range(1, i % 3 + 1));
      assertThat(events).allSatisfy(e -> assertThat(e.persistenceId()).isEqualTo(id));
      assertThat(payloads(events).get(0)).isEqualTo(payload(id, 1));
    }
    PersistenceId wildcardOnly = PersistenceId.of("tck", "*");
    PersistenceId gtOnly = PersistenceId.of("tck", ">");
    long before = await(journal().highestSequenceNr(wildcardOnly));
    long gtBefore = await(journal().highestSequenceNr(gtOnly));
    await(journal().append(write(wildcardOnly, before, 1)));
    assertThat(await(journal().highestSequenceNr(wildcardOnly))).isEqualTo(before + 1);
    // Nothing written for "*" may show up under ">" (subject wildcards in a NATS journal).
    // A journal stamps replayed events with the id asked for, so the payload tells them apart.
    assertThat(await(journal().highestSequenceNr(gtOnly))).isEqualTo(gtBefore);
    assertThat(payloads(replay(gtOnly, 1, Long.MAX_VALUE, Long.MAX_VALUE)))
        .noneSatisfy(p -> assertThat(p).isEqualTo(payload(wildcardOnly, before + 1)));
  }

  @Test
  @DisplayName("stores and replays an event of about 512 KiB")
  void largeEvent() {
    PersistenceId id = freshId();
    byte[] big = new byte[512 * 1024 - 1024];
    for (int i = 0; i < big.length; i++) {
      big[i] = (byte) (i * 31 + 7);
    }
    await(journal().append(new AtomicWrite(id, 0, List.of(new PersistentRepr(id, 1, SERIALIZER_ID, "big", big)))));
    await(journal().append(write(id, 1, 1)));
    List<PersistentRepr> events = replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE);
    assertThat(sequenceNrs(events)).containsExactly(1L, 2L);
    assertThat(events.get(0).payload()).isEqualTo(big);
    assertThat(events.get(0).manifest()).isEqualTo("big");
  }

  @Test
  @DisplayName("keeps type names apart: the same id under two types is two entities")
  void typeNamesKeptApart() {
    String entityId = UUID.randomUUID().toString();
    PersistenceId a = PersistenceId.of("tck-a", entityId);
    PersistenceId b = PersistenceId.of("tck-b", entityId);
    await(journal().append(write(a, 0, 3)));
    await(journal().append(write(b, 0, 1)));
    assertThat(await(journal().highestSequenceNr(a))).isEqualTo(3L);
    assertThat(await(journal().highestSequenceNr(b))).isEqualTo(1L);
    assertThat(payloads(replay(b, 1, Long.MAX_VALUE, Long.MAX_VALUE))).containsExactly(payload(b, 1));
    assertThat(replay(a, 1, Long.MAX_VALUE, Long.MAX_VALUE)).allSatisfy(e -> assertThat(e.persistenceId()).isEqualTo(a));
  }

  @Test
  @DisplayName("fails the replay with the exception thrown by the event consumer")
  void consumerExceptionFailsReplay() {
    PersistenceId id = writtenFive();
    IllegalStateException boom = new IllegalStateException("cannot apply event 3");
    List<Long> seen = new ArrayList<>();
    CompletionStage<?> replay =
        journal().replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> {
          seen.add(e.sequenceNr());
          if (e.sequenceNr() == 3) {
            throw boom;
          }
        });
    // The SPI: the stage fails with that exception, not a wrapper (an IllegalStateException is
    // also what a client library may throw on a closed connection, so a journal must not catch
    // it around the consumer).
    assertThat(failure(replay)).as("the consumer's exception fails the replay unchanged").isSameAs(boom);
    assertThat(seen).containsExactly(1L, 2L, 3L);
  }

  @Test
  @DisplayName("fails the replay when the event consumer throws an Error, instead of never completing")
  void consumerErrorFailsReplay() {
    PersistenceId id = writtenFive();
    StackOverflowError boom = new StackOverflowError("deep event handler");
    CompletionStage<?> replay =
        journal().replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> {
          throw boom;
        });
    Throwable error = failure(replay);
    List<Throwable> chain = new ArrayList<>();
    for (Throwable t = error; t != null && !chain.contains(t); t = t.getCause()) {
      chain.add(t);
    }
    assertThat(chain).as("the consumer's error fails the replay").contains(boom);
  }

  // ---------------------------------------------------------------- helpers

  private PersistenceId writtenFive() {
    PersistenceId id = freshId();
    for (long seq = 1; seq <= 5; seq++) {
      await(journal().append(write(id, seq - 1, 1)));
    }
    return id;
  }

  /**
   * An atomic write of {@code count} TCK events after {@code expected}.
   *
   * @param id the entity
   * @param expected the expected last sequence number
   * @param count how many events
   * @return the write
   */
  protected static AtomicWrite write(PersistenceId id, long expected, int count) {
    List<PersistentRepr> events = new ArrayList<>();
    for (int i = 1; i <= count; i++) {
      events.add(new PersistentRepr(id, expected + i, SERIALIZER_ID, "tck-event", payload(id, expected + i)));
    }
    return new AtomicWrite(id, expected, events);
  }

  private static PersistentRepr event(PersistenceId id, long seq, String text) {
    return new PersistentRepr(id, seq, SERIALIZER_ID, "", text.getBytes(StandardCharsets.UTF_8));
  }

  /**
   * The payload the TCK writes for an event: names entity and sequence number, so a misplaced
   * event is visible.
   *
   * @param id the entity
   * @param seq the sequence number
   * @return the bytes
   */
  protected static byte[] payload(PersistenceId id, long seq) {
    return (id + "#" + seq).getBytes(StandardCharsets.UTF_8);
  }

  /**
   * Replays into a list.
   *
   * @param id the entity
   * @param from lowest sequence number
   * @param to highest sequence number
   * @param max most events
   * @return the replayed events
   */
  protected List<PersistentRepr> replay(PersistenceId id, long from, long to, long max) {
    List<PersistentRepr> events = Collections.synchronizedList(new ArrayList<>());
    await(journal().replay(id, from, to, max, events::add));
    return List.copyOf(events);
  }

  private static List<Long> sequenceNrs(List<PersistentRepr> events) {
    return events.stream().map(PersistentRepr::sequenceNr).toList();
  }

  private static List<byte[]> payloads(List<PersistentRepr> events) {
    return events.stream().map(PersistentRepr::payload).toList();
  }

  private static List<Long> range(long from, long to) {
    List<Long> list = new ArrayList<>();
    for (long i = from; i <= to; i++) {
      list.add(i);
    }
    return list;
  }

  /**
   * Waits for a stage and returns its value, failing the test on timeout or failure.
   *
   * @param stage the stage
   * @param <T> its value type
   * @return the value
   */
  protected <T> T await(CompletionStage<T> stage) {
    try {
      return stage.toCompletableFuture().get(timeout().toMillis(), TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      throw new AssertionError("journal operation failed: " + e.getCause(), e.getCause());
    } catch (TimeoutException e) {
      throw new AssertionError("journal operation did not complete within " + timeout(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  private Throwable failure(CompletionStage<?> stage) {
    Throwable error = outcome(stage.toCompletableFuture());
    assertThat(error).as("expected the operation to fail").isNotNull();
    return error;
  }

  private Throwable outcome(CompletableFuture<?> future) {
    try {
      future.get(timeout().toMillis(), TimeUnit.MILLISECONDS);
      return null;
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      return cause instanceof CompletionException && cause.getCause() != null ? cause.getCause() : cause;
    } catch (TimeoutException e) {
      throw new AssertionError("journal operation did not complete within " + timeout(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
