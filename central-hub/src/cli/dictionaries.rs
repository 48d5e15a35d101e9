//! `dangan-hub dictionary …` and `dangan-hub template …`: the common
//! dictionaries and business-type templates (辅助管理), versioned at the
//! hub and fed to every edge when it syncs.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use dangan_shared::dictionary::{Dictionary, DictionaryKind, Entry};
use dangan_shared::template;
use dangan_shared::text::pad;
use serde::Deserialize;

use super::{Cli, print_json};
use crate::audit::{self, ActorKind, NewEntry, Outcome as AuditOutcome};
use crate::dictionaries::{self, DictionaryError, Published};
use crate::hub::HubFolder;
use crate::text::Lang;

#[derive(Debug, Subcommand)]
pub(super) enum DictionaryCommand {
    /// Show the dictionaries in force with their versions, or one
    /// dictionary's entries (--json prints what `set` reads back).
    Show {
        /// categories (档案门类), retentions (保管期限) or defects
        /// (质检缺陷类型); all three in brief when left out.
        #[arg(value_name = "KIND")]
        kind: Option<DictionaryKind>,
        /// A past version of the dictionary.
        #[arg(long, value_name = "N", requires = "kind")]
        dictionary_version: Option<u32>,
    },
    /// Publish the next version of a dictionary from a JSON or TOML file
    /// holding `entries`: every code of the dictionary once, each with
    /// `zh` and `en` labels and `active` (false retires it). Codes are
    /// fixed by the software. Content equal to the current version
    /// changes nothing. Edges apply the new version when they next sync.
    Set {
        #[arg(value_name = "KIND")]
        kind: DictionaryKind,
        /// The file (.json, or TOML with [[entries]] tables).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum TemplateCommand {
    /// List the current template of every business type.
    List,
    /// Show one business type's template (the current version unless
    /// --template-version is given).
    Show {
        #[arg(value_name = "BUSINESS_TYPE")]
        business_type: String,
        /// A past version of the template.
        #[arg(long, value_name = "N")]
        template_version: Option<u32>,
    },
    /// Publish templates from a TOML file in the format of the shipped
    /// seed (shared/seed/templates.toml): each changed template becomes
    /// the next version of its business type, a new business type starts
    /// at version 1; all or nothing. Edges apply them when they next sync;
    /// batches already bound to an older version keep it.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// A dictionary file: its entries (other keys, such as those `show
/// --json` prints, are ignored; a `kind` must match).
#[derive(Deserialize)]
struct DictionaryFile {
    kind: Option<DictionaryKind>,
    entries: Vec<Entry>,
}

fn read_dictionary(kind: DictionaryKind, file: &Path) -> Result<Dictionary> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed: DictionaryFile = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("{}", file.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("{}", file.display()))?
    };
    if let Some(other) = parsed.kind.filter(|other| *other != kind) {
        bail!(
            "{} holds the {other} dictionary, not {kind}",
            file.display()
        );
    }
    Ok(Dictionary {
        kind,
        entries: parsed.entries,
    })
}

/// Runs `publish` in one transaction with its audit entry (actor `cli`);
/// a refused publication is audited as failed.
fn publish_audited<T>(
    conn: &mut rusqlite::Connection,
    action: &str,
    target: &str,
    publish: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, DictionaryError>,
    detail: impl FnOnce(&T) -> Option<serde_json::Value>,
) -> Result<T> {
    let entry = |result, detail| NewEntry {
        actor: "cli".to_owned(),
        actor_kind: ActorKind::Cli,
        address: None,
        action: action.to_owned(),
        target: Some(target.to_owned()),
        result,
        detail: Some(detail),
    };
    let tx = dictionaries::begin(conn)?;
    match publish(&tx) {
        Ok(value) => {
            if let Some(detail) = detail(&value) {
                audit::append(&tx, &entry(AuditOutcome::Ok, detail))
                    .context("cannot record the audit entry")?;
            }
            tx.commit()?;
            Ok(value)
        }
        Err(err) => {
            drop(tx);
            audit::record(
                conn,
                &entry(
                    AuditOutcome::Failed,
                    serde_json::json!({ "error": err.to_string() }),
                ),
            )
            .context("cannot record the audit entry")?;
            Err(err.into())
        }
    }
}

pub(super) fn dictionary(cli: &Cli, dir: &Path, command: &DictionaryCommand) -> Result<()> {
    let lang = cli.lang;
    let folder = HubFolder::open(dir)?;
    let mut conn = folder.db.get()?;
    match command {
        DictionaryCommand::Show {
            kind: None,
            dictionary_version: _,
        } => {
            let all = dictionaries::in_force(&conn)?;
            if cli.json {
                return print_json(&all);
            }
            for published in [&all.categories, &all.retentions, &all.defects] {
                print_dictionary(lang, published);
            }
            println!(
                "{} {}",
                lang.pick("业务类型模板:", "templates:"),
                all.templates.len()
            );
        }
        DictionaryCommand::Show {
            kind: Some(kind),
            dictionary_version,
        } => {
            let published = dictionaries::dictionary(&conn, *kind, *dictionary_version)?;
            if cli.json {
                return print_json(&published);
            }
            print_dictionary(lang, &published);
        }
        DictionaryCommand::Set { kind, file } => {
            let new = read_dictionary(*kind, file)?;
            let outcome = publish_audited(
                &mut conn,
                "dictionary.publish",
                kind.as_str(),
                |tx| dictionaries::publish_dictionary(tx, &new, "cli"),
                |o| {
                    o.changed
                        .then(|| serde_json::json!({ "version": o.version }))
                },
            )?;
            if cli.json {
                return print_json(&outcome);
            }
            if outcome.changed {
                println!(
                    "{} {kind} {} {}",
                    lang.pick("已发布", "published"),
                    lang.pick("版本", "version"),
                    outcome.version
                );
            } else {
                println!(
                    "{} {kind} {} {}",
                    lang.pick("内容未变，仍为", "unchanged:"),
                    lang.pick("版本", "version"),
                    outcome.version
                );
            }
        }
    }
    Ok(())
}

fn print_dictionary(lang: Lang, published: &Published<Dictionary>) {
    let kind = published.content.kind;
    println!(
        "{} ({kind}) {} {} · {} · {}",
        lang.pick(kind.label_zh(), kind.as_str()),
        lang.pick("版本", "version"),
        published.version,
        published.author,
        published.recorded_at
    );
    for entry in &published.content.entries {
        let state = if entry.active {
            ""
        } else {
            lang.pick("（已停用）", " (retired)")
        };
        println!(
            "  {} {} {}{state}",
            pad(&entry.code, 16),
            pad(&entry.zh, 14),
            entry.en
        );
    }
}

pub(super) fn template(cli: &Cli, dir: &Path, command: &TemplateCommand) -> Result<()> {
    let lang = cli.lang;
    let folder = HubFolder::open(dir)?;
    let mut conn = folder.db.get()?;
    match command {
        TemplateCommand::List => {
            let all = dictionaries::templates(&conn)?;
            if cli.json {
                return print_json(&all);
            }
            for t in &all {
                println!(
                    "{} {} {} {} {} v{}",
                    pad(&t.content.business_type, 8),
                    pad(&t.content.name, 24),
                    pad(
                        &match lang {
                            Lang::Zh => t.content.category.label_zh().to_owned(),
                            Lang::En => t.content.category.to_string(),
                        },
                        12
                    ),
                    pad(
                        &match lang {
                            Lang::Zh => t.content.retention.label_zh(),
                            Lang::En => t.content.retention.to_string(),
                        },
                        10
                    ),
                    t.author,
                    t.version
                );
            }
        }
        TemplateCommand::Show {
            business_type,
            template_version,
        } => {
            let found = dictionaries::template(&conn, business_type, *template_version)?;
            if cli.json {
                return print_json(&found);
            }
            println!(
                "{} {} · {} {} · {} · {}",
                found.content.business_type,
                found.content.name,
                lang.pick("版本", "version"),
                found.version,
                found.author,
                found.recorded_at
            );
            print!("{}", toml::to_string_pretty(&found.content)?);
        }
        TemplateCommand::Import { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let templates =
                template::parse(&text).with_context(|| format!("{}", file.display()))?;
            let target = templates
                .iter()
                .map(|t| t.business_type.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let outcomes = publish_audited(
                &mut conn,
                "template.publish",
                &target,
                |tx| dictionaries::publish_templates(tx, &templates, "cli"),
                |outcomes| {
                    let changed: serde_json::Map<String, serde_json::Value> = outcomes
                        .iter()
                        .filter(|(_, o)| o.changed)
                        .map(|(code, o)| (code.clone(), o.version.into()))
                        .collect();
                    (!changed.is_empty()).then(|| serde_json::json!({ "versions": changed }))
                },
            )?;
            if cli.json {
                let report: Vec<serde_json::Value> = outcomes
                    .iter()
                    .map(|(code, o)| {
                        serde_json::json!({
                            "business_type": code,
                            "version": o.version,
                            "changed": o.changed,
                        })
                    })
                    .collect();
                return print_json(&report);
            }
            for (code, outcome) in &outcomes {
                let what = if outcome.changed {
                    lang.pick("已发布", "published")
                } else {
                    lang.pick("未变", "unchanged")
                };
                println!(
                    "{} {what} {} {}",
                    pad(code, 8),
                    lang.pick("版本", "version"),
                    outcome.version
                );
            }
        }
    }
    Ok(())
}
