package io.eventsourced;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.eventsourced.tck.EntityFaultCheck;
import java.time.Duration;
import java.util.function.Consumer;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The entity fault check of the TCK")
class EntityFaultCheckTest {

  private static final Config CONFIG =
      ConfigFactory.parseString(
              """
              eventsourced.journal.plugin = "cuttable"
              cuttable { class = "io.eventsourced.CuttableJournal", plugin-dispatcher = "cuttable-dispatcher" }
              cuttable-dispatcher { type = Dispatcher, executor = "thread-pool-executor", thread-pool-executor.fixed-pool-size = 2 }
              """)
          .withFallback(ConfigFactory.load())
          .resolve();

  /** Runs the check on a fresh actor system whose cuttable journal is first set up as given. */
  private static void check(String name, Consumer<CuttableJournal> setup) throws Exception {
    ActorTestKit testKit = ActorTestKit.create(name, CONFIG);
    try {
      CuttableJournal journal = (CuttableJournal) Persistence.get(testKit.system()).journal();
      setup.accept(journal);
      EntityFaultCheck.run(testKit.system(), journal::cut, Duration.ofMillis(300), journal::restore);
    } finally {
      testKit.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("passes on a journal that fails every write and read while cut, some writes after storing them")
  void passesOnAnHonestJournal() throws Exception {
    check("EntityFaultCheckHonest", journal -> {});
  }

  @Test
  @DisplayName("fails on a journal that confirms some of the writes it did not store")
  void failsOnALyingJournal() {
    assertThatThrownBy(() -> check("EntityFaultCheckLying", CuttableJournal::lie))
        .isInstanceOf(AssertionError.class)
        .hasMessageContaining("acknowledged attempts stored for [tck-fault-ledger|");
  }

  @Test
  @DisplayName("fails on a journal that stores part of a write whose outcome it reports as unknown")
  void failsOnATearingJournal() {
    assertThatThrownBy(() -> check("EntityFaultCheckTearing", CuttableJournal::tear))
        .isInstanceOf(AssertionError.class)
        .hasMessageContaining("part of the write at sequenceNr");
  }
}
