//! `dangan-hub`: the central hub's command line. Everything lives in the
//! library ([`dangan_hub::cli`]), so tests can build the same program.
fn main() -> std::process::ExitCode {
    dangan_hub::cli::run()
}
