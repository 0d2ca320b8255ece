package io.eventsourced.postgres;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Encodes journal rows in PostgreSQL's binary COPY format (signature, flags, header extension,
 * then per row the field count and length-prefixed fields, then the trailer), for the columns of
 * {@link Sql#copyIn}: type_name, entity_id, sequence_nr, serializer_id, manifest, payload.
 *
 * <p>It writes into one growing array rather than a {@code ByteArrayOutputStream}, whose methods
 * take a lock per call (four per integer), and it writes ASCII text straight into that array
 * instead of encoding each string to a new array first: the writer encodes every batch on its
 * way to the server, so this is on the path of every append.
 */
final class CopyEncoder {
  private static final byte[] SIGNATURE = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', (byte) 0xff, '\r', '\n', 0};
  private static final int FIELDS = 6;

  private byte[] buf;
  private int size;

  /** An encoder whose buffer starts with room for about {@code capacity} bytes. */
  CopyEncoder(int capacity) {
    buf = new byte[Math.max(64, capacity)];
    bytes(SIGNATURE);
    int32(0); // flags: no OIDs
    int32(0); // header extension length
  }

  /** The encoded size of a row with these field lengths, if its text is ASCII. */
  static int rowSize(int typeChars, int idChars, int manifestChars, int payloadBytes) {
    return 2 + 6 * 4 + typeChars + idChars + 8 + 4 + manifestChars + payloadBytes;
  }

  /** Header and trailer size. */
  static int frameSize() {
    return SIGNATURE.length + 8 + 2;
  }

  void row(String type, String id, long sequenceNr, int serializerId, String manifest, byte[] payload) {
    int16(FIELDS);
    text(type);
    text(id);
    int32(8);
    int64(sequenceNr);
    int32(4);
    int32(serializerId);
    text(manifest);
    field(payload);
  }

  /** Appends the trailer; the encoded data is then the first {@link #length()} bytes of {@link #buffer()}. */
  void finish() {
    int16(-1);
  }

  byte[] buffer() {
    return buf;
  }

  int length() {
    return size;
  }

  /**
   * Whether PostgreSQL can store the text unchanged: it holds no NUL character and no lone
   * surrogate (which Java's UTF-8 encoder would silently replace by {@code ?}).
   */
  static boolean storable(String s) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == 0) {
        return false;
      }
      if (Character.isHighSurrogate(c)) {
        if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
          return false;
        }
        i++;
      } else if (Character.isLowSurrogate(c)) {
        return false;
      }
    }
    return true;
  }

  /**
   * Why an entity id or type name cannot be stored, or null if it can: PostgreSQL text holds no
   * NUL character, and pgjdbc would silently turn a lone surrogate into {@code ?}, which would
   * file the events under another entity.
   */
  static String unstorable(io.eventsourced.PersistenceId id) {
    if (!storable(id.typeName())) {
      return "its type name contains a NUL character or a lone surrogate, which PostgreSQL text cannot hold";
    }
    if (!storable(id.entityId())) {
      return "its id contains a NUL character or a lone surrogate, which PostgreSQL text cannot hold";
    }
    return null;
  }

  /** A text field in UTF-8; checked by {@link #storable} when its write was appended. */
  private void text(String s) {
    int n = s.length();
    ensure(4 + n);
    int start = size;
    size += 4;
    for (int i = 0; i < n; i++) {
      char c = s.charAt(i);
      if (c >= 0x80) {
        size = start;
        field(s.getBytes(StandardCharsets.UTF_8));
        return;
      }
      buf[size++] = (byte) c;
    }
    putInt(start, n);
  }

  private void field(byte[] value) {
    int32(value.length);
    bytes(value);
  }

  private void bytes(byte[] value) {
    ensure(value.length);
    System.arraycopy(value, 0, buf, size, value.length);
    size += value.length;
  }

  private void int16(int v) {
    ensure(2);
    buf[size++] = (byte) (v >>> 8);
    buf[size++] = (byte) v;
  }

  private void int32(int v) {
    ensure(4);
    putInt(size, v);
    size += 4;
  }

  private void int64(long v) {
    int32((int) (v >>> 32));
    int32((int) v);
  }

  private void putInt(int at, int v) {
    buf[at] = (byte) (v >>> 24);
    buf[at + 1] = (byte) (v >>> 16);
    buf[at + 2] = (byte) (v >>> 8);
    buf[at + 3] = (byte) v;
  }

  private void ensure(int more) {
    if (buf.length - size < more) {
      buf = Arrays.copyOf(buf, Math.max(buf.length * 2, size + more));
    }
  }
}
