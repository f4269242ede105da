//! `ticketd config show`: the configuration `serve` would run with, each
//! setting with its value and where that came from, secrets redacted.

use std::path::Path;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, Subcommand};
use serde::Serialize;
use serde_json::Value;

use super::listing::{Columns, OutputFormat, Printer};
use super::{Cli, CliError};
use crate::config::{Config, Settings};
use crate::rate_limit::redis::RedisUrl;
use crate::store::DatabaseUrl;

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration: every setting, its value (secrets
    /// redacted) and its source (a flag, an environment variable, the
    /// file, or the default). Takes the flags `serve` takes.
    Show(Box<ShowArgs>),
}

/// Flags of `config show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// json (one object per line) or table.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
    /// The settings given as flags or `TICKETD_*` environment variables.
    #[command(flatten)]
    pub settings: Settings,
}

/// One setting as printed.
#[derive(Serialize)]
struct SettingOutput {
    setting: &'static str,
    value: Value,
    source: String,
}

impl Columns for SettingOutput {
    const COLUMNS: &'static [&'static str] = &["setting", "value", "source"];
}

/// Where a setting's value comes from.
pub(super) struct Layers<'a> {
    /// The configuration file's path, and what it sets.
    pub(super) file: (&'a Path, &'a Settings),
    /// The validated configuration.
    pub(super) config: &'a Config,
}

pub(super) fn show(layers: &Layers<'_>, format: OutputFormat) -> Result<(), CliError> {
    let effective = to_map(&layers.config.effective_settings())?;
    let file = to_map(layers.file.1)?;
    let command = Cli::command();
    let matches = command
        .clone()
        .try_get_matches_from(std::env::args_os())
        .map_err(CliError::from_error)?;
    let show_matches = matches
        .subcommand_matches("config")
        .and_then(|config| config.subcommand_matches("show"));
    let show_command = command
        .find_subcommand("config")
        .and_then(|config| config.find_subcommand("show"));
    let mut printer = Printer::new(format);
    for &key in Settings::KEYS {
        let arg = command
            .get_arguments()
            .chain(
                show_command
                    .into_iter()
                    .flat_map(|show| show.get_arguments()),
            )
            .find(|arg| arg.get_id() == key);
        let given = [Some(&matches), show_matches]
            .into_iter()
            .flatten()
            .filter(|matches| matches.ids().any(|id| id.as_str() == key))
            .find_map(|matches| matches.value_source(key))
            .filter(|source| *source != ValueSource::DefaultValue);
        let source = match (given, arg) {
            (Some(ValueSource::CommandLine), Some(arg)) => {
                format!("flag --{}", arg.get_long().unwrap_or(key))
            }
            (Some(ValueSource::EnvVariable), Some(arg)) => format!(
                "environment {}",
                arg.get_env().map_or_else(
                    || key.to_owned(),
                    |name| name.to_string_lossy().into_owned()
                )
            ),
            _ if file.get(key).is_some_and(|value| !value.is_null()) => {
                format!("file {}", layers.file.0.display())
            }
            _ => "default".to_owned(),
        };
        let value = effective.get(key).cloned().unwrap_or(Value::Null);
        printer.row(&SettingOutput {
            setting: key,
            value: redacted(key, value),
            source,
        })?;
    }
    printer.finish()
}

fn to_map(settings: &Settings) -> Result<serde_json::Map<String, Value>, CliError> {
    match serde_json::to_value(settings).map_err(CliError::from_error)? {
        Value::Object(map) => Ok(map),
        _ => Err(CliError::new("the settings are not an object")),
    }
}

/// `value` of the setting `key`, with any password it holds replaced by
/// `***`.
fn redacted(key: &str, value: Value) -> Value {
    let Value::String(text) = &value else {
        return value;
    };
    match key {
        "database" => DatabaseUrl::parse(text)
            .map_or_else(|_| Value::from("***"), |url| Value::from(url.redacted())),
        "rate_limit_url" if text != "memory" => RedisUrl::parse(text)
            .map_or_else(|_| Value::from("***"), |url| Value::from(url.redacted())),
        "metrics_token" => Value::from("***"),
        _ => value,
    }
}
