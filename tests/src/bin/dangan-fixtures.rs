//! Writes generated scans to a folder, for the demo and for benchmarks.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dangan_testkit::sets;

/// Generate synthetic scanned pages (A4, with barcodes placed like real
/// forms) for Dangan's demo and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "dangan-fixtures", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A small demo batch: a separator sheet, forms with business-number
    /// barcodes, follow-up pages, a blank page, a multi-page TIFF, an
    /// image-only PDF, and two broken files that ingest quarantines.
    Demo {
        /// Output folder (created).
        out: PathBuf,
    },
    /// The hard barcode fixtures (thin bars, blur, skew, rotation, low
    /// contrast, mid-page codes) as 300-dpi JPEGs, with labels.tsv listing
    /// the expected texts (several separated by `|`).
    Hard {
        /// Output folder (created).
        out: PathBuf,
    },
    /// A district's scanning for the sync demo: folders batch-01, batch-02,
    /// ... of 200-dpi pages grouped into business files, each opening with a
    /// form that carries its business number (Code 128 or QR).
    District {
        /// Output folder (created).
        out: PathBuf,
        /// How many batch folders.
        #[arg(long, default_value_t = 3)]
        batches: usize,
        /// Pages per batch.
        #[arg(long, default_value_t = 100)]
        pages: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let out = match &cli.command {
        Command::Demo { out } | Command::Hard { out } | Command::District { out, .. } => {
            out.clone()
        }
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    match cli.command {
        Command::Demo { .. } => sets::write_demo(&out)?,
        Command::Hard { .. } => sets::write_hard(&out)?,
        Command::District { batches, pages, .. } => {
            for folder in sets::write_district(&out, batches, pages)? {
                println!("{}", folder.display());
            }
            return Ok(());
        }
    }
    println!("{}", out.display());
    Ok(())
}
