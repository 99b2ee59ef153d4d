//! A scan report as LSP diagnostics, and the code action that suppresses a finding.

use std::collections::HashMap;

use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, Diagnostic,
    DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Position, Range,
    TextEdit, Uri, WorkspaceEdit,
};

use insecure_code_detector::scan::lf_line_ends;

use crate::report::{ScanReport, Verdict};

/// The diagnostics' `source`, by which the code action knows its own.
pub const SOURCE: &str = "icd";
/// The `code` of a finding's diagnostic, which the code action suppresses.
const CODE: &str = "insecure-function";
/// The `code` of a function the triage file confirms insecure: no comment suppresses
/// it, so no action is offered.
const CONFIRMED: &str = "confirmed-insecure-function";
/// The comment the code action inserts; the reason is the reviewer's to write.
const SUPPRESSION: &str = "// icd: ignore <reason: why this function is safe>";

/// A diagnostic per finding (insecure or confirmed) of `report`, on `uri` whose text
/// is `text`: the function's lines, the top lines as related information.
pub fn of_report(report: &ScanReport, uri: &Uri, text: &str) -> Vec<Diagnostic> {
    // Lines as the scanner and LSP count them: a lone CR ends one.
    let text = lf_line_ends(text);
    let lines: Vec<&str> = text.lines().collect();
    // A line's end, in the UTF-16 code units LSP positions count.
    let end_of = |line: usize| -> Position {
        let width = lines.get(line).map_or(0, |l| l.encode_utf16().count());
        Position::new(line as u32, width as u32)
    };
    let line_range = |line: usize| Range::new(Position::new(line as u32, 0), end_of(line));
    report
        .findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Insecure | Verdict::Confirmed))
        .map(|f| {
            let p = f.prediction.insecure_probability;
            let (code, severity, message) = match (&f.triage, f.verdict) {
                (Some(t), Verdict::Confirmed) => (
                    CONFIRMED,
                    DiagnosticSeverity::ERROR,
                    format!(
                        "`{}` is confirmed insecure by the triage file: {} (insecure probability {p:.3})",
                        f.function, t.reason
                    ),
                ),
                _ => (
                    CODE,
                    DiagnosticSeverity::WARNING,
                    format!(
                        "`{}` is classified insecure: probability {p:.3}, at or above {}",
                        f.function, report.threshold
                    ),
                ),
            };
            let related = f
                .lines
                .iter()
                .map(|l| DiagnosticRelatedInformation {
                    location: Location::new(uri.clone(), line_range(l.line - 1)),
                    message: format!("the model attended to this line (score {:.3})", l.score),
                })
                .collect();
            Diagnostic {
                range: Range::new(
                    Position::new((f.start_line - 1) as u32, 0),
                    end_of(f.end_line - 1),
                ),
                severity: Some(severity),
                code: Some(NumberOrString::String(code.into())),
                source: Some(SOURCE.into()),
                message,
                related_information: Some(related),
                ..Default::default()
            }
        })
        .collect()
}

/// For each of this server's findings in the request: an action inserting an `icd:
/// ignore` comment above the function, indented as its first line, with the
/// document's line ending.
pub fn suppress_actions(params: &CodeActionParams, text: &str) -> Vec<CodeActionOrCommand> {
    let text = lf_line_ends(text);
    let lines: Vec<&str> = text.lines().collect();
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let quick_fixes_wanted = params.context.only.as_ref().is_none_or(|only| {
        only.iter()
            .any(|kind| CodeActionKind::QUICKFIX.as_str().starts_with(kind.as_str()))
    });
    if !quick_fixes_wanted {
        return Vec::new();
    }
    params
        .context
        .diagnostics
        .iter()
        .filter(|d| {
            d.source.as_deref() == Some(SOURCE)
                && d.code == Some(NumberOrString::String(CODE.into()))
        })
        .map(|d| {
            let line = d.range.start.line;
            let first = lines.get(line as usize).copied().unwrap_or("");
            let indent: String = first.chars().take_while(|c| c.is_whitespace()).collect();
            let edit = TextEdit::new(
                Range::new(Position::new(line, 0), Position::new(line, 0)),
                format!("{indent}{SUPPRESSION}{newline}"),
            );
            let changes = HashMap::from([(params.text_document.uri.clone(), vec![edit])]);
            CodeActionOrCommand::CodeAction(CodeAction {
                title: "Suppress with an `icd: ignore` comment".into(),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![d.clone()]),
                edit: Some(WorkspaceEdit::new(changes)),
                ..Default::default()
            })
        })
        .collect()
}
