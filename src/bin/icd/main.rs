//! `icd`: scan C/C++ source trees for insecure functions, classify functions, evaluate
//! on CodeXGLUE data and convert checkpoints. A thin front end over the library:
//! `flags` reads the command line, `commands` holds one module per subcommand, and
//! `emit` one module per report format over the typed report of `report`.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use insecure_code_detector::report::printable;

mod baseline;
mod changed_lines;
mod classification;
mod codexglue;
mod commands;
mod detector;
mod emit;
mod evaluation_plot;
mod evaluation_report;
mod flags;
mod input;
mod labelled;
mod lsp;
mod output;
mod report;
mod scan_cache;
mod settings;
mod sources;
mod tree_files;
mod triage;

use flags::{long_version, Cli, Command};

/// A failure, reported on stderr with exit status 2.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = match Cli::command()
        // Made once per process, for clap, which takes a static string.
        .long_version(&*Box::leak(long_version().into_boxed_str()))
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(threads) = cli.model.threads {
        // Read by the thread pool of the CPU backends when it starts, which is later.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let done = |result: Result<(), Failure>| result.map(|()| ExitCode::SUCCESS);
    let result = match &cli.command {
        Command::Scan(args) => commands::scan::run(&cli.model, args),
        Command::Classify(args) => done(commands::classify::run(&cli.model, args)),
        Command::Evaluate(args) => done(commands::evaluate::run(&cli.model, args)),
        Command::Calibrate(args) => done(commands::calibrate::run(&cli.model, args)),
        Command::Train(args) => done(commands::train::run(&cli.model, args)),
        Command::Triage(args) => commands::triage::run(args),
        Command::Convert(args) => done(commands::convert::run(args)),
        Command::Functions(args) => done(commands::functions::run(args)),
        Command::Lsp(args) => done(lsp::run(&cli.model, args)),
        Command::Cache { action } => done(commands::cache::run(action)),
    };
    match result {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("icd: error: {}", printable(&message));
            ExitCode::from(2)
        }
    }
}
