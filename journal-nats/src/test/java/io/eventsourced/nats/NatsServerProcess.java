package io.eventsourced.nats;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * A nats-server that a test starts, kills and restarts itself: the binary from PATH or the system
 * sbin directories, a random free port on 127.0.0.1 and a temporary store directory that survives
 * restarts. Closing kills it and deletes the store.
 */
final class NatsServerProcess implements AutoCloseable {
  private final Path binary;
  private final Path storeDir;
  private final int port;
  private final List<String> extraArgs;
  private Process process;

  private NatsServerProcess(Path binary, List<String> extraArgs) throws IOException {
    this.binary = binary;
    this.extraArgs = List.copyOf(extraArgs);
    this.storeDir = Files.createTempDirectory("nats-store");
    try (ServerSocket socket = new ServerSocket(0)) {
      this.port = socket.getLocalPort();
    }
  }

  /**
   * Starts a server, or skips the test (fails it when CI=true) if there is no binary.
   *
   * @param extraArgs further nats-server arguments, e.g. for authentication
   * @return the running server
   * @throws Exception if it does not start
   */
  static NatsServerProcess start(String... extraArgs) throws Exception {
    Optional<Path> binary = findBinary();
    if (binary.isEmpty()) {
      String message =
          "no nats-server binary on PATH or in /usr/sbin, /usr/local/sbin, /usr/local/bin; install"
              + " nats-server (Debian: apt-get install nats-server) to run the fault tests";
      if ("true".equalsIgnoreCase(System.getenv("CI"))) {
        fail(message + " (required because CI=true)");
      }
      Assumptions.abort(message);
    }
    NatsServerProcess server = new NatsServerProcess(binary.get(), List.of(extraArgs));
    server.startProcess();
    return server;
  }

  static Optional<Path> findBinary() {
    List<String> dirs = new ArrayList<>();
    String path = System.getenv("PATH");
    if (path != null) {
      dirs.addAll(List.of(path.split(File.pathSeparator)));
    }
    dirs.addAll(List.of("/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"));
    return dirs.stream()
        .filter(d -> !d.isEmpty())
        .map(d -> Path.of(d, "nats-server"))
        .filter(Files::isExecutable)
        .findFirst();
  }

  String url() {
    return "nats://127.0.0.1:" + port;
  }

  long pid() {
    return process.pid();
  }

  /** Starts the process on the same port and store and waits until it accepts connections. */
  void startProcess() throws Exception {
    List<String> command = new ArrayList<>(
        List.of(binary.toString(), "-a", "127.0.0.1", "-p", Integer.toString(port), "-js", "-sd", storeDir.toString()));
    command.addAll(extraArgs);
    process =
        new ProcessBuilder(command)
            .redirectErrorStream(true)
            .redirectOutput(storeDir.resolve("server.log").toFile())
            .start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (!TestNats.reachable("127.0.0.1", port)) {
      if (!process.isAlive()) {
        throw new IllegalStateException("nats-server exited: " + Files.readString(storeDir.resolve("server.log")));
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("nats-server did not start on port " + port);
      }
      Thread.sleep(20);
    }
  }

  /** Kills the process at once (SIGKILL), as a crash would. */
  void kill() throws InterruptedException {
    process.destroyForcibly();
    process.waitFor(10, TimeUnit.SECONDS);
  }

  /**
   * Sends a signal to the process, e.g. STOP to freeze it (connections stay open, nothing is
   * answered) and CONT to resume it. After STOP it returns only once every thread of the server
   * has stopped: the kernel stops a process's threads one by one, and a thread that has not yet
   * stopped can still answer a request sent right after {@code kill} returned.
   */
  void signal(String signal) throws IOException, InterruptedException {
    Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(process.pid())).start();
    if (!kill.waitFor(5, TimeUnit.SECONDS) || kill.exitValue() != 0) {
      throw new IllegalStateException("kill -" + signal + " " + process.pid() + " failed");
    }
    if (signal.equals("STOP")) {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (!allThreadsStopped()) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("nats-server " + process.pid() + " did not stop within 5 s of SIGSTOP");
        }
        Thread.sleep(1);
      }
    }
  }

  private boolean allThreadsStopped() throws IOException {
    try (Stream<Path> tasks = Files.list(Path.of("/proc", Long.toString(process.pid()), "task"))) {
      for (Path task : tasks.toList()) {
        String stat;
        try {
          stat = Files.readString(task.resolve("stat"));
        } catch (IOException gone) {
          continue; // the thread ended meanwhile
        }
        // The state follows the command name in parentheses, which may itself hold spaces.
        char state = stat.charAt(stat.lastIndexOf(')') + 2);
        if (state != 'T' && state != 't') {
          return false;
        }
      }
      return true;
    }
  }

  @Override
  public void close() throws IOException {
    if (process != null && process.isAlive()) {
      try {
        signal("CONT");
        kill();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        process.destroyForcibly();
      }
    }
    try (Stream<Path> files = Files.walk(storeDir)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }
}
