package io.eventsourced.postgres;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Encodes journal rows in PostgreSQL's binary COPY format (signature, flags, header extension,
 * then per row the field count and length-prefixed fields, then the trailer), for the columns of
 * {@link Sql#copyIn}: type_name, entity_id, sequence_nr, serializer_id, manifest, payload.
 */
final class CopyEncoder {
  private static final byte[] SIGNATURE = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', (byte) 0xff, '\r', '\n', 0};
  private static final int FIELDS = 6;

  private final ByteArrayOutputStream out = new ByteArrayOutputStream(4096);

  CopyEncoder() {
    out.writeBytes(SIGNATURE);
    int32(0); // flags: no OIDs
    int32(0); // header extension length
  }

  void row(byte[] type, byte[] id, long sequenceNr, int serializerId, byte[] manifest, byte[] payload) {
    int16(FIELDS);
    field(type);
    field(id);
    int32(8);
    int64(sequenceNr);
    int32(4);
    int32(serializerId);
    field(manifest);
    field(payload);
  }

  byte[] finish() {
    int16(-1);
    return out.toByteArray();
  }

  /**
   * The UTF-8 bytes of a text value, or null if PostgreSQL cannot store it as text unchanged: it
   * holds a NUL character, or a lone surrogate (which Java would silently replace by {@code ?}).
   */
  static byte[] text(String s) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == 0) {
        return null;
      }
      if (Character.isHighSurrogate(c)) {
        if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
          return null;
        }
        i++;
      } else if (Character.isLowSurrogate(c)) {
        return null;
      }
    }
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /**
   * Why an entity id or type name cannot be stored, or null if it can: PostgreSQL text holds no
   * NUL character, and pgjdbc would silently turn a lone surrogate into {@code ?}, which would
   * file the events under another entity.
   */
  static String unstorable(io.eventsourced.PersistenceId id) {
    if (text(id.typeName()) == null) {
      return "its type name contains a NUL character or a lone surrogate, which PostgreSQL text cannot hold";
    }
    if (text(id.entityId()) == null) {
      return "its id contains a NUL character or a lone surrogate, which PostgreSQL text cannot hold";
    }
    return null;
  }

  private void field(byte[] value) {
    int32(value.length);
    out.writeBytes(value);
  }

  private void int16(int v) {
    out.write(v >>> 8);
    out.write(v);
  }

  private void int32(int v) {
    out.write(v >>> 24);
    out.write(v >>> 16);
    out.write(v >>> 8);
    out.write(v);
  }

  private void int64(long v) {
    int32((int) (v >>> 32));
    int32((int) v);
  }
}
