//! Names from a scanned tree, made safe to print and to put in a SARIF log.
//!
//! File and function names come from whoever wrote the tree. Printed raw, an ESC
//! sequence or a newline in a file name could forge report lines or drive the
//! terminal; written raw into a URI, `#`, `?` or `%` would name another file.
//!
//! ```
//! use insecure_code_detector::report::{printable, sarif_uri};
//!
//! assert_eq!(printable("a\u{1b}[2Jb.c"), "a\\u{1b}[2Jb.c");
//! assert_eq!(sarif_uri("src/a b#1.c"), "src/a%20b%231.c");
//! assert_eq!(sarif_uri("/abs/x.c"), "file:///abs/x.c");
//! ```

use std::borrow::Cow;
use std::path::Path;

use crate::files::{path_bytes, path_text};

/// Bytes of a path segment written as they are in a URI: RFC 3986's unreserved
/// characters and the sub-delimiters and `@` that a segment may hold. `:` is encoded
/// too, since a relative reference's first segment may not hold one; everything else
/// (`%`, `#`, `?`, space, `\`, control and non-ASCII bytes) is percent-encoded.
const URI_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

/// The URI of a scanned file as SARIF writes it (RFC 3986): a relative path as a
/// relative reference, an absolute one as a `file://` URI (RFC 8089), each segment
/// percent-encoded. A backslash is a character of a Linux file name, not a separator,
/// so it is encoded rather than turned into `/`.
///
/// `file` is a name as [`path_text`] writes it: bytes that are not UTF-8 are encoded
/// as themselves (`\xff` as `%FF`).
pub fn sarif_uri(file: &str) -> String {
    let bytes = path_bytes(file);
    let relative = bytes.strip_prefix(b"./").unwrap_or(&bytes);
    let segments: Vec<String> = relative
        .split(|&b| b == b'/')
        .map(|segment| percent_encoding::percent_encode(segment, URI_SEGMENT).to_string())
        .collect();
    let joined = segments.join("/");
    if relative.starts_with(b"/") {
        format!("file://{joined}")
    } else {
        joined
    }
}

/// [`printable`] for the name of `path` ([`path_text`]).
pub fn printable_path(path: &Path) -> Cow<'static, str> {
    Cow::Owned(printable(&path_text(path)).into_owned())
}

/// True for characters a terminal must not receive raw from a name: control
/// characters (ESC, BEL, CR, LF, ...) and the bidirectional-text controls that can
/// make a line read otherwise than its bytes ("Trojan Source"). [`printable`] escapes
/// them.
pub fn unsafe_to_print(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text for a terminal or a log: control and bidirectional-control characters
/// escaped as `\u{1b}`, so that a file or function name cannot forge report lines,
/// move the cursor or reorder what is shown.
///
/// A backslash is written `\\`, so that the text reads back one way only: a name
/// holding the characters `\u{1b}` prints as `\\u{1b}`, never as an escaped ESC. The
/// one exception is a backslash before `x` and two lowercase hex digits, which stays:
/// that is how [`path_text`] writes a byte that is not UTF-8 (`\xff`), and a name
/// holding those characters has its backslash doubled by `path_text` first (`\\\xff`),
/// so names print one way each; other text holding `\xff` prints as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || unsafe_to_print(c)) {
        return text.into();
    }
    let byte_escape = |at: usize| crate::files::escaped_byte(text.as_bytes(), at).is_some();
    let mut out = String::with_capacity(text.len() + 8);
    for (at, c) in text.char_indices() {
        match c {
            '\\' if byte_escape(at) => out.push(c),
            '\\' => out.push_str("\\\\"),
            c if unsafe_to_print(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_print_on_one_line_with_their_controls_escaped() {
        assert_eq!(printable("plain/ok.c"), "plain/ok.c");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(printable("a\nb\r\tc"), "a\\u{a}b\\u{d}\\u{9}c");
        assert_eq!(printable("x\u{202e}c.exe"), "x\\u{202e}c.exe");
        assert_eq!(printable("caf\u{e9}"), "caf\u{e9}");
        // One reading only: a real ESC and the text of an escaped one differ.
        assert_eq!(printable("a\\u{1b}b"), "a\\\\u{1b}b");
        assert_ne!(printable("a\\u{1b}b"), printable("a\u{1b}b"));
    }

    #[test]
    #[cfg(unix)]
    fn names_that_are_not_utf8_print_apart_and_encode_their_bytes() {
        use crate::files::path_from_bytes;
        let names: [&[u8]; 5] = [b"a\xff.c", b"a\xfe.c", b"a\\xff.c", b"a\\\\xff.c", b"a\\b.c"];
        let shown: Vec<String> = names
            .iter()
            .map(|n| printable_path(&path_from_bytes(n)).into_owned())
            .collect();
        assert_eq!(shown, ["a\\xff.c", "a\\xfe.c", "a\\\\\\xff.c", "a\\\\\\\\\\\\\\xff.c", "a\\\\b.c"]);
        let uris: Vec<String> = names
            .iter()
            .map(|n| sarif_uri(&path_text(&path_from_bytes(n))))
            .collect();
        assert_eq!(uris, ["a%FF.c", "a%FE.c", "a%5Cxff.c", "a%5C%5Cxff.c", "a%5Cb.c"]);
    }

    #[test]
    fn uris_encode_every_reserved_byte_of_a_segment() {
        assert_eq!(sarif_uri("./src/a.c"), "src/a.c");
        assert_eq!(
            sarif_uri("a b%#?\\[x]:y.c"),
            "a%20b%25%23%3F%5C%5Bx%5D%3Ay.c"
        );
        assert_eq!(sarif_uri("d\u{e9}j\u{e0}/f.c"), "d%C3%A9j%C3%A0/f.c");
        assert_eq!(sarif_uri("/tmp/x y/z.c"), "file:///tmp/x%20y/z.c");
        assert_eq!(
            sarif_uri("keep-._~!$&'()*+,;=@.c"),
            "keep-._~!$&'()*+,;=@.c"
        );
    }
}
