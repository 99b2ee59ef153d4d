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
//! anything is read ([`lf_line_ends`]). Three lexical rules are applied by compilers by
//! mode, so a text using one has two readings ([`Dialect`]): trigraphs (replaced in ISO
//! C before C23 and C++ before C++17, not in GNU modes), and in C digit separators
//! (C23) and raw strings (a GNU extension).

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
    lex(source, Dialect::FIRST).comments
}

/// What [`lex`] finds, each in source order.
struct Lexed {
    comments: Vec<Comment>,
    /// String and character literals, quotes included.
    literals: Vec<Range<usize>>,
    /// Offsets of the `'`s that are digit separators.
    separators: Vec<usize>,
    /// Raw string literals (`R"x(...)x"`), also among `literals`.
    raw_strings: Vec<Range<usize>>,
}

/// Which of the lexical rules that compilers apply by mode a reading follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dialect {
    /// `1'000` is one number (C++14, C23), not a `1` and a character literal.
    pub(super) digit_separators: bool,
    /// `R"x(...)x"` is a raw string (C++11, GNU C), not `R` and a string.
    pub(super) raw_strings: bool,
}

impl Dialect {
    /// The reading of C++ and of GNU C with C23's separators: the one taken first.
    pub(super) const FIRST: Dialect = Dialect {
        digit_separators: true,
        raw_strings: true,
    };

    /// The other reading of C (ISO C11: neither rule); C++ has both in either.
    pub(super) fn other(language: super::Language) -> Dialect {
        match language {
            super::Language::C => Dialect {
                digit_separators: false,
                raw_strings: false,
            },
            super::Language::Cpp => Dialect::FIRST,
        }
    }
}

/// `source` as the grammars are to read it in `dialect`, so that they agree with this
/// module and with a compiler on what is code. Each comment becomes blanks, with a
/// backslash before each newline inside it (the compiler reads a comment as one space,
/// so a directive runs on past a comment's newline): tree-sitter would end a comment
/// elsewhere (at a `*` and `/` split by a line splice, or inside a literal: `'/*'`),
/// and it reads none inside a `#define`'s body. Inside string and character literals
/// each `/` becomes `.`, and a backslash that continues the literal with blanks or a
/// CR before the newline is moved to just before it. Each digit separator becomes `0`
/// (the C grammar knows none, and reads `1'000` as the start of a character literal).
/// Same length, same lines.
pub(super) fn grammar_text(source: &str, dialect: Dialect) -> Cow<'_, str> {
    let lexed = lex(source, dialect);
    let bytes = source.as_bytes();
    let mut edits = AsciiEdits::new(source);
    let mut set = |at: usize, byte: u8| edits.set(at, byte);
    for &at in &lexed.separators {
        set(at, b'0');
    }
    for comment in &lexed.comments {
        for at in comment.bytes.clone() {
            match bytes[at] {
                b'\n' => {
                    if at > comment.bytes.start {
                        set(at - 1, b'\\');
                    }
                }
                _ => set(at, b' '),
            }
        }
    }
    for literal in &lexed.literals {
        let mut at = literal.start;
        while at < literal.end {
            match bytes[at] {
                b'/' => set(at, b'.'),
                b'\\' => {
                    let newline = splice_end(bytes, at).map(|after| after - 1);
                    match newline {
                        Some(newline) if newline > at + 1 => {
                            for b in at..newline - 1 {
                                set(b, b' ');
                            }
                            set(newline - 1, b'\\');
                            at = newline;
                        }
                        // An escape: the next byte is not the literal's end.
                        _ => at += 1,
                    }
                }
                _ => {}
            }
            at += 1;
        }
    }
    edits.finish()
}

/// Edits of a text that each put an ASCII byte in place of an ASCII byte: the text is
/// copied at the first edit that changes it, and stays UTF-8.
struct AsciiEdits<'a> {
    source: &'a str,
    text: Option<Vec<u8>>,
}

impl<'a> AsciiEdits<'a> {
    fn new(source: &'a str) -> Self {
        AsciiEdits { source, text: None }
    }

    fn set(&mut self, at: usize, byte: u8) {
        if self.source.as_bytes()[at] != byte {
            let source = self.source;
            self.text.get_or_insert_with(|| source.as_bytes().to_vec())[at] = byte;
        }
    }

    fn finish(self) -> Cow<'a, str> {
        match self.text {
            None => Cow::Borrowed(self.source),
            // ASCII bytes for ASCII bytes keep the text UTF-8.
            Some(text) => Cow::Owned(
                String::from_utf8(text)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }
}

/// For a backslash at `at` that splices two lines (blanks or a CR allowed before the
/// newline, as GCC allows them), the offset just past the newline.
fn splice_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut j = at + 1;
    while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r') {
        j += 1;
    }
    (bytes.get(j) == Some(&b'\n')).then_some(j + 1)
}

/// The offset past any line splices starting at `at`: where the next character the
/// compiler reads is.
fn past_splices(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at) == Some(&b'\\') {
        match splice_end(bytes, at) {
            Some(next) => at = next,
            None => break,
        }
    }
    at
}

/// `source` with each trigraph replaced by two spaces and the character it stands for:
/// the text as ISO modes read it, at the same offsets.
pub(super) fn trigraphs_replaced(source: &str) -> Cow<'_, str> {
    let mut edits = AsciiEdits::new(source);
    for at in trigraph_offsets(source) {
        let meaning = match source.as_bytes()[at + 2] {
            b'=' => b'#',
            b'/' => b'\\',
            b'\'' => b'^',
            b'(' => b'[',
            b')' => b']',
            b'!' => b'|',
            b'<' => b'{',
            b'>' => b'}',
            _ => b'~',
        };
        edits.set(at, b' ');
        edits.set(at + 1, b' ');
        edits.set(at + 2, meaning);
    }
    edits.finish()
}

/// The 0-based lines of `source` whose reading depends on the compiler's mode: those
/// holding a trigraph (anywhere: `??/` ends a `//` comment's line or escapes a quote),
/// and in C those holding a digit separator or a raw string.
pub(super) fn lines_with_two_readings(source: &str, language: super::Language) -> Vec<usize> {
    // Byte spans whose lines have two readings.
    let mut spans: Vec<Range<usize>> = trigraph_offsets(source)
        .into_iter()
        .map(|at| at..at + 1)
        .collect();
    if language == super::Language::C {
        let lexed = lex(source, Dialect::FIRST);
        spans.extend(lexed.separators.into_iter().map(|at| at..at + 1));
        // Every line of a raw string: the other reading ends it elsewhere.
        spans.extend(lexed.raw_strings);
    }
    spans.sort_unstable_by_key(|span| span.start);
    let bytes = source.as_bytes();
    let mut lines: Vec<usize> = Vec::new();
    // The line of byte `at`, counted onwards from the last span's start.
    let (mut line, mut at) = (0, 0);
    for span in spans {
        let start = span.start.max(at);
        line += bytes[at..start].iter().filter(|&&b| b == b'\n').count();
        at = start;
        let last = line
            + bytes[start..span.end.max(start).min(bytes.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
        let first = lines.last().map_or(line, |&l| line.max(l + 1));
        lines.extend(first..=last);
    }
    lines
}

/// Offsets of the trigraphs of `text` (`??` then one of `=/'()!<>-`; none overlaps
/// another, since a trigraph's third byte is no `?`).
fn trigraph_offsets(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(2))
        .filter(|&i| {
            bytes[i] == b'?' && bytes[i + 1] == b'?' && b"=/'()!<>-".contains(&bytes[i + 2])
        })
        .collect()
}

/// The comments, literals and digit separators of `source`, read in `dialect`.
fn lex(source: &str, dialect: Dialect) -> Lexed {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut literals = Vec::new();
    let mut separators = Vec::new();
    let mut raw_strings = Vec::new();
    // The preprocessing token the cursor is in: a `'` inside a number, before an
    // identifier character, is a digit separator.
    let mut word = Word::None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // Line splices between the two characters still make a comment.
            b'/' if bytes.get(past_splices(bytes, i + 1)) == Some(&b'/') => {
                let start = i;
                i = past_splices(bytes, i + 1) + 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\n' if !continued(bytes, i) => break,
                        _ => i += 1,
                    }
                }
                found.push(Comment { bytes: start..i });
                word = Word::None;
            }
            b'/' if bytes.get(past_splices(bytes, i + 1)) == Some(&b'*') => {
                let start = i;
                i = block_comment_end(bytes, past_splices(bytes, i + 1) + 1);
                found.push(Comment { bytes: start..i });
                word = Word::None;
            }
            // A header name (`#include <a/*b>`, `__has_include(<x>)`) holds no comment.
            b'<' if header_name_follows(bytes, i) => {
                let start = i;
                i = quoted_end(bytes, i, b'>');
                literals.push(start..i);
                word = Word::None;
            }
            b'"' => {
                let start = i;
                let raw = dialect
                    .raw_strings
                    .then(|| raw_string_end(bytes, i))
                    .flatten();
                i = raw.unwrap_or_else(|| quoted_end(bytes, i, b'"'));
                if raw.is_some() {
                    raw_strings.push(start..i);
                }
                literals.push(start..i);
                word = Word::None;
            }
            // A digit separator (C++14 and C23 `1'000'000`) is no character literal;
            // an encoding prefix (`L'/*'`) is no number, nor is a `'` that no digit or
            // letter follows.
            b'\''
                if dialect.digit_separators
                    && word == Word::Number
                    && bytes.get(i + 1).is_some_and(|&b| identifier_byte(b)) =>
            {
                separators.push(i);
                i += 1;
            }
            b'\'' => {
                let start = i;
                i = quoted_end(bytes, i, b'\'');
                literals.push(start..i);
                word = Word::None;
            }
            _ => {
                word = word.next(bytes, i);
                i += 1;
            }
        }
    }
    Lexed {
        comments: found,
        literals,
        separators,
        raw_strings,
    }
}

/// Just past the `*/` that closes a block comment whose text starts at `from` (a `*`
/// and `/` split by line splices close it too), or the end of the text.
fn block_comment_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] == b'*' {
            let next = past_splices(bytes, i + 1);
            if bytes.get(next) == Some(&b'/') {
                return next + 1;
            }
        }
        i += 1;
    }
    bytes.len()
}

/// Whether the `<` at `at` opens a header name: after `#include`, `#include_next` or
/// `#import` at a line's start, or `__has_include(` or `__has_include_next(`. Only the
/// 64 bytes before it are read, so that a line of many `<` costs linear time.
fn header_name_follows(bytes: &[u8], at: usize) -> bool {
    let before = &bytes[at.saturating_sub(64)..at];
    let before = before.trim_ascii_end();
    if let Some(call) = before.strip_suffix(b"(") {
        let call = call.trim_ascii_end();
        return call.ends_with(b"__has_include") || call.ends_with(b"__has_include_next");
    }
    let line = match before.iter().rposition(|&b| b == b'\n') {
        Some(n) => &before[n + 1..],
        // The line starts before the bytes read, or is the text's first.
        None if at > 64 => return false,
        None => before,
    };
    let Some(directive) = line.trim_ascii_start().strip_prefix(b"#") else {
        return false;
    };
    matches!(
        directive.trim_ascii_start(),
        b"include" | b"include_next" | b"import"
    )
}

/// The kind of preprocessing token the lexer is in, for digit separators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    None,
    Identifier,
    /// A pp-number: a digit, or `.` and a digit, then identifier characters, dots,
    /// separators and signs after an exponent's letter.
    Number,
}

impl Word {
    /// The token after the byte at `i` (no quote, comment or literal).
    fn next(self, bytes: &[u8], i: usize) -> Word {
        let b = bytes[i];
        match self {
            Word::Number if identifier_byte(b) || b == b'.' => Word::Number,
            Word::Number
                if matches!(b, b'+' | b'-')
                    && i > 0
                    && matches!(bytes[i - 1], b'e' | b'E' | b'p' | b'P') =>
            {
                Word::Number
            }
            Word::Identifier if identifier_byte(b) => Word::Identifier,
            _ if b.is_ascii_digit() => Word::Number,
            _ if b == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => Word::Number,
            _ if identifier_byte(b) => Word::Identifier,
            _ => Word::None,
        }
    }
}

/// A byte of an identifier as GCC reads one: ASCII letters, digits, `_`, `$`, and the
/// bytes of UTF-8 characters past ASCII.
fn identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// `text` with each lone CR (one not followed by LF) made an LF: the same length and
/// offsets, and the same lines as a compiler, an editor, SARIF and LSP count, where
/// tree-sitter's grammars and this module end lines at LF only. Without it a `//`
/// comment ended by a lone CR would hide the code after it on the same LF-line.
pub fn lf_line_ends(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut edits = AsciiEdits::new(text);
    for at in (0..bytes.len()).filter(|&i| lone_cr(bytes, i)) {
        edits.set(at, b'\n');
    }
    edits.finish()
}

/// Whether the byte at `i` is a CR that no LF follows.
fn lone_cr(bytes: &[u8], i: usize) -> bool {
    bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n')
}

/// [`lf_line_ends`] for bytes.
pub fn lf_line_end_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let lone = |i: usize| lone_cr(bytes, i);
    if !(0..bytes.len()).any(lone) {
        return Cow::Borrowed(bytes);
    }
    Cow::Owned(
        (0..bytes.len())
            .map(|i| if lone(i) { b'\n' } else { bytes[i] })
            .collect(),
    )
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
            // A line splice (blanks or a CR allowed before the newline) continues the
            // literal; any other backslash escapes the next byte.
            b'\\' => i = splice_end(bytes, i).unwrap_or(i + 2),
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
    // Whitespace not yet written: none, a space, or the newline that ends a
    // preprocessor directive, which is kept (it decides what the directive holds).
    #[derive(PartialEq, PartialOrd)]
    enum Pending {
        None,
        Space,
        DirectiveEnd,
    }
    let mut pending = Pending::None;
    let (mut line_start, mut in_directive) = (true, false);
    // `verbatim`: a literal, whose whitespace is kept.
    let mut push = |text: &str, verbatim: bool, out: &mut String| {
        for c in text.chars() {
            if c.is_whitespace() && !verbatim {
                // A newline ends a directive unless a backslash splices it.
                if c == '\n' && !out.ends_with('\\') {
                    if in_directive {
                        pending = Pending::DirectiveEnd;
                    }
                    (line_start, in_directive) = (true, false);
                }
                if pending == Pending::None {
                    pending = Pending::Space;
                }
            } else {
                if line_start {
                    in_directive = c == '#';
                    line_start = false;
                }
                match pending {
                    _ if out.is_empty() => {}
                    Pending::DirectiveEnd => out.push('\n'),
                    Pending::Space => out.push(' '),
                    Pending::None => {}
                }
                pending = Pending::None;
                out.push(c);
            }
        }
    };
    let Lexed {
        comments, literals, ..
    } = lex(source, Dialect::FIRST);
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
    fn lines_with_two_readings_are_found_wherever_they_are() {
        use crate::scan::Language;
        let text = "a ??= b\n// x ??/\nplain ?? ?\n\"??/\" ??<\n";
        assert_eq!(lines_with_two_readings(text, Language::Cpp), [0, 1, 3]);
        assert!(lines_with_two_readings("a ?? b ?? c", Language::C).is_empty());
        // In C, digit separators and raw strings too; in C++ they have one reading.
        let text = "int a = 1'000;\nint b;\nconst char *r = R\"x(\n)x\";\n";
        assert_eq!(lines_with_two_readings(text, Language::C), [0, 2, 3]);
        assert!(lines_with_two_readings(text, Language::Cpp).is_empty());
        assert_eq!(trigraphs_replaced("\"??/\" ??=x ??"), "\"  \\\"   #x ??");
    }

    #[test]
    fn separators_need_a_digit_or_letter_after_them_and_cost_linear_time() {
        // A pp-number runs on over an exponent's sign and starts after a dot; `$`
        // is an identifier's (so `a$1'x'` holds a literal, not a separator).
        assert!(texts("x 1e+'0 + '/*' y; z x.1'0 + '/*';").is_empty());
        assert!(texts("a$1'x/*'; b").is_empty());
        // `1'/*'`: a `1` and a character literal in every mode.
        assert_eq!(texts("x(1'/*'); int f; y(1'*/');"), Vec::<&str>::new());
        let many = format!("int x = 1{};", "'1".repeat(200_000));
        let started = std::time::Instant::now();
        assert!(texts(&many).is_empty());
        assert!(started.elapsed().as_secs() < 2, "{:?}", started.elapsed());
    }

    #[test]
    fn line_splices_join_comment_markers_and_continue_literals() {
        // `*\` then `/` on the next line closes the comment, as it does for a compiler.
        assert_eq!(
            texts("/* a *\\\n/ int f; /* b */"),
            ["/* a *\\\n/", "/* b */"]
        );
        assert_eq!(texts("/\\\n* c */ x"), ["/\\\n* c */"]);
        // A backslash, blanks and a newline (or CR LF) continue a literal.
        for splice in ["\\ \n", "\\\r\n", "\\\t \r\n"] {
            let source = format!("s = \"x{splice}/*\"; int f; t = \"*/\";");
            assert!(texts(&source).is_empty(), "{source:?}");
            let text = grammar_text(&source, Dialect::FIRST);
            assert!(
                !text.contains("/*") && text.len() == source.len(),
                "{text:?}"
            );
        }
        // The grammars see blanks for comments, newlines kept with a backslash before
        // them (a comment is one space: a directive runs on past its newline).
        assert_eq!(
            grammar_text("a /* b\n c */ d // e", Dialect::FIRST),
            "a    \\\n      d     "
        );
    }

    #[test]
    fn normalized_text_keeps_the_newline_that_ends_a_directive() {
        // Moving a newline in or out of a directive changes what it holds.
        let inside = normalized("int f(void) {\n#define X g();\n  return 0;\n}");
        let outside = normalized("int f(void) {\n#define X\ng();\n  return 0;\n}");
        assert_ne!(inside, outside);
        assert_eq!(outside, "int f(void) { #define X\ng(); return 0; }");
        // A spliced newline and the layout around a directive do not count.
        assert_eq!(
            normalized("int f(void) {\n  #define X a \\\n b\n\n  return 0; }"),
            normalized("int f(void) {\n #define X a \\\n   b\n return 0; }")
        );
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
