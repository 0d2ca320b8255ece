package io.eventsourced.nats;

import io.eventsourced.PersistenceId;
import io.eventsourced.journal.PersistentRepr;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The binary body of a journal message (all events of one atomic write) and of a snapshot entry.
 *
 * <p>Events: version byte {@code 1}, event count (varint), then per event the serializer id (4
 * bytes, big endian), manifest length (varint), manifest (UTF-8), payload length (varint),
 * payload. The sequence numbers are not repeated per event: they are contiguous from the first,
 * which the {@code Es-Seq} header carries.
 *
 * <p>Snapshots: version byte {@code 1}, serializer id (4 bytes), manifest length (varint),
 * manifest, then the payload up to the end.
 */
final class Envelope {
  static final byte VERSION = 1;

  private Envelope() {}

  /**
   * Whether a manifest holds a lone surrogate, which UTF-8 cannot encode ({@code getBytes} would
   * store a {@code ?} instead, and the manifest would not read back as written).
   *
   * @param manifest the manifest
   * @return true if some surrogate is unpaired
   */
  static boolean hasLoneSurrogate(String manifest) {
    for (int i = 0; i < manifest.length(); i++) {
      char c = manifest.charAt(i);
      if (Character.isHighSurrogate(c) && i + 1 < manifest.length() && Character.isLowSurrogate(manifest.charAt(i + 1))) {
        i++;
      } else if (Character.isSurrogate(c)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Encodes the events of one write.
   *
   * @param events the events, contiguous
   * @return the body
   */
  static byte[] encodeEvents(List<PersistentRepr> events) {
    int size = 1 + varintSize(events.size());
    byte[][] manifests = new byte[events.size()][];
    for (int i = 0; i < events.size(); i++) {
      PersistentRepr e = events.get(i);
      manifests[i] = e.manifest().isEmpty() ? EMPTY : e.manifest().getBytes(StandardCharsets.UTF_8);
      size += 4 + varintSize(manifests[i].length) + manifests[i].length;
      size += varintSize(e.payload().length) + e.payload().length;
    }
    byte[] out = new byte[size];
    int pos = 0;
    out[pos++] = VERSION;
    pos = putVarint(out, pos, events.size());
    for (int i = 0; i < events.size(); i++) {
      PersistentRepr e = events.get(i);
      pos = putInt(out, pos, e.serializerId());
      pos = putVarint(out, pos, manifests[i].length);
      System.arraycopy(manifests[i], 0, out, pos, manifests[i].length);
      pos += manifests[i].length;
      pos = putVarint(out, pos, e.payload().length);
      System.arraycopy(e.payload(), 0, out, pos, e.payload().length);
      pos += e.payload().length;
    }
    return out;
  }

  private static final byte[] EMPTY = new byte[0];

  /** Receives decoded events. */
  interface EventSink {
    /**
     * Takes one event.
     *
     * @param event the event
     * @return false to stop decoding
     */
    boolean accept(PersistentRepr event);
  }

  /**
   * The number of events in a body, read from its head.
   *
   * @param body the body
   * @return the event count
   */
  static int eventCount(byte[] body) {
    checkVersion(body);
    return (int) readVarint(body, new int[] {1});
  }

  /**
   * Decodes the events of one message whose sequence numbers are within bounds.
   *
   * @param body the body
   * @param id the entity
   * @param firstSequenceNr the sequence number of the first event in the body
   * @param from lowest sequence number to deliver
   * @param to highest sequence number to deliver
   * @param sink receives the events in order; may stop the decoding
   * @return false if the sink stopped
   */
  static boolean decodeEvents(
      byte[] body, PersistenceId id, long firstSequenceNr, long from, long to, EventSink sink) {
    checkVersion(body);
    int[] pos = {1};
    int count = (int) readVarint(body, pos);
    for (int i = 0; i < count; i++) {
      long seq = firstSequenceNr + i;
      int serializerId = getInt(body, pos[0]);
      pos[0] += 4;
      int manifestLength = (int) readVarint(body, pos);
      int manifestAt = pos[0];
      pos[0] += manifestLength;
      int payloadLength = (int) readVarint(body, pos);
      int payloadAt = pos[0];
      pos[0] += payloadLength;
      if (pos[0] > body.length) {
        throw new IllegalArgumentException("event body is truncated");
      }
      if (seq < from) {
        continue;
      }
      if (seq > to) {
        return true;
      }
      String manifest =
          manifestLength == 0 ? "" : new String(body, manifestAt, manifestLength, StandardCharsets.UTF_8);
      byte[] payload = new byte[payloadLength];
      System.arraycopy(body, payloadAt, payload, 0, payloadLength);
      if (!sink.accept(new PersistentRepr(id, seq, serializerId, manifest, payload))) {
        return false;
      }
    }
    return true;
  }

  /**
   * Encodes a snapshot body.
   *
   * @param serializerId the serializer id
   * @param manifest the manifest
   * @param payload the serialized state
   * @return the body
   */
  static byte[] encodeSnapshot(int serializerId, String manifest, byte[] payload) {
    byte[] m = manifest.getBytes(StandardCharsets.UTF_8);
    byte[] out = new byte[1 + 4 + varintSize(m.length) + m.length + payload.length];
    int pos = 0;
    out[pos++] = VERSION;
    pos = putInt(out, pos, serializerId);
    pos = putVarint(out, pos, m.length);
    System.arraycopy(m, 0, out, pos, m.length);
    pos += m.length;
    System.arraycopy(payload, 0, out, pos, payload.length);
    return out;
  }

  /** A decoded snapshot body. */
  record SnapshotBody(int serializerId, String manifest, byte[] payload) {}

  /**
   * Decodes a snapshot body.
   *
   * @param body the body
   * @return its parts
   */
  static SnapshotBody decodeSnapshot(byte[] body) {
    checkVersion(body);
    int serializerId = getInt(body, 1);
    int[] pos = {5};
    int manifestLength = (int) readVarint(body, pos);
    if (pos[0] + manifestLength > body.length) {
      throw new IllegalArgumentException("snapshot body is truncated");
    }
    String manifest = new String(body, pos[0], manifestLength, StandardCharsets.UTF_8);
    int payloadAt = pos[0] + manifestLength;
    byte[] payload = new byte[body.length - payloadAt];
    System.arraycopy(body, payloadAt, payload, 0, payload.length);
    return new SnapshotBody(serializerId, manifest, payload);
  }

  private static void checkVersion(byte[] body) {
    if (body.length < 2 || body[0] != VERSION) {
      throw new IllegalArgumentException(
          "unknown body format " + (body.length == 0 ? "(empty)" : "version [" + body[0] + "]"));
    }
  }

  private static int varintSize(int value) {
    int size = 1;
    while ((value & ~0x7F) != 0) {
      value >>>= 7;
      size++;
    }
    return size;
  }

  private static int putVarint(byte[] out, int pos, int value) {
    while ((value & ~0x7F) != 0) {
      out[pos++] = (byte) ((value & 0x7F) | 0x80);
      value >>>= 7;
    }
    out[pos++] = (byte) value;
    return pos;
  }

  private static long readVarint(byte[] in, int[] pos) {
    long value = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      if (pos[0] >= in.length) {
        throw new IllegalArgumentException("body is truncated");
      }
      byte b = in[pos[0]++];
      value |= (long) (b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        return value;
      }
    }
    throw new IllegalArgumentException("malformed length in body");
  }

  private static int putInt(byte[] out, int pos, int value) {
    out[pos] = (byte) (value >>> 24);
    out[pos + 1] = (byte) (value >>> 16);
    out[pos + 2] = (byte) (value >>> 8);
    out[pos + 3] = (byte) value;
    return pos + 4;
  }

  private static int getInt(byte[] in, int pos) {
    if (pos + 4 > in.length) {
      throw new IllegalArgumentException("body is truncated");
    }
    return (in[pos] & 0xFF) << 24 | (in[pos + 1] & 0xFF) << 16 | (in[pos + 2] & 0xFF) << 8 | (in[pos + 3] & 0xFF);
  }
}
