package io.eventsourced.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.Entity;
import io.eventsourced.EntityException;
import io.eventsourced.EntityRef;
import io.eventsourced.Reply;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/**
 * The connection cut of {@link PostgresConnectionFaultTest}, seen from entities and their
 * callers: real entities behind {@link EntityRef#ask}, stopped by the failed writes and spawned
 * again by their clients.
 */
@DisplayName("Entities on the PostgreSQL journal when the connection to the server is cut")
class PostgresEntityFaultTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("entityfault");
  private static final Duration ASK_TIMEOUT = Duration.ofSeconds(20);
  private static TcpProxy proxy;
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() throws Exception {
    PostgresTestSupport.requireServer();
    Properties target = org.postgresql.Driver.parseURL(PostgresTestSupport.defaults().url(), null);
    proxy = new TcpProxy(target.getProperty("PGHOST"), Integer.parseInt(target.getProperty("PGPORT")));
    String url = "jdbc:postgresql://127.0.0.1:" + proxy.port() + "/" + target.getProperty("PGDBNAME");
    testKit =
        PostgresTestSupport.testKit(
            SCHEMA,
            "eventsourced.postgres.url = \"" + url + "\"\n"
                + "eventsourced.postgres.pool-size = 4\n"
                + "eventsourced.postgres.connection-timeout = 500ms\n"
                + "eventsourced.postgres.socket-timeout = 5s\n");
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      proxy.close();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  /**
   * One caller of one entity, one command at a time. Each {@code Add} carries the caller's attempt
   * number, so every stored event names the ask that wrote it. When an ask fails, the caller waits
   * for the entity to stop and spawns it again (again and again while the server is away).
   */
  private static final class Client {
    final String entityId = UUID.randomUUID().toString();
    /** Acknowledged attempt → the total the entity replied with. */
    final Map<Long, Long> acknowledged = new ConcurrentHashMap<>();
    /** Every failure an ask completed with; each must be an entity's answer, none a timeout. */
    final List<Throwable> failures = new CopyOnWriteArrayList<>();
    final AtomicInteger spawns = new AtomicInteger();
    final AtomicInteger acksAfterRestore = new AtomicInteger();
    final CompletableFuture<Void> done = new CompletableFuture<>();
    volatile boolean stop;
    volatile boolean restored;
    EntityRef<Ledger.Command, Long, String> ref;
    long attempt;

    void spawn() {
      spawns.incrementAndGet();
      ref = Entity.spawn(testKit.system(), new Ledger(), entityId);
      next();
    }

    void next() {
      if (stop) {
        done.complete(null);
        return;
      }
      long amount = ++attempt;
      ref.ask(new Ledger.Add(amount), ASK_TIMEOUT)
          .whenCompleteAsync(
              (reply, error) -> {
                if (error == null && reply instanceof Reply.Accepted<Long, String> accepted) {
                  acknowledged.put(amount, accepted.value());
                  if (restored) {
                    acksAfterRestore.incrementAndGet();
                  }
                  next();
                } else if (error == null) {
                  done.completeExceptionally(new AssertionError("unexpected reply " + reply));
                } else {
                  failures.add(error instanceof CompletionException && error.getCause() != null ? error.getCause() : error);
                  // An entity that failed stops; a new one may be spawned once it has.
                  ref.whenStopped()
                      .whenComplete(
                          (stopped, e) ->
                              CompletableFuture.delayedExecutor(100, TimeUnit.MILLISECONDS).execute(this::spawn));
                }
              });
    }
  }

  @Test
  @DisplayName("tells every caller of a cut write, stores each acknowledged event once, and lets re-spawned entities recover what was stored and go on")
  void cutAndRestore() throws Exception {
    List<Client> clients = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      clients.add(new Client());
    }
    clients.forEach(Client::spawn);

    Thread.sleep(500);
    proxy.cut();
    Thread.sleep(1500);
    proxy.restore();
    clients.forEach(c -> c.restored = true);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (clients.stream().anyMatch(c -> c.acksAfterRestore.get() < 3) && System.nanoTime() < deadline) {
      Thread.sleep(100);
    }
    clients.forEach(c -> c.stop = true);
    CompletableFuture.allOf(clients.stream().map(c -> c.done).toArray(CompletableFuture[]::new))
        .get(60, TimeUnit.SECONDS);

    List<Throwable> failures = clients.stream().flatMap(c -> c.failures.stream()).toList();
    LoggerFactory.getLogger(PostgresEntityFaultTest.class)
        .info(
            "Entity fault run: {} commands acknowledged, {} asks failed, {} spawns",
            clients.stream().mapToInt(c -> c.acknowledged.size()).sum(),
            failures.size(),
            clients.stream().mapToInt(c -> c.spawns.get()).sum());
    assertThat(failures)
        .as("failed asks")
        .isNotEmpty()
        .allSatisfy(
            f -> {
              // Told by the entity, not left to the ask timeout.
              assertThat(f).isInstanceOf(EntityException.class);
              for (Throwable t = f; t != null; t = t.getCause()) {
                assertThat(t).isNotInstanceOf(TimeoutException.class);
              }
              assertThat(f.getMessage()).doesNotContain("no reply");
            })
        .anySatisfy(f -> assertThat(f.getMessage()).contains("cannot persist events of [ledger|"));

    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        PreparedStatement ps =
            c.prepareStatement(
                "SELECT sequence_nr, payload FROM " + Sql.quote(SCHEMA) + ".event_journal"
                    + " WHERE type_name = 'ledger' AND entity_id = ? ORDER BY sequence_nr")) {
      for (Client client : clients) {
        assertThat(client.spawns.get()).as("spawns of %s", client.entityId).isGreaterThan(1);
        assertThat(client.acksAfterRestore.get()).as("acks of %s after the restore", client.entityId).isGreaterThanOrEqualTo(3);
        ps.setString(1, client.entityId);
        // The amount of each stored event is the attempt that wrote it.
        List<Long> stored = new ArrayList<>();
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) {
            assertThat(rs.getLong(1)).as("contiguous sequenceNrs of %s", client.entityId).isEqualTo(stored.size() + 1L);
            stored.add(amountOf(rs.getBytes(2)));
          }
        }
        assertThat(stored).as("attempts stored for %s", client.entityId).doesNotHaveDuplicates();
        assertThat(stored).as("attempts stored for %s", client.entityId).containsAll(client.acknowledged.keySet());
        // Persist before reply, recovery after a failure: every reply is the total of the events
        // stored up to and including its own, whatever failed writes landed before it.
        long total = 0;
        for (long amount : stored) {
          total += amount;
          Long replied = client.acknowledged.get(amount);
          if (replied != null) {
            assertThat(replied).as("reply to attempt %d of %s", amount, client.entityId).isEqualTo(total);
          }
        }
        client.ref.stop().toCompletableFuture().get(10, TimeUnit.SECONDS);
        EntityRef<Ledger.Command, Long, String> fresh = Entity.spawn(testKit.system(), new Ledger(), client.entityId);
        Reply<Long, String> recovered = fresh.ask(new Ledger.Get(), ASK_TIMEOUT).toCompletableFuture().get(30, TimeUnit.SECONDS);
        assertThat(recovered).as("recovered total of %s", client.entityId).isEqualTo(new Reply.Accepted<Long, String>(total));
      }
    }
  }

  /** The JSON {@code {"amount":N}} of a stored {@code Added}. */
  private static long amountOf(byte[] payload) {
    String json = new String(payload, StandardCharsets.UTF_8);
    return Long.parseLong(json.replaceAll("[^0-9]", ""));
  }
}
