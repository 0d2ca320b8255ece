package io.eventsourced.nats;

import io.eventsourced.PersistenceId;
import java.io.ByteArrayOutputStream;

/**
 * Reversible encoding of type names and entity ids into NATS subject tokens and KV keys.
 *
 * <p>ASCII letters, digits, {@code -} and {@code _} stay as they are (so UUIDs and most type
 * names stay readable); every other character is written as its UTF-8 bytes, each as {@code =}
 * plus two upper-case hex digits. A lone surrogate, which UTF-8 cannot encode (Java's encoder
 * would write {@code ?}, so that {@code "\uD800"} and {@code "?"} would share a token), is
 * written as the three bytes UTF-8's pattern gives its code unit (as in WTF-8), which no valid
 * text produces. The result only uses characters that are valid in subject tokens and KV keys,
 * never {@code .}, {@code *}, {@code >} or white space, so no id can escape its token or act as
 * a wildcard, and distinct strings encode to distinct tokens.
 */
final class Keys {
  private static final char ESCAPE = '=';
  private static final char[] HEX = "0123456789ABCDEF".toCharArray();

  private Keys() {}

  /**
   * Encodes one token.
   *
   * @param value any non-empty string
   * @return the token
   */
  static String encode(String value) {
    int n = value.length();
    boolean plain = true;
    for (int i = 0; i < n && plain; i++) {
      plain = isPlain(value.charAt(i));
    }
    if (plain) {
      return value;
    }
    StringBuilder out = new StringBuilder(n + 16);
    for (int i = 0; i < n; i++) {
      char c = value.charAt(i);
      if (isPlain(c)) {
        out.append(c);
      } else {
        int cp = value.codePointAt(i);
        if (Character.isSupplementaryCodePoint(cp)) {
          i++;
        }
        if (cp < 0x80) {
          escape(out, cp);
        } else if (cp < 0x800) {
          escape(out, 0xC0 | cp >> 6);
          escape(out, 0x80 | cp & 0x3F);
        } else if (cp < 0x10000) { // including a lone surrogate
          escape(out, 0xE0 | cp >> 12);
          escape(out, 0x80 | cp >> 6 & 0x3F);
          escape(out, 0x80 | cp & 0x3F);
        } else {
          escape(out, 0xF0 | cp >> 18);
          escape(out, 0x80 | cp >> 12 & 0x3F);
          escape(out, 0x80 | cp >> 6 & 0x3F);
          escape(out, 0x80 | cp & 0x3F);
        }
      }
    }
    return out.toString();
  }

  private static void escape(StringBuilder out, int b) {
    out.append(ESCAPE).append(HEX[b >> 4 & 0xF]).append(HEX[b & 0xF]);
  }

  /**
   * Decodes a token made by {@link #encode(String)}.
   *
   * @param token the token
   * @return the original string
   * @throws IllegalArgumentException if the token was not made by {@link #encode(String)}
   */
  static String decode(String token) {
    if (token.indexOf(ESCAPE) < 0) {
      return token;
    }
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(token.length());
    for (int i = 0; i < token.length(); i++) {
      char c = token.charAt(i);
      if (c == ESCAPE) {
        if (i + 2 >= token.length()) {
          throw new IllegalArgumentException("truncated escape in [" + token + "]");
        }
        int hi = Character.digit(token.charAt(i + 1), 16);
        int lo = Character.digit(token.charAt(i + 2), 16);
        if (hi < 0 || lo < 0) {
          throw new IllegalArgumentException("bad escape in [" + token + "]");
        }
        bytes.write(hi << 4 | lo);
        i += 2;
      } else {
        bytes.write(c);
      }
    }
    return utf8(bytes.toByteArray(), token);
  }

  /** UTF-8 that also decodes the lone surrogates {@link #encode} writes. */
  private static String utf8(byte[] bytes, String token) {
    StringBuilder out = new StringBuilder(bytes.length);
    for (int i = 0; i < bytes.length; ) {
      int lead = bytes[i] & 0xFF;
      int n = lead < 0x80 ? 1 : lead < 0xC0 ? 0 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 0;
      if (n == 0 || i + n > bytes.length) {
        throw new IllegalArgumentException("bad UTF-8 in [" + token + "]");
      }
      int cp = n == 1 ? lead : lead & (0x7F >> n);
      for (int k = 1; k < n; k++) {
        int next = bytes[i + k] & 0xFF;
        if ((next & 0xC0) != 0x80) {
          throw new IllegalArgumentException("bad UTF-8 in [" + token + "]");
        }
        cp = cp << 6 | next & 0x3F;
      }
      out.appendCodePoint(cp);
      i += n;
    }
    return out.toString();
  }

  /**
   * The subject tail {@code <type>.<id>} of an entity, without the prefix.
   *
   * @param id the entity
   * @return the encoded type and id joined by a dot
   */
  static String entityKey(PersistenceId id) {
    return encode(id.typeName()) + "." + encode(id.entityId());
  }

  private static boolean isPlain(char c) {
    return (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9')
        || c == '-'
        || c == '_';
  }
}
