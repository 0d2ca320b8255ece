package io.eventsourced.nats;

import static org.junit.jupiter.api.Assertions.fail;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.eventsourced.PersistenceId;
import io.nats.client.Connection;
import io.nats.client.JetStreamApiException;
import io.nats.client.Nats;
import io.nats.client.Options;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.junit.jupiter.api.Assumptions;

/**
 * The shared test server at 127.0.0.1:4222 and per-class names, so each test class writes to its
 * own stream and bucket and deletes them afterwards.
 */
final class TestNats {
  static final String URL = "nats://127.0.0.1:4222";
  static final String START_HINT =
      "start it with: start-stop-daemon --start --background --exec /usr/sbin/nats-server --"
          + " -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server";

  private TestNats() {}

  /** Skips the calling test class when the server is down, unless CI=true, where it fails. */
  static void requireServer() {
    if (reachable("127.0.0.1", 4222)) {
      return;
    }
    String message = "nats-server is not reachable at 127.0.0.1:4222; " + START_HINT;
    if ("true".equalsIgnoreCase(System.getenv("CI"))) {
      fail(message + " (required because CI=true)");
    }
    Assumptions.abort(message);
  }

  static boolean reachable(String host, int port) {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress(host, port), 1000);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /**
   * Runs {@code issue} while all {@code threads} threads of the NATS plugin dispatcher are held,
   * so the replays it requests queue up and one drain of the journal finds them all: a
   * deterministic burst of recoveries.
   */
  static <T> T whileDispatcherBusy(ActorSystem<?> system, int threads, Callable<T> issue) throws Exception {
    Executor dispatcher = system.dispatchers().lookup(DispatcherSelector.fromConfig("eventsourced.nats.dispatcher"));
    CountDownLatch held = new CountDownLatch(threads);
    CountDownLatch release = new CountDownLatch(1);
    for (int i = 0; i < threads; i++) {
      dispatcher.execute(
          () -> {
            held.countDown();
            try {
              release.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
          });
    }
    try {
      if (!held.await(30, TimeUnit.SECONDS)) {
        throw new AssertionError("the dispatcher did not run " + threads + " tasks at once");
      }
      return issue.call();
    } finally {
      release.countDown();
    }
  }

  /** Unique entity ids of a type; every other one holds subject wildcards, spaces and non-ASCII. */
  static List<PersistenceId> freshIds(String type, int count) {
    List<PersistenceId> ids = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      ids.add(PersistenceId.of(type, UUID.randomUUID() + (i % 2 == 0 ? "" : ".*> |/ü")));
    }
    return ids;
  }

  /** Unique stream, prefix and bucket names for one test class. */
  record Names(String stream, String prefix, String bucket) {
    static Names fresh(String tag) {
      String suffix = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
      return new Names("T_" + tag + "_" + suffix, "t" + suffix, "t-" + tag.toLowerCase() + "-" + suffix);
    }

    /** Config selecting the NATS plugins with these names against {@code servers}. */
    Config config(String servers, String extra) {
      // load() merges with the reference config before resolving, so the plugins' copies of
      // eventsourced.nats.connection see these overrides.
      return ConfigFactory.load(
          ConfigFactory.parseString(
              "eventsourced.nats.connection.servers = [\""
                  + servers
                  + "\"]\n"
                  + "eventsourced.journal.plugin = \"eventsourced.journal.nats\"\n"
                  + "eventsourced.snapshot-store.plugin = \"eventsourced.snapshot-store.nats\"\n"
                  + "eventsourced.journal.nats.stream.name = \""
                  + stream
                  + "\"\n"
                  + "eventsourced.journal.nats.stream.subject-prefix = \""
                  + prefix
                  + "\"\n"
                  + "eventsourced.snapshot-store.nats.bucket.name = \""
                  + bucket
                  + "\"\n"
                  + extra));
    }

    /** Deletes the stream and the bucket, if they exist. */
    void delete(String servers) throws Exception {
      try (Connection nc = Nats.connect(Options.builder().server(servers).build())) {
        try {
          nc.jetStreamManagement().deleteStream(stream);
        } catch (JetStreamApiException e) {
          // Not created by this class.
        }
        try {
          nc.keyValueManagement().delete(bucket);
        } catch (JetStreamApiException e) {
          // Not created by this class.
        }
      }
    }
  }

  /** A write of {@code count} events after {@code expected}, with {@link #payload} bodies. */
  static io.eventsourced.journal.AtomicWrite write(io.eventsourced.PersistenceId id, long expected, int count) {
    java.util.List<io.eventsourced.journal.PersistentRepr> events = new java.util.ArrayList<>();
    for (int i = 1; i <= count; i++) {
      events.add(new io.eventsourced.journal.PersistentRepr(id, expected + i, 4, "e", payload(id, expected + i)));
    }
    return new io.eventsourced.journal.AtomicWrite(id, expected, events);
  }

  /** The payload {@link #write} gives event {@code seq} of an entity: unique per event. */
  static byte[] payload(io.eventsourced.PersistenceId id, long seq) {
    return (id + "#" + seq).getBytes(java.nio.charset.StandardCharsets.UTF_8);
  }
}
