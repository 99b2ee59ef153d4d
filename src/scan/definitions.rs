//! What tree-sitter's syntax tree holds of function definitions: the definitions a
//! tree shows (`collect`), including the shapes the grammars read as something else
//! (K&R parameter lists, a definition whose name or parameters come from a macro), with
//! their names and byte spans.

use tree_sitter::Node;

use super::FunctionSpan;

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

/// A definition found in one reading of a file.
pub(super) struct Definition {
    pub(super) span: FunctionSpan,
    /// No syntax error inside the definition's node.
    pub(super) clean: bool,
}

/// Walks the tree with an explicit stack (no recursion, so deeply nested input cannot
/// overflow the stack), skipping the inside of each definition found so only outermost
/// ones count; definitions come back in source order.
///
/// Each node's children are listed once, and what a definition needs of its
/// surroundings (the `template<...>` headers around it, the siblings before a loose
/// body) is read from those lists: tree-sitter's `parent` and `prev_sibling` walk down
/// from the root or across all siblings, which made a file of many thousands of
/// top-level items cost quadratic time per reading.
pub(super) fn collect(root: Node<'_>, source: &str) -> Vec<Definition> {
    let mut functions = Vec::new();
    // A node to visit, and the outermost of the template_declarations that directly
    // wrap it (`template<> template<class T>` nests one in another).
    let mut stack: Vec<(Node<'_>, Option<Node<'_>>)> = vec![(root, None)];
    while let Some((node, wrapping)) = stack.pop() {
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
        let template = (node.kind() == "template_declaration").then(|| wrapping.unwrap_or(node));
        let loose_owner = matches!(
            node.kind(),
            "translation_unit" | "ERROR" | "declaration_list" | "linkage_specification"
        ) || node.kind().starts_with("preproc_");
        let mut descend = Vec::new();
        for (i, &child) in children.iter().enumerate() {
            let found = match child.kind() {
                "function_definition" => Some(
                    macro_parameters_definition(&children[..i], child, source).unwrap_or(
                        Definition {
                            span: span_between(
                                template.unwrap_or(child),
                                child,
                                function_name(child, source),
                                source,
                            ),
                            clean: !child.has_error(),
                        },
                    ),
                ),
                "compound_statement" if loose_owner => {
                    old_style_definition(&children[..i], child, source)
                        .or_else(|| macro_call_definition(&children[..i], child, source))
                }
                _ => None,
            };
            match found {
                Some(definition) => functions.push(definition),
                None => descend.push((child, template)),
            }
        }
        stack.extend(descend.into_iter().rev());
    }
    functions.sort_by_key(|d| (d.span.start_byte, d.span.end_byte));
    // A K&R header's declaration is also an earlier sibling's subtree: a definition
    // found inside one that a recovered definition covers is dropped.
    let mut kept: Vec<Definition> = Vec::with_capacity(functions.len());
    for d in functions {
        match kept.last() {
            Some(last) if d.span.start_byte < last.span.end_byte => {}
            _ => kept.push(d),
        }
    }
    kept
}

/// A header whose parameter list a macro wraps (`int f PARAMS((int a)) { ... }`, the
/// idiom of old GNU code) parses as a declaration `int f` with its `;` missing, then
/// a "definition" of type `PARAMS` whose declarator holds no function declarator at
/// all. Such a definition is joined to that declaration, which names it.
fn macro_parameters_definition<'t>(
    before: &[Node<'t>],
    definition: Node<'t>,
    source: &str,
) -> Option<Definition> {
    if has_function_declarator(definition) {
        return None;
    }
    let header = *before
        .iter()
        .rev()
        .find(|n| n.is_named() && n.kind() != "comment")?;
    let mut cursor = header.walk();
    let unterminated = header.kind() == "declaration"
        && header
            .children(&mut cursor)
            .last()
            .is_some_and(|c| c.is_missing());
    unterminated.then(|| Definition {
        span: span_between(header, definition, function_name(header, source), source),
        clean: false,
    })
}

/// The same idiom where the grammar reads the macro as a call: an unterminated
/// declaration `char *g`, an unterminated statement `__P((char *s, int n))`, then a
/// loose body.
fn macro_call_definition<'t>(
    before: &[Node<'t>],
    body: Node<'t>,
    source: &str,
) -> Option<Definition> {
    let mut named = before
        .iter()
        .rev()
        .filter(|n| n.is_named() && n.kind() != "comment");
    let (call, header) = (*named.next()?, *named.next()?);
    let unterminated = |n: Node<'_>| {
        let mut cursor = n.walk();
        let last = n.children(&mut cursor).last();
        last.is_some_and(|c| c.is_missing())
    };
    let is_call = call.kind() == "expression_statement"
        && call
            .named_child(0)
            .is_some_and(|c| c.kind() == "call_expression");
    (is_call && unterminated(call) && header.kind() == "declaration" && unterminated(header)).then(
        || Definition {
            span: span_between(header, body, function_name(header, source), source),
            clean: false,
        },
    )
}

/// True when the declarator chain of `definition` holds a function declarator.
fn has_function_declarator(definition: Node<'_>) -> bool {
    let mut node = definition.child_by_field_name("declarator");
    // Bounded: a declarator chain is never deeper than the tree itself.
    while let Some(current) = node {
        if current.kind() == "function_declarator" {
            return true;
        }
        let mut cursor = current.walk();
        node = current.child_by_field_name("declarator").or_else(|| {
            current
                .named_children(&mut cursor)
                .find(|c| c.kind().ends_with("declarator"))
        });
    }
    false
}

/// Most declarations read back from a body to its K&R header.
const MAX_OLD_STYLE_PARAMETERS: usize = 64;

/// A K&R definition whose declarator is more than a name and a parameter list
/// (`char *\ncopy(dst, n)\n    char *dst;\n    int n;\n{ ... }`) is not in the C
/// grammar's reach: it parses as a declaration, the parameters' declarations, and a
/// body on its own. A body with no owner whose earlier siblings (`before`) are such a
/// header and at most as many declarations as the header has parameters is that
/// definition.
fn old_style_definition<'t>(
    before: &[Node<'t>],
    body: Node<'t>,
    source: &str,
) -> Option<Definition> {
    let items = before
        .iter()
        .rev()
        .filter(|n| n.is_named() && n.kind() != "comment");
    // `declarations`: the parameter declarations between the header and the body.
    for (declarations, &header) in items.enumerate() {
        if header.kind() != "declaration" || declarations > MAX_OLD_STYLE_PARAMETERS {
            return None;
        }
        if let Some(parameters) = old_style_parameters(header) {
            return (declarations <= parameters).then(|| Definition {
                span: span_between(header, body, function_name(header, source), source),
                clean: false,
            });
        }
    }
    None
}

/// How many parameters the function declarator of `declaration` has, when each is a
/// bare name (a K&R header: `copy(dst, n)`); `None` for any other declaration.
fn old_style_parameters(declaration: Node<'_>) -> Option<usize> {
    let mut node = declaration.child_by_field_name("declarator")?;
    while node.kind() != "function_declarator" {
        if !matches!(
            node.kind(),
            "pointer_declarator" | "parenthesized_declarator" | "attributed_declarator"
        ) {
            return None;
        }
        let mut cursor = node.walk();
        let inner = node.child_by_field_name("declarator").or_else(|| {
            node.named_children(&mut cursor)
                .find(|c| c.kind().ends_with("declarator"))
        });
        node = inner?;
    }
    let list = node.child_by_field_name("parameters")?;
    let mut cursor = list.walk();
    let mut count = 0;
    for parameter in list.named_children(&mut cursor) {
        let bare = match parameter.kind() {
            "comment" => continue,
            "identifier" => true,
            "parameter_declaration" => {
                parameter.named_child_count() == 1
                    && parameter
                        .named_child(0)
                        .is_some_and(|c| matches!(c.kind(), "identifier" | "type_identifier"))
            }
            _ => false,
        };
        if !bare {
            return None;
        }
        count += 1;
    }
    Some(count)
}

/// The span from the start of `first` to the end of `last`.
fn span_between(
    first: Node<'_>,
    last: Node<'_>,
    name: Option<String>,
    source: &str,
) -> FunctionSpan {
    let (start_byte, end_byte) = (first.start_byte(), last.end_byte());
    let start = first.start_position();
    let end = last.end_position();
    // A node ending at column 0 ends with a newline, whose line is not part of it.
    let end_row = if end.column == 0 && end.row > start.row {
        end.row - 1
    } else {
        end.row
    };
    FunctionSpan {
        name: name.unwrap_or_else(|| ANONYMOUS.to_string()),
        start_line: start.row + 1,
        end_line: end_row + 1,
        start_byte,
        end_byte,
        code: source
            .get(start_byte..end_byte)
            .unwrap_or_default()
            .to_string(),
        suppressed: false,
        fingerprint: String::new(),
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
