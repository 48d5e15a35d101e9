//! `dangan-edge`: the district edge node's command line.
//!
//! Thin by design: parse the arguments, start logging, open the data folder,
//! call the library, print the result (text in the operator's language, or
//! JSON with `--json`).
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
