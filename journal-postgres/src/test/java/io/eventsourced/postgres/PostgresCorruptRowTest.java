package io.eventsourced.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.Entity;
import io.eventsourced.EntityException;
import io.eventsourced.EntityRef;
import io.eventsourced.Reply;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("Entities on the PostgreSQL journal with a corrupt stored row")
class PostgresCorruptRowTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("corrupt");
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    testKit = PostgresTestSupport.testKit(SCHEMA, "");
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  private static Reply<Long, String> ask(EntityRef<Ledger.Command, Long, String> ref, Ledger.Command command)
      throws Exception {
    return ref.ask(command, Duration.ofSeconds(10)).toCompletableFuture().get(15, TimeUnit.SECONDS);
  }

  /** Spawns an entity, stores three events (1, 2, 3) and stops it. */
  private static String ledgerWithThreeEvents() throws Exception {
    String id = UUID.randomUUID().toString();
    EntityRef<Ledger.Command, Long, String> ref = Entity.spawn(testKit.system(), new Ledger(), id);
    for (long amount = 1; amount <= 3; amount++) {
      assertThat(ask(ref, new Ledger.Add(amount)).isAccepted()).isTrue();
    }
    ref.stop().toCompletableFuture().get(10, TimeUnit.SECONDS);
    return id;
  }

  /**
   * The failure of a command sent to a freshly spawned entity whose recovery fails. A command can
   * reach the entity only after it stopped (then the runtime answers "stopped" without the
   * cause), so this re-spawns a few times until the recovery error itself comes back.
   */
  private static Throwable recoveryFailure(String id) throws Exception {
    Throwable last = null;
    for (int attempt = 0; attempt < 10; attempt++) {
      EntityRef<Ledger.Command, Long, String> ref = Entity.spawn(testKit.system(), new Ledger(), id);
      try {
        ask(ref, new Ledger.Get());
        throw new AssertionError("recovery of [ledger|" + id + "] should have failed");
      } catch (ExecutionException e) {
        last = e.getCause();
      }
      ref.whenStopped().toCompletableFuture().get(10, TimeUnit.SECONDS);
      if (last.getMessage() != null && last.getMessage().contains("cannot recover")) {
        return last;
      }
    }
    return last;
  }

  @Test
  @DisplayName("fails recovery naming persistence id and sequenceNr for a corrupt payload or an unknown serializer, and leaves other entities alone")
  void corruptRows() throws Exception {
    String garbled = ledgerWithThreeEvents();
    String unknownSerializer = ledgerWithThreeEvents();
    String healthy = ledgerWithThreeEvents();
    String table = Sql.quote(SCHEMA) + ".event_journal";
    PostgresTestSupport.execute(
        "UPDATE " + table + " SET payload = ? WHERE type_name = 'ledger' AND entity_id = ? AND sequence_nr = 2",
        new byte[] {'{', 0, (byte) 0xff, 'x'}, garbled);
    PostgresTestSupport.execute(
        "UPDATE " + table + " SET serializer_id = 999999 WHERE type_name = 'ledger' AND entity_id = ? AND sequence_nr = 3",
        unknownSerializer);

    for (var entity : List.of(List.of(garbled, "2"), List.of(unknownSerializer, "3"))) {
      Throwable failure = recoveryFailure(entity.get(0));
      assertThat(failure)
          .isInstanceOf(EntityException.class)
          .hasMessageContaining("ledger|" + entity.get(0))
          .hasMessageContaining("sequenceNr [" + entity.get(1) + "]");
    }
    EntityRef<Ledger.Command, Long, String> ref = Entity.spawn(testKit.system(), new Ledger(), healthy);
    Reply<Long, String> total = ask(ref, new Ledger.Get());
    assertThat(total).isEqualTo(new Reply.Accepted<Long, String>(6L));
    assertThat(ask(ref, new Ledger.Add(4)).isAccepted()).isTrue();
  }
}
