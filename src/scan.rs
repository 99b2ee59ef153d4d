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

use std::path::Path;

use tree_sitter::{Node, Parser};

/// Source language of a file, by extension or explicit choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// C, parsed with `tree-sitter-c`.
    C,
    /// C++, parsed with `tree-sitter-cpp`.
    Cpp,
}

impl Language {
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
    /// The definition's text, `source[start_byte..end_byte]`.
    pub code: String,
}

/// Result of parsing one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Function definitions, in source order.
    pub functions: Vec<FunctionSpan>,
    /// True when tree-sitter reported syntax errors anywhere in the file. Functions are
    /// still returned for the parts that parsed, thanks to tree-sitter's error recovery.
    pub had_syntax_errors: bool,
}

/// Placeholder name for a definition whose declarator holds no identifier.
const ANONYMOUS: &str = "<anonymous>";

/// Node kinds that end the descent through a declarator: their text is the name.
const NAME_KINDS: &[&str] = &[
    "identifier",
    "field_identifier",
    "type_identifier",
    "qualified_identifier",
    "operator_name",
    "destructor_name",
    "template_function",
    "template_method",
    "operator_cast",
];

/// Finds function definitions: tree-sitter `function_definition` nodes, which cover
/// C++ methods defined inside classes, template functions (the span then starts at the
/// `template<...>` line), K&R-style C definitions, and definitions nested in namespaces,
/// `extern "C"` blocks or preprocessor `#if` blocks.
///
/// A definition nested inside another one (a GCC nested function; lambdas are not
/// `function_definition`s) is reported only as part of the outermost. Functions come
/// back in source order. Never panics: macro-heavy code may be mis-parsed, and a file
/// that does not parse at all yields no functions with `had_syntax_errors` set.
///
/// A parser is created per call (it is cheap, and `tree_sitter::Parser` is not `Sync`),
/// so this may be called from many threads at once.
pub fn find_functions(source: &str, language: Language) -> ScanResult {
    let mut parser = Parser::new();
    if parser.set_language(&language.grammar()).is_err() {
        // Only an ABI mismatch between grammar and library gets here; report it as
        // "could not parse" rather than panic.
        return ScanResult {
            functions: Vec::new(),
            had_syntax_errors: true,
        };
    }
    let Some(tree) = parser.parse(source, None) else {
        return ScanResult {
            functions: Vec::new(),
            had_syntax_errors: true,
        };
    };
    let root = tree.root_node();
    ScanResult {
        functions: collect(root, source),
        had_syntax_errors: root.has_error(),
    }
}

/// Like [`find_functions`], for raw bytes. Invalid UTF-8 is first decoded lossily
/// (each bad sequence becomes U+FFFD), so `start_byte`/`end_byte` refer to the
/// lossily-decoded text, not to `bytes`, when the input was not valid UTF-8. Line
/// numbers are unaffected, since newlines are never part of an invalid sequence.
pub fn find_functions_in_bytes(bytes: &[u8], language: Language) -> ScanResult {
    find_functions(&String::from_utf8_lossy(bytes), language)
}

/// Pre-order walk with a cursor (no recursion, so deeply nested input cannot overflow
/// the stack), skipping the inside of each definition found so only outermost ones count.
fn collect(root: Node<'_>, source: &str) -> Vec<FunctionSpan> {
    let mut functions = Vec::new();
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        let is_definition = node.kind() == "function_definition";
        if is_definition {
            functions.push(span(node, source));
        }
        if !is_definition && cursor.goto_first_child() {
            continue;
        }
        // Move to the next sibling, climbing up until one exists or the root is reached.
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return functions;
            }
        }
    }
}

fn span(definition: Node<'_>, source: &str) -> FunctionSpan {
    // `template<...>` headers belong to the definition; there may be several
    // (`template<> template<class T>`), each a template_declaration wrapping the next.
    let mut outer = definition;
    while let Some(parent) = outer.parent() {
        if parent.kind() != "template_declaration" {
            break;
        }
        outer = parent;
    }
    let (start_byte, end_byte) = (outer.start_byte(), definition.end_byte());
    let start = outer.start_position();
    let end = definition.end_position();
    // A node ending at column 0 ends with a newline, whose line is not part of it.
    let end_row = if end.column == 0 && end.row > start.row {
        end.row - 1
    } else {
        end.row
    };
    FunctionSpan {
        name: function_name(definition, source).unwrap_or_else(|| ANONYMOUS.to_string()),
        start_line: start.row + 1,
        end_line: end_row + 1,
        start_byte,
        end_byte,
        code: source
            .get(start_byte..end_byte)
            .unwrap_or_default()
            .to_string(),
    }
}

/// Descends the declarator chain (function, pointer, reference, parenthesized,
/// attributed, array declarators) to the node naming the function.
fn function_name(definition: Node<'_>, source: &str) -> Option<String> {
    let mut node = definition.child_by_field_name("declarator")?;
    // Bounded: a declarator chain is never deeper than the tree itself.
    loop {
        if NAME_KINDS.contains(&node.kind()) {
            return name_text(node, source);
        }
        node = match node.child_by_field_name("declarator") {
            Some(inner) => inner,
            // reference/parenthesized/attributed declarators keep the inner one unnamed.
            None => {
                let mut cursor = node.walk();
                let inner = node
                    .named_children(&mut cursor)
                    .find(|c| NAME_KINDS.contains(&c.kind()) || c.kind().ends_with("declarator"));
                inner?
            }
        };
    }
}

/// The text of a name node; for conversion operators (`operator bool() const`), the
/// node also spans the parameter list, which is cut off so the name is `operator bool`.
fn name_text(node: Node<'_>, source: &str) -> Option<String> {
    let mut end = node.end_byte();
    let mut last = node;
    while last.kind() == "qualified_identifier" {
        match last.child_by_field_name("name") {
            Some(name) => last = name,
            None => break,
        }
    }
    if last.kind() == "operator_cast" {
        if let Some(declarator) = last.child_by_field_name("declarator") {
            end = declarator.start_byte();
        }
    }
    let text = source.get(node.start_byte()..end)?;
    let name = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
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
        let result = find_functions("}}}} int ((( {", Language::C);
        assert!(result.had_syntax_errors);
        assert!(result.functions.is_empty(), "{result:?}");
        let result = find_functions("}}}} int ((( {", Language::Cpp);
        assert!(result.had_syntax_errors);
        assert!(result.functions.is_empty(), "{result:?}");
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
