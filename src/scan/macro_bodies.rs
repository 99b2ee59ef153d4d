//! Function definitions in the bodies of `#define`s. The grammars read a macro's body
//! as one opaque token, but the compiler compiles whatever it expands to: a body that
//! defines a function (`#define DEFINE_GETTER(n) int get_##n(void) { return n; }`, or a
//! whole function hidden behind a one-word macro) is code the scanner must see.

use tree_sitter::{Node, Parser, Range};

use super::definitions::collect;
use super::FunctionSpan;

/// The function definitions in the bodies of the `#define`s in `root`'s tree, in source
/// order: each body that could hold one (it has a `(` and a `{`) is parsed on its own,
/// at its place in `source` (tree-sitter's included ranges, so offsets and lines are
/// the file's). A definition with syntax errors inside (token pasting, `#` operators)
/// is still one, unless its body is left open. A body that holds none (`do { ... } while (0)`) adds nothing: it is
/// read where the macro is used. The caller's last use of `parser`.
pub(super) fn read(parser: &mut Parser, root: Node<'_>, source: &str) -> Vec<FunctionSpan> {
    let mut found = Vec::new();
    let mut cursor = root.walk();
    'walk: loop {
        let node = cursor.node();
        let body = matches!(node.kind(), "preproc_def" | "preproc_function_def")
            .then(|| node.child_by_field_name("value"))
            .flatten();
        match body {
            Some(body) => read_body(parser, body, node, source, &mut found),
            None if cursor.goto_first_child() => continue,
            None => {}
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
    // An empty list is always accepted, and the parser is read no more by the caller.
    let _ = parser.set_included_ranges(&[]);
    found
}

/// Reads the `body` of `define` up to the end of the directive, not of tree-sitter's
/// `preproc_arg`, which stops before a comment in the body.
fn read_body(
    parser: &mut Parser,
    body: Node<'_>,
    define: Node<'_>,
    source: &str,
    found: &mut Vec<FunctionSpan>,
) {
    let end = define.end_byte();
    let end = source[..end]
        .strip_suffix('\n')
        .map_or(end, |s| s.strip_suffix('\r').unwrap_or(s).len());
    let Some(text) = source.get(body.start_byte()..end) else {
        return;
    };
    if !(text.contains('(') && text.contains('{')) {
        return;
    }
    // The end's row and column, counted within the directive.
    let directive = &source.as_bytes()[define.start_byte()..end];
    let end_point = tree_sitter::Point {
        row: define.start_position().row + directive.iter().filter(|&&b| b == b'\n').count(),
        column: match directive.iter().rposition(|&b| b == b'\n') {
            Some(n) => directive.len() - n - 1,
            None => define.start_position().column + directive.len(),
        },
    };
    let range = Range {
        start_byte: body.start_byte(),
        end_byte: end,
        start_point: body.start_position(),
        end_point,
    };
    if parser.set_included_ranges(&[range]).is_err() {
        return;
    }
    if let Some(tree) = parser.parse(source, None) {
        // A body that opens a definition and leaves it to other macros to close
        // (`#define BEGIN(n) int n(void) {`) holds none.
        // A body that opens a definition and leaves it to other macros to close
        // (`#define BEGIN(n) int n(void) {`) holds none.
        found.extend(
            collect(tree.root_node(), source)
                .into_iter()
                .map(|d| d.span)
                .filter(|f| f.code.trim_end().ends_with('}')),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::scan::{find_functions, Language};

    fn found(source: &str) -> Vec<(String, usize, usize)> {
        find_functions(source, Language::C)
            .functions
            .into_iter()
            .map(|f| (f.name, f.start_line, f.end_line))
            .collect()
    }

    #[test]
    fn a_function_in_a_define_is_found_at_its_lines() {
        let source = "#define HIDE int evil(char *s) \\\n{ char b[4]; strcpy(b, s); return 0; }\nint after(void) { return 1; }\n";
        assert_eq!(
            found(source),
            [("evil".into(), 1, 2), ("after".into(), 3, 3)]
        );
        let evil = &find_functions(source, Language::C).functions[0];
        assert_eq!(&source[evil.start_byte..evil.end_byte], evil.code);
        assert!(evil.code.starts_with("int evil") && evil.code.ends_with('}'));
    }

    #[test]
    fn function_like_and_pasting_macros_yield_their_definitions() {
        let source = "#define GET(n) static int get_##n(void) { return n; }\n#define SWAP(a, b) do { int t = a; a = b; b = t; } while (0)\nGET(x);\n";
        let result = find_functions(source, Language::C);
        assert_eq!(result.functions.len(), 1, "{:?}", result.functions);
        assert_eq!(result.functions[0].start_line, 1);
        assert!(result.functions[0].code.contains("get_##n"));
    }
}
