//! `icd functions`: the C/C++ function definitions a scan would classify, without a
//! model.

use std::io::Write;
use std::path::Path;

use insecure_code_detector::report::printable;
use insecure_code_detector::scan::Language;
use serde_json::json;

use crate::flags::{FunctionsArgs, FunctionsFormat};
use crate::sources::{self, find_and_warn};
use crate::{settings, Failure};

pub fn run(args: &FunctionsArgs) -> Result<(), Failure> {
    let sources::Found {
        functions,
        inputs,
        gaps,
    } = {
        let settings = settings::Settings::find(
            &args.sources.paths,
            args.sources.config.as_deref(),
            args.sources.no_config,
        )?;
        find_and_warn(&args.sources, settings.exclude.as_ref())?
    };
    let mut out = String::new();
    if args.format == FunctionsFormat::Table {
        out += &format!("{:<40} {}\n", "LOCATION", "FUNCTION");
    }
    for (file, f) in &functions {
        match args.format {
            FunctionsFormat::Table => {
                let location = format!("{}:{}-{}", printable(file), f.start_line, f.end_line);
                out += &format!("{location:<40} {}\n", printable(&f.name));
            }
            FunctionsFormat::Jsonl => {
                let language = Language::from_path(Path::new(file)).unwrap_or(Language::C);
                out += &json!({
                    "file": file,
                    "language": language.name(),
                    "function": f.name,
                    "start_line": f.start_line,
                    "end_line": f.end_line,
                })
                .to_string();
                out.push('\n');
            }
        }
    }
    if args.format == FunctionsFormat::Table {
        out += &format!("{} functions in {} files\n", functions.len(), inputs.len());
        out += &sources::footer(&gaps);
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

