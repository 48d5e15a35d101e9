//! `dangan-hub`: the central hub. The archive, sync endpoint and admin services
//! arrive with the sync issue; today the binary only reports its version.
use clap::Parser;

/// Dangan central hub (under construction: the sync and archive services are not built yet).
#[derive(Parser, Debug)]
#[command(name = "dangan-hub", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!(
        "dangan-hub {}: the hub services are not built yet (sync protocol {})",
        env!("CARGO_PKG_VERSION"),
        dangan_sync::PROTOCOL_PREFIX
    );
}
