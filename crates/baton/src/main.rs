//! `baton`, the command-line interface: `serve`, `check`, `detect`, `replay`, `eval`, `train`,
//! `simulate`, `explain`, `agents`, `keys`.
//!
//! Exit status (CONTRACTS.md): 0 success, 1 invalid input or policy (message on stderr),
//! 2 usage error.
#![forbid(unsafe_code)]

mod cli;
mod eval;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: detection allocates small, short-lived strings
/// and vectors on every turn, and glibc's malloc and free were a fifth of all instructions in
/// `baton detect` (callgrind).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
