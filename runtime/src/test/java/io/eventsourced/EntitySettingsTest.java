package io.eventsourced;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.eventsourced.internal.EntitySettings;
import java.time.Duration;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The eventsourced.entity settings")
class EntitySettingsTest {

  private static Config withDefaults(String overrides) {
    return ConfigFactory.parseString(overrides).withFallback(ConfigFactory.load());
  }

  @Test
  @DisplayName("are refused naming the key when invalid, a fractional stash capacity included")
  void invalidValues() {
    assertThat(EntitySettings.fromConfig(withDefaults("")))
        .isEqualTo(new EntitySettings(1000, Duration.ofSeconds(10)));
    assertThat(EntitySettings.fromConfig(withDefaults("eventsourced.entity.stash-capacity = 2.0")).stashCapacity())
        .isEqualTo(2);
    assertThatThrownBy(() -> EntitySettings.fromConfig(withDefaults("eventsourced.entity.stash-capacity = 1.5")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("[eventsourced.entity.stash-capacity] must be a whole number, was [1.5]");
    assertThatThrownBy(() -> EntitySettings.fromConfig(withDefaults("eventsourced.entity.stash-capacity = 0")))
        .hasMessage("[eventsourced.entity.stash-capacity] must be >= 1, was [0]");
    assertThatThrownBy(() -> EntitySettings.fromConfig(withDefaults("eventsourced.entity.stash-capacity = many")))
        .hasMessageStartingWith("invalid [eventsourced.entity.stash-capacity]");
    assertThatThrownBy(() -> EntitySettings.fromConfig(withDefaults("eventsourced.entity.ask-timeout = 0s")))
        .hasMessageStartingWith("[eventsourced.entity.ask-timeout] must be > 0");
    assertThatThrownBy(() -> EntitySettings.fromConfig(withDefaults("eventsourced.entity.ask-timeout = soon")))
        .hasMessageStartingWith("invalid [eventsourced.entity.ask-timeout]");
  }

  @Test
  @DisplayName("when invalid, fail Entity.spawn at the caller and answer the commands of an entity that could not start, naming the key")
  void invalidSettingsReachCallers() {
    ActorTestKit kit = ActorTestKit.create("invalid-entity-settings", withDefaults("eventsourced.entity.stash-capacity = 1.5"));
    try {
      assertThatThrownBy(() -> Entity.spawn(kit.system(), new Tally(), "spawned"))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("[eventsourced.entity.stash-capacity] must be a whole number");

      var entity = kit.spawn(Entity.create(new Tally(), "created"));
      kit.createTestProbe().expectTerminated(entity, Duration.ofSeconds(5));
      var probe = kit.<Reply<List<String>, Tally.Error>>createTestProbe();
      entity.tell(new EntityCommand<>(new Tally.Get(), probe.ref()));
      Reply<List<String>, Tally.Error> reply = probe.receiveMessage(Duration.ofSeconds(5));
      assertThat(reply).isInstanceOf(Reply.Failed.class);
      assertThat(((Reply.Failed<List<String>, Tally.Error>) reply).error())
          .hasMessageContaining("cannot start entity [tally|created]")
          .hasMessageContaining("[eventsourced.entity.stash-capacity] must be a whole number");
    } finally {
      kit.shutdownTestKit();
    }
  }
}
