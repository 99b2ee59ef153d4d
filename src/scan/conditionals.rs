//! Preprocessor conditionals (`#if`/`#ifdef`/`#ifndef`, `#elif`, `#else`, `#endif`) and
//! the branch selections ("variants") of a file that a parser can read as plain C.
//!
//! tree-sitter parses a conditional well only when each of its branches holds whole
//! items. A branch that splits a statement (`#ifdef A\n if (a && b) {\n#else\n if (a) {
//! \n#endif`) leaves an ERROR node, and the definitions inside or after it are lost.
//! As ctags does, the scanner then reads the file once per branch selection: variant
//! `k` keeps branch `k` of every conditional (its last branch where it has fewer), and
//! blanks the other branches and every conditional directive line. Blanking replaces
//! each byte but `\n` with a space, so that byte offsets and line numbers stay those of
//! the original file.

/// One conditional directive line (`#if`, `#elif`, `#else`, `#endif`, ...), its
/// continuation lines included: `start..end` in bytes, `end` at its newline (or EOF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Directive {
    kind: DirectiveKind,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirectiveKind {
    /// `#if`, `#ifdef`, `#ifndef`: opens a conditional.
    Open,
    /// `#elif`, `#elifdef`, `#elifndef`, `#else`: starts another branch.
    Branch,
    /// `#endif`: closes the conditional.
    Close,
}

/// One conditional: the byte ranges of its branches' bodies (between directive lines),
/// in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Conditional {
    branches: Vec<std::ops::Range<usize>>,
}

/// The conditionals of one source text, ready to make its variants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Conditionals {
    directives: Vec<Directive>,
    conditionals: Vec<Conditional>,
}

impl Conditionals {
    /// Finds the conditional directives of `source`, outside comments and string
    /// literals. Unbalanced ones are tolerated: an `#endif` or `#else` with no open
    /// conditional is only blanked, and a conditional still open at the end of the
    /// text closes there.
    pub(crate) fn find(source: &str) -> Conditionals {
        let directives = directive_lines(source.as_bytes());
        let mut conditionals = Vec::new();
        // Per open conditional: its branches so far and where the current one began.
        let mut open: Vec<(Vec<std::ops::Range<usize>>, usize)> = Vec::new();
        for d in &directives {
            match d.kind {
                DirectiveKind::Open => open.push((Vec::new(), d.end)),
                DirectiveKind::Branch => {
                    if let Some((branches, body_start)) = open.last_mut() {
                        branches.push(*body_start..d.start);
                        *body_start = d.end;
                    }
                }
                DirectiveKind::Close => {
                    if let Some((mut branches, body_start)) = open.pop() {
                        branches.push(body_start..d.start);
                        conditionals.push(Conditional { branches });
                    }
                }
            }
        }
        while let Some((mut branches, body_start)) = open.pop() {
            branches.push(body_start..source.len());
            conditionals.push(Conditional { branches });
        }
        Conditionals {
            directives,
            conditionals,
        }
    }

    /// True when the text has no conditional directive at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.directives.is_empty()
    }

    /// How many variants select every branch at least once: the most branches any
    /// one conditional has (1 when there are none).
    pub(crate) fn variant_count(&self) -> usize {
        self.conditionals
            .iter()
            .map(|c| c.branches.len())
            .max()
            .unwrap_or(1)
    }

    /// Variant `k` of `source`: branch `k` of each conditional kept (its last when it
    /// has fewer), the other branches and all conditional directive lines blanked.
    pub(crate) fn variant(&self, source: &str, k: usize) -> String {
        let mut bytes = source.as_bytes().to_vec();
        for d in &self.directives {
            blank(&mut bytes[d.start..d.end]);
        }
        for c in &self.conditionals {
            let keep = k.min(c.branches.len() - 1);
            for (i, body) in c.branches.iter().enumerate() {
                if i != keep {
                    blank(&mut bytes[body.clone()]);
                }
            }
        }
        // Every byte of a multi-byte character is blanked along with it (a branch and
        // a directive line begin and end at line boundaries), so this stays UTF-8.
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Lines (0-based) that are conditional directive lines, continuation lines
    /// included: never code in any variant.
    pub(crate) fn directive_rows(&self, source: &str) -> Vec<usize> {
        let newlines: Vec<usize> = source
            .bytes()
            .enumerate()
            .filter_map(|(i, b)| (b == b'\n').then_some(i))
            .collect();
        // The 0-based line of a byte offset: how many newlines come before it.
        let row_of = |offset: usize| newlines.partition_point(|&n| n < offset);
        let mut rows = Vec::new();
        for d in &self.directives {
            rows.extend(row_of(d.start)..=row_of(d.end.saturating_sub(1).max(d.start)));
        }
        rows
    }
}

fn blank(bytes: &mut [u8]) {
    for b in bytes {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

/// The conditional directive lines of `text`: a `#` first on a line (after blanks and
/// outside a comment or literal), then one of the conditional keywords. A directive
/// runs on over lines that end in a backslash.
fn directive_lines(text: &[u8]) -> Vec<Directive> {
    #[derive(PartialEq)]
    enum State {
        Code,
        BlockComment,
    }
    let mut directives = Vec::new();
    let mut state = State::Code;
    let mut i = 0;
    let n = text.len();
    while i < n {
        // At the start of a line.
        let line_start = i;
        if state == State::Code {
            let mut j = i;
            while j < n && (text[j] == b' ' || text[j] == b'\t') {
                j += 1;
            }
            if j < n && text[j] == b'#' {
                let end = logical_line_end(text, j);
                if let Some(kind) = directive_kind(&text[j + 1..end]) {
                    directives.push(Directive {
                        kind,
                        start: line_start,
                        end,
                    });
                }
                // A directive's own comments may open a block comment that runs on.
                state = scan_code(text, j, end, true);
                i = end + usize::from(end < n);
                continue;
            }
        }
        let end = line_end(text, i);
        state = scan_code(text, i, end, state == State::Code);
        i = end + usize::from(end < n);
    }
    return directives;

    /// Walks `text[from..to]` from code (`in_code`) or from inside a block comment and
    /// tells which the line ends in. Line comments, string and character literals are
    /// skipped; a literal or line comment ends with its line.
    fn scan_code(text: &[u8], from: usize, to: usize, in_code: bool) -> State {
        let mut in_comment = !in_code;
        let mut i = from;
        while i < to {
            let b = text[i];
            if in_comment {
                if b == b'*' && text.get(i + 1) == Some(&b'/') {
                    in_comment = false;
                    i += 2;
                    continue;
                }
                i += 1;
                continue;
            }
            match b {
                b'/' if text.get(i + 1) == Some(&b'*') => {
                    in_comment = true;
                    i += 2;
                }
                b'/' if text.get(i + 1) == Some(&b'/') => return State::Code,
                b'"' | b'\'' => {
                    i += 1;
                    while i < to && text[i] != b {
                        i += if text[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
        if in_comment {
            State::BlockComment
        } else {
            State::Code
        }
    }
}

/// End of the physical line holding `i`: the offset of its `\n`, or `text.len()`.
fn line_end(text: &[u8], i: usize) -> usize {
    text[i..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |p| i + p)
}

/// End of the logical line holding `i`, following backslash-newline continuations.
fn logical_line_end(text: &[u8], i: usize) -> usize {
    let mut end = line_end(text, i);
    loop {
        let before = text[..end].strip_suffix(b"\r").unwrap_or(&text[..end]);
        if end < text.len() && before.last() == Some(&b'\\') {
            end = line_end(text, end + 1);
        } else {
            return end;
        }
    }
}

/// The kind of a directive from the text after its `#`, when it is a conditional one.
fn directive_kind(after_hash: &[u8]) -> Option<DirectiveKind> {
    let rest = after_hash.trim_ascii_start();
    let word_len = rest
        .iter()
        .position(|b| !b.is_ascii_alphanumeric() && *b != b'_')
        .unwrap_or(rest.len());
    match &rest[..word_len] {
        b"if" | b"ifdef" | b"ifndef" => Some(DirectiveKind::Open),
        b"elif" | b"elifdef" | b"elifndef" | b"else" => Some(DirectiveKind::Branch),
        b"endif" => Some(DirectiveKind::Close),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_keep_one_branch_each_and_blank_directives() {
        let source = "a\n#if X\nb\n#elif Y\nc\n#else\nd\n#endif\ne\n";
        let c = Conditionals::find(source);
        assert_eq!(c.variant_count(), 3);
        let lines = |k| {
            let v = c.variant(source, k);
            assert_eq!(v.len(), source.len());
            v.lines().map(|l| l.trim().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(lines(0), ["a", "", "b", "", "", "", "", "", "e"]);
        assert_eq!(lines(1), ["a", "", "", "", "c", "", "", "", "e"]);
        assert_eq!(lines(2), ["a", "", "", "", "", "", "d", "", "e"]);
        // Past the last branch, the last one stays.
        assert_eq!(c.variant(source, 5), c.variant(source, 2));
        assert_eq!(c.directive_rows(source), [1, 3, 5, 7]);
    }

    #[test]
    fn nested_and_single_branch_conditionals() {
        let source = "#ifdef A\nx\n#if B\ny\n#else\nz\n#endif\n#endif\n";
        let c = Conditionals::find(source);
        assert_eq!(c.variant_count(), 2);
        // A conditional with one branch keeps it in every variant.
        assert!(c.variant(source, 0).contains('x') && c.variant(source, 1).contains('x'));
        assert!(c.variant(source, 0).contains('y') && !c.variant(source, 0).contains('z'));
        assert!(c.variant(source, 1).contains('z') && !c.variant(source, 1).contains('y'));
    }

    #[test]
    fn directives_in_comments_and_strings_do_not_count() {
        let source =
            "/*\n#if A\n*/\nchar *s = \"#if B\";\n// #endif\n  #  if C\nq\n# endif \\\n  tail\n";
        let c = Conditionals::find(source);
        assert_eq!(c.directive_rows(source), [5, 7, 8]);
        assert_eq!(c.variant_count(), 1);
        assert!(c.variant(source, 0).contains('q'));
        assert!(!c.variant(source, 0).contains("tail"));
    }

    #[test]
    fn unbalanced_directives_are_tolerated() {
        let source = "#endif\n#else\nx\n#if A\ny\n";
        let c = Conditionals::find(source);
        assert_eq!(c.directive_rows(source), [0, 1, 3]);
        let v = c.variant(source, 0);
        assert!(v.contains('x') && v.contains('y'), "{v:?}");
    }

    #[test]
    fn multi_byte_text_stays_valid() {
        let source = "#if A\nconst char *s = \"é\";\n#else\nconst char *s = \"ü\";\n#endif\n";
        let c = Conditionals::find(source);
        for k in 0..2 {
            let v = c.variant(source, k);
            assert_eq!(v.len(), source.len());
        }
        assert!(c.variant(source, 0).contains('é') && !c.variant(source, 0).contains('ü'));
    }
}
