package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;

import io.nats.client.api.StreamConfiguration;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The NATS journal's check of an existing stream")
class StreamCheckTest {

  private static StreamConfiguration stream(int replicas, boolean allowDirect) {
    return StreamConfiguration.builder().name("JOURNAL").subjects("es.>").replicas(replicas).allowDirect(allowDirect).build();
  }

  @Test
  @DisplayName("warns about direct get on a replicated stream, whose lookups may be stale, naming the stream")
  void warnsAboutDirectGetOnReplicas() {
    assertThat(NatsJournal.staleLookups(stream(3, true)))
        .contains("Stream [JOURNAL]")
        .contains("[3] replicas")
        .contains("allow_direct off");
  }

  @Test
  @DisplayName("says nothing of a single replica or of a stream without direct get")
  void quietOtherwise() {
    assertThat(NatsJournal.staleLookups(stream(1, true))).isNull();
    assertThat(NatsJournal.staleLookups(stream(3, false))).isNull();
  }
}
