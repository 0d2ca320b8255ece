package io.eventsourced.nats;

import io.nats.client.Connection;
import io.nats.client.ConnectionListener;
import io.nats.client.Consumer;
import io.nats.client.ErrorListener;
import io.nats.client.JetStream;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.JetStreamOptions;
import io.nats.client.Message;
import io.nats.client.Nats;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.actor.typed.ActorSystem;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One NATS connection per actor system and {@link NatsSettings}, shared by the plugins that use
 * equal settings and closed when the last of them is closed.
 */
final class SharedConnection {
  private static final Logger log = LoggerFactory.getLogger(SharedConnection.class);
  private static final Map<Key, SharedConnection> open = new HashMap<>();

  private record Key(ActorSystem<?> system, NatsSettings settings) {}

  private final Key key;
  private final Connection connection;
  private final JetStream jetStream;
  private final JetStreamManagement management;
  private final AtomicBoolean probing = new AtomicBoolean();
  private int users;

  private SharedConnection(Key key, Connection connection, JetStream js, JetStreamManagement jsm) {
    this.key = key;
    this.connection = connection;
    this.jetStream = js;
    this.management = jsm;
  }

  /**
   * The connection for these settings, opened on first use.
   *
   * @param system the actor system
   * @param settings how to connect
   * @param path the config path of the connection block, for error messages
   * @return the shared connection; call {@link #release()} once when done
   * @throws IllegalStateException naming the servers (never secrets) if the servers cannot be
   *     reached, reject the credentials or have no JetStream
   */
  static SharedConnection acquire(ActorSystem<?> system, NatsSettings settings, String path) {
    Key key = new Key(system, settings);
    synchronized (open) {
      SharedConnection shared = open.get(key);
      if (shared == null) {
        shared = connect(key, path);
        open.put(key, shared);
      }
      shared.users++;
      return shared;
    }
  }

  private static SharedConnection connect(Key key, String path) {
    NatsSettings settings = key.settings();
    String servers = settings.serversText();
    Connection connection;
    try {
      connection =
          Nats.connect(
              settings
                  .optionsBuilder()
                  // Acks of asynchronous publishes time out after this (checked at this interval).
                  .requestCleanupInterval(settings.requestTimeout())
                  .errorListener(new QuietErrorListener())
                  .connectionListener(new ConnectionEvents())
                  .build());
    } catch (IOException e) {
      throw new IllegalStateException(
          "cannot connect to NATS servers ["
              + servers
              + "] configured at ["
              + path
              + ".servers]: "
              + e.getMessage(),
          e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while connecting to NATS servers [" + servers + "]", e);
    } catch (RuntimeException e) {
      throw new IllegalStateException(
          "cannot connect to NATS servers [" + servers + "] configured at [" + path + "]: " + e.getMessage(),
          e);
    }
    try {
      JetStreamOptions options = JetStreamOptions.builder().requestTimeout(settings.requestTimeout()).build();
      JetStreamManagement jsm = connection.jetStreamManagement(options);
      // Fails fast if the account or server has no JetStream.
      jsm.getAccountStatistics();
      log.info(
          "Connected to NATS [{}] as [{}] (server {})",
          connection.getConnectedUrl(),
          settings.connectionName(),
          connection.getServerInfo().getVersion());
      return new SharedConnection(key, connection, connection.jetStream(options), jsm);
    } catch (IOException | JetStreamApiException e) {
      closeQuietly(connection);
      throw new IllegalStateException(
          "NATS servers ["
              + servers
              + "] do not offer JetStream to this connection (start nats-server with -js, or enable"
              + " JetStream for the account): "
              + e.getMessage(),
          e);
    }
  }

  /**
   * The connection.
   *
   * @return the jnats connection
   */
  Connection connection() {
    return connection;
  }

  /**
   * The JetStream context, with the configured request timeout.
   *
   * @return the context
   */
  JetStream jetStream() {
    return jetStream;
  }

  /**
   * The JetStream management context, with the configured request timeout.
   *
   * @return the context
   */
  JetStreamManagement management() {
    return management;
  }

  /**
   * Checks, after a request or acknowledgement timed out, that a connection claiming to be
   * connected still carries requests: one request to the JetStream API. If it gets no answer at
   * all (not even an error status) within the request timeout, the connection is wedged (the
   * server receives nothing, seen with jnats after a server restart) and is reconnected. At most
   * one check runs at a time. Never throws: callers run it on their way to failing a write or a
   * replay, which must still reach their callers.
   *
   * @param executor where to run the blocking check
   */
  void checkLiveness(Executor executor) {
    if (connection.getStatus() != Connection.Status.CONNECTED || !probing.compareAndSet(false, true)) {
      return;
    }
    try {
      executor.execute(this::probe);
    } catch (RuntimeException e) {
      // The dispatcher is shutting down: no check, and the next one may run.
      probing.set(false);
      log.debug("NATS liveness check not started: {}", e.toString());
    }
  }

  /** The check itself, on the executor: one request, and a reconnect if it gets no answer. */
  private void probe() {
    try {
      Message reply = connection.request("$JS.API.INFO", null, key.settings().requestTimeout());
      if (reply == null && connection.getStatus() == Connection.Status.CONNECTED) {
        log.warn(
            "NATS connection to [{}] answered no request within [{}] although connected; reconnecting",
            connection.getConnectedUrl(),
            key.settings().requestTimeout());
        connection.forceReconnect();
      }
    } catch (IOException | RuntimeException e) {
      log.debug("NATS liveness check failed: {}", e.toString());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      probing.set(false);
    }
  }

  /** Gives up one use; the last user closes the connection. */
  void release() {
    synchronized (open) {
      users--;
      if (users > 0) {
        return;
      }
      open.remove(key);
    }
    closeQuietly(connection);
    log.info("Closed NATS connection to [{}]", key.settings().serversText());
  }

  private static void closeQuietly(Connection connection) {
    try {
      connection.close();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Logs connection changes quietly: one warning per outage, not per reconnect attempt. */
  private static final class ConnectionEvents implements ConnectionListener {
    private final AtomicBoolean disconnected = new AtomicBoolean();

    // jnats still declares only this overload abstract; its replacement is a default method.
    @SuppressWarnings("deprecation")
    @Override
    public void connectionEvent(Connection connection, Events event) {
      switch (event) {
        case DISCONNECTED -> {
          if (disconnected.compareAndSet(false, true)) {
            log.warn("Disconnected from NATS; reconnecting");
          } else {
            log.debug("Reconnect attempt to NATS failed");
          }
        }
        case RECONNECTED -> {
          disconnected.set(false);
          log.info("Reconnected to NATS [{}]", connection.getConnectedUrl());
        }
        case CLOSED -> log.debug("NATS connection closed");
        default -> log.debug("NATS connection event {}", event);
      }
    }
  }

  /** Routes jnats' reports to SLF4J quietly instead of its default console logger. */
  private static final class QuietErrorListener implements ErrorListener {
    @Override
    public void errorOccurred(Connection conn, String error) {
      log.warn("NATS server reported an error: {}", error);
    }

    @Override
    public void exceptionOccurred(Connection conn, Exception exp) {
      log.debug("NATS connection exception", exp);
    }

    @Override
    public void slowConsumerDetected(Connection conn, Consumer consumer) {
      log.warn("NATS slow consumer detected; a replay will fail and report it");
    }
  }
}
