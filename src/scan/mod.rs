//! Finds C and C++ function definitions in source text with
//! [tree-sitter](https://tree-sitter.github.io/), so whole files can be split into the
//! per-function snippets the classifier was trained on (CodeXGLUE defect detection
//! scores one function at a time).
//!
//! ```
//! use insecure_code_detector::scan::{find_functions, Language};
//!
//! let source = "int add(int a, int b)\n{\n    return a + b;\n}\n";
//! let result = find_functions(source, Language::C);
//! assert_eq!(result.functions[0].name, "add");
//! assert_eq!((result.functions[0].start_line, result.functions[0].end_line), (1, 4));
//! assert!(!result.had_syntax_errors);
//! ```

mod comments;
mod conditionals;
mod definitions;
mod macro_bodies;
mod tree;

pub use comments::{lf_line_end_bytes, lf_line_ends};
pub use tree::{
    find_functions_in_sources, find_functions_under, list_sources, Exclude, Found, Gap, GapKind,
    Listing, Source, TreeOptions,
};

use std::path::Path;

use sha2::{Digest, Sha256};

use tree_sitter::{Node, Parser};

use conditionals::Conditionals;
use definitions::{collect, Definition};

/// Source language of a file, by extension or explicit choice.
///
/// The discriminant is the number the C API gives it (`icd_language`); the names are
/// [`Language::name`]'s, which `FromStr` takes and the Python package uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Language {
    /// C, parsed with `tree-sitter-c`.
    C = 0,
    /// C++, parsed with `tree-sitter-cpp`.
    Cpp = 1,
}

impl std::str::FromStr for Language {
    type Err = crate::Error;

    /// `c` or `cpp`.
    fn from_str(name: &str) -> crate::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| crate::Error::InvalidArgument {
                argument: "language",
                message: format!("is {name:?}, expected \"c\" or \"cpp\""),
            })
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Language {
    /// Both languages, in the order of their C numbers.
    pub const ALL: [Language; 2] = [Language::C, Language::Cpp];

    /// Its number in the C API (`icd_language`).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The language with C number `code`, if any.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    /// Picks the language from the file extension (ASCII case-insensitive):
    /// `.c`/`.h` are C; `.cc`, `.cpp`, `.cxx`, `.c++`, `.hh`, `.hpp`, `.hxx`, `.h++`,
    /// `.ipp`, `.tpp` are C++; anything else is `None`.
    ///
    /// `.h` counts as C because the model's training data (CodeXGLUE) is C; the C
    /// grammar also fails more gracefully on C++ than the reverse does on K&R C.
    pub fn from_path(path: &Path) -> Option<Language> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "c" | "h" => Some(Language::C),
            "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" | "h++" | "ipp" | "tpp" => {
                Some(Language::Cpp)
            }
            _ => None,
        }
    }

    /// Short lowercase name: `"c"` or `"cpp"`.
    pub fn name(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Cpp => "cpp",
        }
    }

    fn grammar(self) -> tree_sitter::Language {
        match self {
            Language::C => tree_sitter_c::LANGUAGE.into(),
            Language::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }
}

/// One function definition found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpan {
    /// Function name as written (whitespace runs collapsed to one space): `foo`,
    /// `Class::method`, `ns::Class<T>::method`, `operator==`, `Foo::~Foo`, or
    /// `<anonymous>` when the declarator has no identifier.
    pub name: String,
    /// 1-based first line of the definition, including any return-type and
    /// `template<...>` header lines.
    pub start_line: usize,
    /// 1-based last line of the definition (inclusive).
    pub end_line: usize,
    /// Byte offset where the definition starts in the source.
    pub start_byte: usize,
    /// Byte offset just past the end of the definition in the source.
    pub end_byte: usize,
    /// The definition's text, `source[start_byte..end_byte]` with each lone CR made an
    /// LF ([`lf_line_ends`]).
    pub code: String,
    /// A comment holding [`SUPPRESSION_MARKER`] is on the definition's first line or on
    /// the line before it: the function was reviewed and is not to be reported.
    pub suppressed: bool,
    /// Identifies the function across edits elsewhere and moves: a hash of its name and
    /// its text without comments and with whitespace outside string and character
    /// literals collapsed (never its path or lines), then `:N`, its place among the functions of its file with that hash
    /// (1 for the first), so that two equal definitions in one file differ.
    pub fingerprint: String,
}

/// The text that, inside a comment on a function's first line or the line before it,
/// suppresses the function (as `NOLINTNEXTLINE` and `flawfinder: ignore` do).
pub const SUPPRESSION_MARKER: &str = "icd: ignore";

/// Result of parsing one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Function definitions, in source order.
    pub functions: Vec<FunctionSpan>,
    /// True when tree-sitter reported syntax errors anywhere in the file as written.
    /// Functions are still returned for the parts that parsed, through tree-sitter's
    /// error recovery and a reading per preprocessor branch (see [`find_functions`]);
    /// what stayed unreadable is in `unparsed_lines`.
    pub had_syntax_errors: bool,
    /// Lines holding code that fell in no function definition and no other complete
    /// item (declaration, type, directive, comment) under any branch selection: the
    /// part of the file whose functions, if any, were not found. Ranges in source
    /// order, 1-based and inclusive; empty when the whole file parsed.
    pub unparsed_lines: Vec<LineRange>,
}

impl ScanResult {
    /// How many lines `unparsed_lines` covers.
    pub fn unparsed_line_count(&self) -> usize {
        self.unparsed_lines
            .iter()
            .map(|r| r.end_line - r.start_line + 1)
            .sum()
    }
}

/// An inclusive range of 1-based source lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LineRange {
    /// First line of the range.
    pub start_line: usize,
    /// Last line of the range (inclusive).
    pub end_line: usize,
}

/// Largest text [`find_functions`] parses, in bytes: 32 MiB. tree-sitter's trees take up
/// to about 170 bytes of memory per byte of text (a file of broken conditionals), and
/// a file is parsed again per branch selection while its first tree is kept, so this
/// costs at most about 11 GiB; a larger text is reported unparsed, whole, rather than
/// left to exhaust memory (tree-sitter aborts the process when an allocation fails).
/// The largest C files in common use are about 9 MiB.
pub const MAX_PARSED_BYTES: usize = 32 << 20;

/// Most readings of one file, one per branch selection: a conditional with more
/// branches than this has the later ones reported as unparsed rather than read.
const MAX_VARIANTS: usize = 8;

/// Bytes that the branch readings of one file may parse together: a 9 MiB file (the
/// largest C files in common use) gets seven readings, a 64 MiB one a single one.
const VARIANT_BYTES: usize = 64 << 20;

/// Node kinds that are whole items of a file or a class body: their lines count as
/// parsed when the node has no syntax error inside.
const ITEM_KINDS: &[&str] = &[
    "function_definition",
    "declaration",
    "type_definition",
    "field_declaration",
    "struct_specifier",
    "union_specifier",
    "enum_specifier",
    "class_specifier",
    "namespace_definition",
    "linkage_specification",
    "template_declaration",
    "alias_declaration",
    "using_declaration",
    "namespace_alias_definition",
    "static_assert_declaration",
    "concept_definition",
    "access_specifier",
    "comment",
];

/// Finds function definitions: tree-sitter `function_definition` nodes, which cover
/// C++ methods defined inside classes, template functions (the span then starts at the
/// `template<...>` line), K&R-style C definitions, and definitions nested in namespaces,
/// `extern "C"` blocks or preprocessor `#if` blocks.
///
/// Preprocessor conditionals whose branches split a statement or a function defeat a
/// parser that reads the file as written. When the file has syntax errors and
/// conditionals, it is read again once per branch selection, as ctags does: reading
/// `k` keeps branch `k` of every `#if`/`#elif`/`#else` chain (the last where a chain has
/// fewer) with the other branches blanked out (offsets and lines unchanged). The
/// definitions of all readings are merged: those that parsed without error first, in
/// the order branch 0, 1, ..., then the file as written; each is kept unless it
/// overlaps one kept already. So each variant of a function defined under both `#if`
/// and `#elif` is reported with its own lines, and a function whose body or header a
/// conditional splits is reported once, from its first branch's header.
/// [`FunctionSpan::code`] is always the original text, every branch included. Lines
/// that no reading could parse are in [`ScanResult::unparsed_lines`].
///
/// A definition nested inside another one (a GCC nested function; lambdas are not
/// `function_definition`s) is reported only as part of the outermost. Functions come
/// back in source order. Never panics: macro-heavy code may be mis-parsed, and a file
/// that does not parse at all yields no functions, with `had_syntax_errors` set and its
/// lines in `unparsed_lines`.
///
/// A parser is created per call (it is cheap, and `tree_sitter::Parser` is not `Sync`),
/// so this may be called from many threads at once.
///
/// ```
/// use insecure_code_detector::scan::{find_functions, Language};
///
/// let source = "int f(int a, int b)\n{\n#ifdef STRICT\n    if (a && b) {\n#else\n    if (a) {\n#endif\n        return 1;\n    }\n    return 0;\n}\n\nint g(void) { return 2; }\n";
/// let result = find_functions(source, Language::C);
/// let found: Vec<_> = result.functions.iter().map(|f| (f.name.as_str(), f.start_line, f.end_line)).collect();
/// assert_eq!(found, [("f", 1, 11), ("g", 13, 13)]);
/// assert!(result.had_syntax_errors && result.unparsed_lines.is_empty());
/// ```
///
/// Each function also says whether a comment suppresses it and carries its
/// fingerprint:
///
/// ```
/// use insecure_code_detector::scan::{find_functions, Language};
///
/// let source = "// icd: ignore (reviewed)\nint f(void) { return 0; }\nint g(void) { return 0; }\n";
/// let moved = format!("\n\n{}", source.replace("(reviewed)", ""));
/// let (a, b) = (find_functions(source, Language::C), find_functions(&moved, Language::C));
/// assert!(a.functions[0].suppressed && !a.functions[1].suppressed);
/// assert_eq!(a.functions[1].fingerprint, b.functions[1].fingerprint);
/// ```
///
/// The file is read as a compiler reads it where the grammars would not (one lexer,
/// `comments.rs`, decides what is a comment or a literal, and tree-sitter reads the
/// text with comments blanked):
/// - a lone CR ends a line (so lines are counted, and `code` holds it, as an LF);
/// - line splices join a comment's `*` and `/` and continue literals;
/// - `/*` or `//` inside a string or character literal (`L'/*'`) or a header name
///   opens no comment, and a digit separator (`1'000`) opens no character literal;
/// - a `#define` whose body holds a function definition (`#define DEF(n) int n(void)
///   { ... }`) yields that function, with the lines of the `#define`;
/// - trigraphs, and in C digit separators and raw strings, which compilers read one
///   way or the other by mode, are read both ways: the definitions of both readings
///   are reported, and the lines holding them are in [`ScanResult::unparsed_lines`]
///   (their functions fingerprinted with their comments).
///
/// ```
/// use insecure_code_detector::scan::{find_functions, Language};
///
/// let source = "int decoy(void) { return 0; } // note\rint hidden(void) { return 1; }\n";
/// let result = find_functions(source, Language::C);
/// let found: Vec<_> = result.functions.iter().map(|f| (f.name.as_str(), f.start_line)).collect();
/// assert_eq!(found, [("decoy", 1), ("hidden", 2)]);
/// ```
pub fn find_functions(source: &str, language: Language) -> ScanResult {
    let source = &*comments::lf_line_ends(source);
    // Past the limit, nothing more is read (each reading's copies would cost more).
    if source.len() > MAX_PARSED_BYTES {
        return unread(source);
    }
    let mut result = find_definitions(
        &comments::grammar_text(source, comments::Dialect::FIRST),
        language,
    );
    // Where the compiler's mode decides what is code, the other reading's definitions
    // too, each kept unless it overlaps one of the first reading.
    let two_readings = comments::lines_with_two_readings(source, language);
    if !two_readings.is_empty() {
        let iso = comments::trigraphs_replaced(source);
        let other = find_definitions(
            &comments::grammar_text(&iso, comments::Dialect::other(language)),
            language,
        );
        // Where the readings' definitions overlap with other spans, one may hide the
        // other's inside it: both spans' lines are reported.
        let spans_differ = differing_overlaps(&result.functions, &other.functions);
        result = with_definitions(result, other.functions);
        add_unparsed_rows(&mut result, spans_differ);
    }
    // Each reading's text differs from the source in its literals: the code is the
    // source's.
    for f in &mut result.functions {
        f.code = source
            .get(f.start_byte..f.end_byte)
            .unwrap_or_default()
            .to_owned();
    }
    annotate(&mut result.functions, source, &two_readings);
    add_unparsed_rows(&mut result, two_readings);
    result
}

/// Adds 0-based `rows` to `result`'s unparsed lines.
fn add_unparsed_rows(result: &mut ScanResult, rows: Vec<usize>) {
    if rows.is_empty() {
        return;
    }
    let mut rows: std::collections::BTreeSet<usize> = rows.into_iter().collect();
    for range in &result.unparsed_lines {
        rows.extend(range.start_line - 1..range.end_line);
    }
    result.unparsed_lines = line_ranges(rows);
}

/// 0-based rows as runs of 1-based lines, in order.
fn line_ranges(rows: impl IntoIterator<Item = usize>) -> Vec<LineRange> {
    let mut ranges: Vec<LineRange> = Vec::new();
    for row in rows {
        let line_number = row + 1;
        match ranges.last_mut() {
            Some(last) if last.end_line + 1 == line_number => last.end_line = line_number,
            _ => ranges.push(LineRange {
                start_line: line_number,
                end_line: line_number,
            }),
        }
    }
    ranges
}

/// Whether sorted `rows` hold one in `first..=last`.
fn any_within(rows: &[usize], first: usize, last: usize) -> bool {
    rows.get(rows.partition_point(|&r| r < first))
        .is_some_and(|&r| r <= last)
}

/// Sets each function's [`FunctionSpan::suppressed`] and [`FunctionSpan::fingerprint`].
/// `two_readings`: the 0-based lines whose reading depends on the compiler's mode.
fn annotate(functions: &mut [FunctionSpan], source: &str, two_readings: &[usize]) {
    let line_of = {
        let newlines: Vec<usize> = source.match_indices('\n').map(|(at, _)| at).collect();
        move |offset: usize| newlines.partition_point(|&n| n < offset)
    };
    // The lines (1-based) holding the marker inside a comment. A comment on a line
    // with two readings may be no comment in the other: its marker does not count.
    let mut marked_lines = std::collections::BTreeSet::new();
    for comment in comments::comments(source) {
        if any_within(
            two_readings,
            line_of(comment.bytes.start),
            line_of(comment.bytes.end),
        ) {
            continue;
        }
        let text = &source[comment.bytes.clone()];
        for (at, _) in text.match_indices(SUPPRESSION_MARKER) {
            marked_lines.insert(1 + line_of(comment.bytes.start + at));
        }
    }
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for f in functions {
        f.suppressed =
            marked_lines.contains(&f.start_line) || marked_lines.contains(&(f.start_line - 1));
        let mut hash = Sha256::new();
        hash.update(f.name.as_bytes());
        hash.update(b"\n");
        // Where the mode decides what a comment is (`??/` continues one), such a
        // function's every byte counts.
        match any_within(two_readings, f.start_line - 1, f.end_line - 1) {
            false => hash.update(comments::normalized(&f.code).as_bytes()),
            true => hash.update(f.code.as_bytes()),
        }
        let digest: String = hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let n = seen.entry(digest.clone()).or_insert(0);
        *n += 1;
        f.fingerprint = format!("{digest}:{n}");
    }
}

/// The result for a text that is not parsed: no functions, every line unparsed.
fn unread(source: &str) -> ScanResult {
    ScanResult {
        functions: Vec::new(),
        had_syntax_errors: true,
        unparsed_lines: vec![LineRange {
            start_line: 1,
            end_line: source.lines().count().max(1),
        }],
    }
}

/// [`find_functions`] without the annotations.
fn find_definitions(source: &str, language: Language) -> ScanResult {
    let mut parser = Parser::new();
    if parser.set_language(&language.grammar()).is_err() {
        // Only an ABI mismatch between grammar and library gets here; report it as
        // "could not parse" rather than panic.
        return unread(source);
    }
    let Some(tree) = parser.parse(source, None) else {
        return unread(source);
    };
    let root = tree.root_node();
    if !root.has_error() {
        let result = ScanResult {
            functions: collect(root, source).into_iter().map(|d| d.span).collect(),
            had_syntax_errors: false,
            unparsed_lines: Vec::new(),
        };
        return with_definitions(result, macro_bodies::read(&mut parser, root, source));
    }

    // Readings: one per branch selection of its conditionals, then the file as written
    // (which reads best where the trouble is not a conditional: a `#if 0` block of
    // text that is not C stays in every branch selection).
    let conditionals = Conditionals::find(source);
    // Readings are bounded in number and, for a large file, in the bytes they parse
    // together; branches past them are left unread (and so reported as unparsed).
    let variants = if conditionals.is_empty() {
        0
    } else {
        conditionals
            .variant_count()
            .min(MAX_VARIANTS)
            .min((VARIANT_BYTES / source.len().max(1)).max(1))
    };
    let rows = source.split('\n').count();
    // Per line: parsed as part of a whole item in some reading.
    let mut parsed = vec![false; rows];
    // Every reading's definitions, with the reading's index.
    let mut candidates: Vec<(Definition, usize)> = Vec::new();
    mark_parsed_rows(root, &mut parsed);
    candidates.extend(collect(root, source).into_iter().map(|d| (d, variants)));
    for k in 0..variants {
        let variant = conditionals.variant(source, k);
        let Some(tree) = parser.parse(&variant, None) else {
            continue;
        };
        mark_parsed_rows(tree.root_node(), &mut parsed);
        candidates.extend(
            collect(tree.root_node(), &variant)
                .into_iter()
                .map(|d| (d, k)),
        );
    }
    // Definitions that parsed cleanly first, then in reading order (branch 0, 1, ...,
    // then the file as written): each kept unless it overlaps one kept already.
    // A reading that lost its way in a split conditional yields definitions with errors
    // inside, or none, where another reading has the whole one.
    candidates.sort_by_key(|(d, reading)| (!d.clean, *reading, d.span.start_byte));
    let mut kept: std::collections::BTreeMap<usize, FunctionSpan> = Default::default();
    for (d, _) in candidates {
        let (start, end) = (d.span.start_byte, d.span.end_byte);
        // Kept spans never overlap, so only the last one starting before `end` can.
        let overlaps = kept
            .range(..end.max(start + 1))
            .next_back()
            .is_some_and(|(_, f)| f.end_byte > start);
        if !overlaps {
            kept.insert(start, d.span);
        }
    }
    let mut functions: Vec<FunctionSpan> = kept.into_values().collect();
    for f in &mut functions {
        // A reading blanked the other branches; the function's text has them all.
        f.code = source
            .get(f.start_byte..f.end_byte)
            .unwrap_or_default()
            .to_string();
    }

    for f in &functions {
        parsed[f.start_line - 1..f.end_line].fill(true);
    }
    for row in conditionals.directive_rows(source) {
        parsed[row] = true;
    }
    let unparsed_lines = line_ranges(
        source
            .split('\n')
            .enumerate()
            // Blanks and a line splice hold no code (a comment is blanks to here).
            .filter(|(row, line)| {
                !parsed[*row]
                    && !line
                        .trim_matches(|c: char| c.is_whitespace() || c == '\\')
                        .is_empty()
            })
            .map(|(row, _)| row),
    );
    let result = ScanResult {
        functions,
        had_syntax_errors: true,
        unparsed_lines,
    };
    with_definitions(result, macro_bodies::read(&mut parser, root, source))
}

/// The 0-based rows of each definition of `other` that overlaps one of `kept` (in
/// order, not overlapping each other) with another span, and of that one.
fn differing_overlaps(kept: &[FunctionSpan], other: &[FunctionSpan]) -> Vec<usize> {
    let mut rows = Vec::new();
    for g in other {
        let mut next = kept.partition_point(|f| f.end_byte <= g.start_byte);
        while let Some(f) = kept.get(next).filter(|f| f.start_byte < g.end_byte) {
            if (f.start_byte, f.end_byte) != (g.start_byte, g.end_byte) {
                rows.extend(f.start_line - 1..f.end_line);
                rows.extend(g.start_line - 1..g.end_line);
            }
            next += 1;
        }
    }
    rows
}

/// `result` with the `functions` (of `#define` bodies, or another reading) that overlap
/// none of its own.
fn with_definitions(mut result: ScanResult, functions: Vec<FunctionSpan>) -> ScanResult {
    if functions.is_empty() {
        return result;
    }
    // The file's definitions are in order and never overlap: the first that ends past
    // a body's definition's start is the only one that can overlap it.
    let kept = &result.functions;
    let added: Vec<FunctionSpan> = functions
        .into_iter()
        .filter(|f| {
            let next = kept.partition_point(|g| g.end_byte <= f.start_byte);
            kept.get(next).is_none_or(|g| g.start_byte >= f.end_byte)
        })
        .collect();
    result.functions.extend(added);
    result.functions.sort_by_key(|f| f.start_byte);
    result
}

/// Marks the rows of every whole item in the tree that has no syntax error inside:
/// a pre-order walk that stops at such items and descends into everything else
/// (the translation unit, ERROR nodes, conditionals and items with errors).
fn mark_parsed_rows(root: Node<'_>, parsed: &mut [bool]) {
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        let kind = node.kind();
        let whole =
            !node.has_error() && (ITEM_KINDS.contains(&kind) || kind.starts_with("preproc_"));
        if whole {
            let (start, end) = (node.start_position(), node.end_position());
            // A node ending at column 0 ends with a newline, whose line is not its own.
            let last = if end.column == 0 && end.row > start.row {
                end.row - 1
            } else {
                end.row
            };
            for row in start.row..=last.min(parsed.len() - 1) {
                parsed[row] = true;
            }
        }
        if !whole && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
        }
    }
}

/// Like [`find_functions`], for raw bytes. Invalid UTF-8 is first decoded lossily
/// (each bad sequence becomes U+FFFD), so `start_byte`/`end_byte` refer to the
/// lossily-decoded text, not to `bytes`, when the input was not valid UTF-8. Line
/// numbers are unaffected, since newlines are never part of an invalid sequence.
pub fn find_functions_in_bytes(bytes: &[u8], language: Language) -> ScanResult {
    find_functions(&String::from_utf8_lossy(bytes), language)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(result: &ScanResult) -> Vec<&str> {
        result.functions.iter().map(|f| f.name.as_str()).collect()
    }

    fn lines(result: &ScanResult) -> Vec<(usize, usize)> {
        result
            .functions
            .iter()
            .map(|f| (f.start_line, f.end_line))
            .collect()
    }

    #[test]
    fn a_text_past_the_parse_limit_is_unparsed_whole_and_not_parsed() {
        let line = "int f(void) { return 0; }\n";
        let source = line.repeat(MAX_PARSED_BYTES / line.len() + 1);
        let started = std::time::Instant::now();
        let result = find_functions(&source, Language::C);
        assert!(result.functions.is_empty() && result.had_syntax_errors);
        let lines = source.lines().count();
        assert_eq!(
            result.unparsed_lines,
            [LineRange {
                start_line: 1,
                end_line: lines
            }]
        );
        // Parsed, it would take seconds and gigabytes.
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }

    #[test]
    fn two_plain_c_functions() {
        let source = "#include <stdio.h>\n\
                      \n\
                      static int\n\
                      square(int x)\n\
                      {\n    return x * x;\n}\n\
                      \n\
                      void hello(void) { puts(\"hi\"); }\n";
        let result = find_functions(source, Language::C);
        assert!(!result.had_syntax_errors);
        assert_eq!(names(&result), ["square", "hello"]);
        assert_eq!(lines(&result), [(3, 7), (9, 9)]);
        let first = &result.functions[0];
        assert_eq!(
            first.code,
            "static int\nsquare(int x)\n{\n    return x * x;\n}"
        );
        assert_eq!(&source[first.start_byte..first.end_byte], first.code);
    }

    #[test]
    fn k_and_r_definition() {
        let source = "int add(a, b)\n    int a;\n    int b;\n{\n    return a + b;\n}\n";
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["add"]);
        assert_eq!(lines(&result), [(1, 6)]);
        assert!(!result.had_syntax_errors);
    }

    #[test]
    fn function_inside_ifdef() {
        let source = "#ifdef X\nint guarded(void)\n{\n    return 1;\n}\n#endif\nint after(void) { return 2; }\n";
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["guarded", "after"]);
        assert_eq!(lines(&result), [(2, 5), (7, 7)]);
    }

    #[test]
    fn macro_wrapped_body_is_one_function() {
        let source = "static int f(void) {\n    FOO(x, { y; });\n    return 0;\n}\n";
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["f"]);
        assert_eq!(lines(&result), [(1, 4)]);
    }

    #[test]
    fn cpp_methods_templates_operators() {
        let source = r#"namespace ns {
class Foo {
public:
    int inline_method() const { return 1; }
    void bar();
    ~Foo();
};

void Foo::bar() {
    helper();
}

Foo::~Foo() {}
}

template <typename T>
T max_of(T a, T b)
{
    return a > b ? a : b;
}

bool operator==(const ns::Foo &a, const ns::Foo &b) { return true; }

const std::string &name_ref() { static std::string s; return s; }
"#;
        let result = find_functions(source, Language::Cpp);
        assert!(!result.had_syntax_errors, "{result:?}");
        assert_eq!(
            names(&result),
            [
                "inline_method",
                "Foo::bar",
                "Foo::~Foo",
                "max_of",
                "operator==",
                "name_ref"
            ]
        );
        assert_eq!(
            lines(&result),
            [(4, 4), (9, 11), (13, 13), (16, 20), (22, 22), (24, 24)]
        );
        assert!(result.functions[3]
            .code
            .starts_with("template <typename T>\nT max_of"));
    }

    #[test]
    fn cpp_qualified_template_and_conversion_names() {
        let source = "template <class T>\nvoid ns::Box<T>::put(T v) { value = v; }\n\
                      struct S { operator bool() const { return true; } };\n";
        let result = find_functions(source, Language::Cpp);
        assert_eq!(names(&result), ["ns::Box<T>::put", "operator bool"]);
        assert_eq!(lines(&result), [(1, 2), (3, 3)]);
    }

    #[test]
    fn garbage_does_not_panic() {
        for language in [Language::C, Language::Cpp] {
            let result = find_functions("}}}} int ((( {", language);
            assert!(result.had_syntax_errors);
            assert!(result.functions.is_empty(), "{result:?}");
            assert_eq!(
                result.unparsed_lines,
                [LineRange {
                    start_line: 1,
                    end_line: 1
                }]
            );
        }
    }

    #[test]
    fn conditional_splitting_a_statement_hides_nothing_after_it() {
        let source = "static int auth(int a, int b)\n{\n  int r = 0;\n#ifdef NTLM\n  if(a && b) {\n#else\n  if(a) {\n#endif\n    r = 1;\n  }\n  return r;\n}\n\nint after(void)\n{\n  return 2;\n}\n";
        // As written, the parser loses its way here.
        assert!(find_functions(source, Language::C).had_syntax_errors);
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["auth", "after"]);
        assert_eq!(lines(&result), [(1, 12), (14, 17)]);
        // The function's text is the file's, both branches included.
        assert!(result.functions[0]
            .code
            .contains("if(a && b) {\n#else\n  if(a) {"));
        assert!(result.unparsed_lines.is_empty(), "{result:?}");
    }

    #[test]
    fn each_elif_variant_is_its_own_function() {
        let source = "#if A\nstatic int now(void)\n{\n  return 1;\n}\n#elif B\nstatic int now(void)\n{\n  return 2;\n}\n#else\nstatic int now(void)\n{\n  return 3;\n}\n#endif\nint x(void) {\n#if A\n  if (1) {\n#else\n  if (2) {\n#endif\n  }\n  return 0;\n}\n";
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["now", "now", "now", "x"]);
        assert_eq!(lines(&result), [(2, 5), (7, 10), (12, 15), (17, 25)]);
        assert!(result.unparsed_lines.is_empty(), "{result:?}");
    }

    #[test]
    fn a_function_header_split_by_a_conditional_is_one_function() {
        let source = "#ifdef V6\nstatic int open_socket(int family, int port)\n{\n  if(family == 6) {\n#else\nstatic int open_socket(int port)\n{\n  {\n#endif\n    return port;\n  }\n}\nint next(void) { return 0; }\n";
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["open_socket", "next"]);
        assert_eq!(lines(&result), [(2, 12), (13, 13)]);
    }

    #[test]
    fn k_and_r_definitions_with_pointer_declarators_are_recovered() {
        let source = "char *\ncopy(dst, src, n)\n    register char *dst;\n    const char *src;\n    unsigned n;\n{\n    return dst;\n}\nint (*pick(k))()\n    int k;\n{\n    return 0;\n}\nint after(void) { return 1; }\n";
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["copy", "pick", "after"]);
        assert_eq!(lines(&result), [(1, 8), (9, 13), (14, 14)]);
        assert!(result.unparsed_lines.is_empty(), "{result:?}");
        // A prototype, a declaration and a stray block are not a definition.
        let source = "int f(int x);\nint y;\n{\n    y = 1;\n}\n";
        assert!(find_functions(source, Language::C).functions.is_empty());
    }

    #[test]
    fn a_parameter_list_in_a_macro_is_its_function() {
        let source = "int f4 PARAMS((int a))\n{\n    return a;\n}\nstatic char *g __P((char *s, int n)) { return s; }\n";
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["f4", "g"]);
        assert_eq!(lines(&result), [(1, 4), (5, 5)]);
    }

    #[test]
    fn unparsed_lines_are_reported_with_their_ranges() {
        let source = "int ok(void) { return 0; }\n\n)))) garbage ((((\n]]]\n\nint also_ok(void) { return 1; }\n";
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["ok", "also_ok"]);
        assert!(result.had_syntax_errors);
        assert_eq!(
            result.unparsed_lines,
            [LineRange {
                start_line: 3,
                end_line: 4
            }]
        );
        assert_eq!(result.unparsed_line_count(), 2);
        // A clean file has none.
        let clean = find_functions("int f(void) { return 0; }\n", Language::C);
        assert!(clean.unparsed_lines.is_empty() && !clean.had_syntax_errors);
    }

    #[test]
    fn empty_file() {
        for language in [Language::C, Language::Cpp] {
            let result = find_functions("", language);
            assert!(result.functions.is_empty());
            assert!(!result.had_syntax_errors);
        }
    }

    #[test]
    fn invalid_utf8_in_comment() {
        let mut bytes = b"/* header */\nint f(void)\n{\n    /* caf".to_vec();
        bytes.extend_from_slice(&[0xE9, 0xFF, 0xFE]);
        bytes.extend_from_slice(b" */\n    return 0;\n}\nint g(void) { return 1; }\n");
        let result = find_functions_in_bytes(&bytes, Language::C);
        assert!(!result.had_syntax_errors);
        assert_eq!(names(&result), ["f", "g"]);
        assert_eq!(lines(&result), [(2, 6), (7, 7)]);
        assert!(result.functions[0].code.contains('\u{FFFD}'));
    }

    #[test]
    fn language_from_path() {
        let cases = [
            ("a.c", Some(Language::C)),
            ("dir/a.h", Some(Language::C)),
            ("A.C", Some(Language::C)),
            ("a.cc", Some(Language::Cpp)),
            ("a.cpp", Some(Language::Cpp)),
            ("a.cxx", Some(Language::Cpp)),
            ("a.c++", Some(Language::Cpp)),
            ("a.hh", Some(Language::Cpp)),
            ("a.hpp", Some(Language::Cpp)),
            ("a.hxx", Some(Language::Cpp)),
            ("a.h++", Some(Language::Cpp)),
            ("a.ipp", Some(Language::Cpp)),
            ("a.tpp", Some(Language::Cpp)),
            ("a.rs", None),
            ("Makefile", None),
            (".c", None),
        ];
        for (path, expected) in cases {
            assert_eq!(Language::from_path(Path::new(path)), expected, "{path}");
        }
        assert_eq!(Language::C.name(), "c");
        assert_eq!(Language::Cpp.name(), "cpp");
    }

    #[test]
    fn pointer_returning_function() {
        let source = "#include <string.h>\n#include <stdlib.h>\nchar *dup(const char *s)\n{\n    size_t n = strlen(s) + 1;\n    char *p = malloc(n);\n    return p ? memcpy(p, s, n) : NULL;\n}\n\
                      static int (*pick(int k))(int) { return 0; }\n";
        let result = find_functions(source, Language::C);
        assert!(!result.had_syntax_errors);
        assert_eq!(names(&result), ["dup", "pick"]);
        assert_eq!(lines(&result), [(3, 8), (9, 9)]);
    }

    #[test]
    fn gcc_nested_function_reported_once() {
        let source = "int outer(int x)\n{\n    int inner(int y) { return y + 1; }\n    return inner(x);\n}\n";
        let result = find_functions(source, Language::C);
        assert_eq!(names(&result), ["outer"]);
        assert_eq!(lines(&result), [(1, 5)]);
    }

    #[test]
    fn usable_from_many_threads() {
        let source = "int a(void) { return 0; }\nint b(void) { return 1; }\n";
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || find_functions(source, Language::C)))
            .collect();
        for handle in handles {
            assert_eq!(names(&handle.join().unwrap()), ["a", "b"]);
        }
    }
}
