//! The comments of C and C++ source, found lexically: `// ...` (continued by a
//! backslash at the end of a line, as the preprocessor does) and `/* ... */`, outside
//! string and character literals (C++ raw strings and `L`, `u`, `U`, `u8` prefixes
//! included).
//!
//! Lexical, not from the parse tree, so that what counts as a comment does not depend
//! on how well tree-sitter recovered from the file's macros: suppressions and
//! fingerprints read comments the same way in a file that parses and one that does not.
//!
//! Lines end at LF: a lone CR, which ends a line for a compiler, is made an LF before
//! anything is read ([`lf_line_ends`]). Trigraphs are the one lexical rule that compilers
//! apply by mode (ISO C before C23 and C++ before C++17 replace them, GNU modes do not),
//! so a text holding one has two readings: [`trigraph_lines`] finds them.

use std::borrow::Cow;
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
    lex(source).comments
}

/// What [`lex`] finds, each in source order.
struct Lexed {
    comments: Vec<Comment>,
    /// String and character literals, quotes included.
    literals: Vec<Range<usize>>,
    /// Offsets of the `'`s that are digit separators.
    separators: Vec<usize>,
}

/// `source` as the grammars are to read it, so that they agree with this module and
/// with a compiler on what is code: inside string and character literals each `/`
/// becomes `.` (tree-sitter lexes `'/*'` as a quote, a comment to the next `*/` and a
/// quote), and each digit separator becomes `0` (the C grammar knows none, and reads
/// `1'000` as the start of a character literal). Same length, same lines, same
/// structure.
pub(super) fn grammar_text(source: &str) -> Cow<'_, str> {
    let lexed = lex(source);
    let mut changes: Vec<(usize, u8)> = lexed.separators.iter().map(|&at| (at, b'0')).collect();
    let bytes = source.as_bytes();
    for literal in &lexed.literals {
        changes.extend(
            literal
                .clone()
                .filter(|&at| bytes[at] == b'/')
                .map(|at| (at, b'.')),
        );
    }
    if changes.is_empty() {
        return Cow::Borrowed(source);
    }
    let mut text = bytes.to_vec();
    for (at, byte) in changes {
        text[at] = byte;
    }
    // ASCII bytes for ASCII bytes keep the text UTF-8.
    Cow::Owned(String::from_utf8(text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The comments, literals and digit separators of `source`.
fn lex(source: &str) -> Lexed {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut literals = Vec::new();
    let mut separators = Vec::new();
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
            // A digit separator (C++14 and C23 `1'000'000`) is no character literal;
            // an encoding prefix (`L'/*'`) is no number.
            b'\'' if in_number(bytes, i) => {
                separators.push(i);
                i += 1;
            }
            b'\'' => {
                let start = i;
                i = quoted_end(bytes, i, b'\'');
                literals.push(start..i);
            }
            _ => i += 1,
        }
    }
    Lexed {
        comments: found,
        literals,
        separators,
    }
}

/// True when the `'` at `at` continues a preprocessing number (`1'000`, `0x1'F`), as a
/// digit separator: the run of identifier characters and dots before it starts with a
/// digit, or with a dot and a digit.
fn in_number(bytes: &[u8], at: usize) -> bool {
    let mut start = at;
    while start > 0
        && (bytes[start - 1].is_ascii_alphanumeric()
            || matches!(bytes[start - 1], b'_' | b'.' | b'\''))
    {
        start -= 1;
    }
    match bytes[start..at] {
        [first, ..] if first.is_ascii_digit() => true,
        [b'.', second, ..] => second.is_ascii_digit(),
        _ => false,
    }
}

/// `text` with each lone CR (one not followed by LF) made an LF: the same length and
/// offsets, and the same lines as a compiler, an editor, SARIF and LSP count, where
/// tree-sitter's grammars and this module end lines at LF only. Without it a `//`
/// comment ended by a lone CR would hide the code after it on the same LF-line.
pub fn lf_line_ends(text: &str) -> Cow<'_, str> {
    match lf_line_end_bytes(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // An ASCII byte for an ASCII byte keeps the text UTF-8.
        Cow::Owned(bytes) => Cow::Owned(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    }
}

/// [`lf_line_ends`] for bytes.
pub fn lf_line_end_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let lone = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(lone) {
        return Cow::Borrowed(bytes);
    }
    Cow::Owned(
        (0..bytes.len())
            .map(|i| if lone(i) { b'\n' } else { bytes[i] })
            .collect(),
    )
}

/// The 0-based lines of `text` that hold a trigraph (`??` then one of `=/'()!<>-`),
/// anywhere: in code, a literal or a comment each has two readings (`??/` at a line's
/// end continues a `//` comment, inside a literal it escapes the quote).
pub fn trigraph_lines(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut line = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            b'?' if bytes.get(i + 1) == Some(&b'?')
                && bytes.get(i + 2).is_some_and(|b| b"=/'()!<>-".contains(b)) =>
            {
                if lines.last() != Some(&line) {
                    lines.push(line);
                }
            }
            _ => {}
        }
        i += 1;
    }
    lines
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
    let Lexed {
        comments, literals, ..
    } = lex(source);
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
    fn encoding_prefixes_open_character_literals() {
        // `L'/*'` is a literal, as a compiler reads it: no comment runs to `L'*/'`.
        let source = "wchar_t a = L'/*'; int hidden; wchar_t b = L'*/'; // c";
        assert_eq!(texts(source), ["// c"]);
        for prefix in ["u", "U", "u8"] {
            let source = format!("x = {prefix}'/*'; y; z = {prefix}'*/';");
            assert!(texts(&source).is_empty(), "{source}");
        }
        // Digit separators stay separators, however the number starts.
        assert_eq!(
            texts("int a = 1'000; /* c */ int b = 0x1'F; float f = .5'0;"),
            ["/* c */"]
        );
    }

    #[test]
    fn lone_carriage_returns_end_lines() {
        assert_eq!(lf_line_ends("a // b\rc\r\nd\r"), "a // b\nc\r\nd\n");
        assert!(matches!(lf_line_ends("a\r\nb\n"), Cow::Borrowed(_)));
        let text = lf_line_ends("int a; // note\rint b;");
        assert_eq!(texts(&text), ["// note"]);
        assert_eq!(&*lf_line_end_bytes(b"\xff\r"), b"\xff\n");
    }

    #[test]
    fn trigraphs_are_found_wherever_they_are() {
        let text = "a ??= b\n// x ??/\nplain ?? ?\n\"??/\" ??<\n";
        assert_eq!(trigraph_lines(text), [0, 1, 3]);
        assert!(trigraph_lines("a ?? b ?? c").is_empty());
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
