//! The comments of C and C++ source, found lexically: `// ...` (continued by a
//! backslash at the end of a line, as the preprocessor does) and `/* ... */`, outside
//! string and character literals (C++ raw strings included).
//!
//! Lexical, not from the parse tree, so that what counts as a comment does not depend
//! on how well tree-sitter recovered from the file's macros: suppressions and
//! fingerprints read comments the same way in a file that parses and one that does not.

use std::ops::Range;

/// One comment: its bytes in the source, markers included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// Byte range in the source, from `//` or `/*` to the end of the line or `*/`.
    pub bytes: Range<usize>,
}

/// Every comment of `source`, in source order. An unterminated `/*` runs to the end
/// of the source, as it does for a compiler.
pub fn comments(source: &str) -> Vec<Comment> {
    lex(source).0
}

/// The comments of `source` and the byte ranges of its string and character literals,
/// each in source order.
fn lex(source: &str) -> (Vec<Comment>, Vec<Range<usize>>) {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let start = i;
                i += 2;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\n' if !continued(bytes, i) => break,
                        _ => i += 1,
                    }
                }
                found.push(Comment { bytes: start..i });
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start = i;
                i = match source[i + 2..].find("*/") {
                    Some(at) => i + 2 + at + 2,
                    None => bytes.len(),
                };
                found.push(Comment { bytes: start..i });
            }
            b'"' => {
                let start = i;
                i = raw_string_end(bytes, i).unwrap_or_else(|| quoted_end(bytes, i, b'"'));
                literals.push(start..i);
            }
            // A digit separator (C++14 `1'000'000`) is no character literal.
            b'\'' if !(i > 0 && bytes[i - 1].is_ascii_alphanumeric()) => {
                let start = i;
                i = quoted_end(bytes, i, b'\'');
                literals.push(start..i);
            }
            _ => i += 1,
        }
    }
    (found, literals)
}

/// True when the newline at `at` is escaped by a backslash (spaces between allowed,
/// as GCC does, and a CR before the newline).
fn continued(bytes: &[u8], at: usize) -> bool {
    let mut j = at;
    while j > 0 && matches!(bytes[j - 1], b' ' | b'\t' | b'\r') {
        j -= 1;
    }
    j > 0 && bytes[j - 1] == b'\\'
}

/// Just past the closing `quote` of the literal opening at `open`, honouring backslash
/// escapes; a literal is also ended by an unescaped newline (an unterminated literal
/// does not swallow the file).
fn quoted_end(bytes: &[u8], open: usize, quote: u8) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' => return i,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// For a `"` opening a C++ raw string (`R"delim(...)delim"`, with an optional `u8`,
/// `u`, `U` or `L` before the `R`), just past its end.
fn raw_string_end(bytes: &[u8], quote: usize) -> Option<usize> {
    if quote == 0 || bytes[quote - 1] != b'R' {
        return None;
    }
    // `R` must start the literal's prefix, not end an identifier such as `FOR"`.
    let mut p = quote - 1;
    while p > 0 && bytes[p - 1].is_ascii_alphanumeric() {
        p -= 1;
    }
    if !matches!(&bytes[p..quote - 1], b"" | b"u8" | b"u" | b"U" | b"L")
        || (p > 0 && bytes[p - 1] == b'_')
    {
        return None;
    }
    // The delimiter: at most 16 characters, then `(`.
    let open = quote
        + 1
        + bytes[quote + 1..]
            .iter()
            .take(17)
            .position(|&b| b == b'(')?;
    let delimiter = &bytes[quote + 1..open];
    if delimiter
        .iter()
        .any(|b| b.is_ascii_whitespace() || matches!(b, b'\\' | b')'))
    {
        return None;
    }
    let mut close = Vec::with_capacity(delimiter.len() + 2);
    close.push(b')');
    close.extend_from_slice(delimiter);
    close.push(b'"');
    let body = &bytes[open + 1..];
    Some(
        body.windows(close.len())
            .position(|w| w == close.as_slice())
            .map_or(bytes.len(), |at| open + 1 + at + close.len()),
    )
}

/// `source` with its comments removed and every run of whitespace outside string and
/// character literals (a removed comment counts as one) collapsed to one space,
/// trimmed: the text of code as the compiler reads it, whatever its layout. Literals
/// are kept byte for byte, as their whitespace is part of the program.
pub fn normalized(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut pending_space = false;
    // `verbatim`: a literal, whose whitespace is kept.
    let mut push = |text: &str, verbatim: bool, out: &mut String| {
        for c in text.chars() {
            if c.is_whitespace() && !verbatim {
                pending_space = true;
            } else {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                out.push(c);
            }
        }
    };
    let (comments, literals) = lex(source);
    // Comments and literals never overlap: one merged pass in source order.
    let mut spans: Vec<(Range<usize>, bool)> = comments
        .into_iter()
        .map(|c| (c.bytes, false))
        .chain(literals.into_iter().map(|l| (l, true)))
        .collect();
    spans.sort_by_key(|(range, _)| range.start);
    let mut at = 0;
    for (range, literal) in spans {
        push(&source[at..range.start], false, &mut out);
        match literal {
            true => push(&source[range.clone()], true, &mut out),
            false => push(" ", false, &mut out),
        }
        at = range.end;
    }
    push(&source[at..], false, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(source: &str) -> Vec<&str> {
        comments(source)
            .into_iter()
            .map(|c| &source[c.bytes])
            .collect()
    }

    #[test]
    fn finds_line_and_block_comments_outside_literals() {
        let source = "int a; // one\nchar *s = \"// not\\\" /* not */\"; /* two\n */ char c = '\"'; // three \\\n  still three\nint x = 1'000; // four\n";
        assert_eq!(
            texts(source),
            [
                "// one",
                "/* two\n */",
                "// three \\\n  still three",
                "// four"
            ]
        );
    }

    #[test]
    fn raw_strings_and_unterminated_pieces() {
        let source = "auto s = R\"x(/* not */ )\" // not )x\"; // yes\nauto t = u8R\"(//no)\";";
        assert_eq!(texts(source), ["// yes"]);
        // An identifier ending in R is no raw-string prefix.
        assert_eq!(texts("FOR\"(\" // c"), ["// c"]);
        assert_eq!(texts("x /* open"), ["/* open"]);
        // An unterminated string ends at its line.
        assert_eq!(texts("char *s = \"abc\n// c"), ["// c"]);
    }

    #[test]
    fn normalized_text_ignores_layout_and_comments() {
        assert_eq!(
            normalized("int f(void)\n{\n    /* note */ return  1; // x\n}\n"),
            "int f(void) { return 1; }"
        );
        assert_eq!(normalized("a/**/b"), "a b");
        assert_eq!(
            normalized("int f(void) { return 1; }"),
            normalized("int f(void)\n{\treturn 1;\n}")
        );
        // Whitespace inside a literal is the program's: kept, so that shrinking a
        // string (and the buffer sized by it) changes the text.
        assert_ne!(
            normalized("char b[sizeof(\"ab    \")];"),
            normalized("char b[sizeof(\"ab \")];")
        );
        assert_eq!(
            normalized("f(  \"a  b\"  ,  ' ' );"),
            "f( \"a  b\" , ' ' );"
        );
    }
}
