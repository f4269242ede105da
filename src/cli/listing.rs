//! `ticketd workspace|user|key list`: what is provisioned, one JSON line
//! per object as the create commands print them (never a secret), or a
//! table with `--format table`.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::CliError;
use super::provision::{KeyOutput, UserOutput, WorkspaceOutput};
use crate::core::id::{KeyId, UserId, WorkspaceId};
use crate::store::{self, DatabaseUrl, Store, StoreError};

/// Objects read from the database per query.
const PAGE: u32 = 500;

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Aligned columns under a header line.
    Table,
}

/// An object printed as a row of a table.
pub(super) trait Columns: Serialize {
    /// The members that are its columns, in order.
    const COLUMNS: &'static [&'static str];
}

/// Prints objects as `format` says: JSON lines as they come, or a table
/// once all are in (its columns are as wide as their widest cell).
pub(super) struct Printer {
    format: OutputFormat,
    columns: &'static [&'static str],
    rows: Vec<serde_json::Map<String, Value>>,
}

impl Printer {
    pub(super) fn new(format: OutputFormat) -> Self {
        Self {
            format,
            columns: &[],
            rows: Vec::new(),
        }
    }

    /// Prints (or, for a table, keeps) one object.
    pub(super) fn row<T: Columns>(&mut self, object: &T) -> Result<(), CliError> {
        self.columns = T::COLUMNS;
        match self.format {
            OutputFormat::Json => super::print_json(object),
            OutputFormat::Table => {
                match serde_json::to_value(object).map_err(CliError::from_error)? {
                    Value::Object(fields) => self.rows.push(fields),
                    other => return Err(CliError::new(format!("not an object: {other}"))),
                }
                Ok(())
            }
        }
    }

    /// Prints the table, if that is the format.
    pub(super) fn finish(self) -> Result<(), CliError> {
        match self.format {
            OutputFormat::Table => super::print_out(&table(self.columns, &self.rows)),
            OutputFormat::Json => Ok(()),
        }
    }
}

/// `rows` as a table of their members `columns`: a header of the names,
/// then one line per row, columns two spaces apart; `-` for a `null`,
/// lists joined by commas.
fn table(columns: &[&str], rows: &[serde_json::Map<String, Value>]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let cell = |row: &serde_json::Map<String, Value>, column: &str| match row.get(column) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned)
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    let mut lines: Vec<Vec<String>> = vec![columns.iter().map(|name| (*name).to_owned()).collect()];
    lines.extend(
        rows.iter()
            .map(|row| columns.iter().map(|column| cell(row, column)).collect()),
    );
    let widths: Vec<usize> = (0..columns.len())
        .map(|index| {
            lines
                .iter()
                .map(|line| line[index].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let padded: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The database at `url`, which must exist already: listing never
/// creates one.
async fn existing(url: &DatabaseUrl) -> Result<Arc<dyn Store>, CliError> {
    if !store::exists(url).await.map_err(CliError::store)? {
        return Err(CliError::new(format!(
            "no ticketd database at {}",
            url.redacted()
        )));
    }
    store::open(url).await.map_err(CliError::store)
}

/// Prints every object `page` lists, a page of [`PAGE`] at a time, each
/// page after the last key (`key`) of the one before, as `output` makes it.
async fn print_all<T, K: Copy, O: Columns>(
    format: OutputFormat,
    mut page: impl AsyncFnMut(Option<K>) -> Result<Vec<T>, CliError>,
    key: impl Fn(&T) -> K,
    output: impl Fn(T) -> O,
) -> Result<(), CliError> {
    let mut printer = Printer::new(format);
    let mut after = None;
    loop {
        let objects = page(after).await?;
        after = objects.last().map(&key);
        let full = objects.len() == PAGE as usize;
        for object in objects {
            printer.row(&output(object))?;
        }
        if !full {
            return printer.finish();
        }
    }
}

/// `workspace list`: every workspace, by numeric id.
pub(super) async fn workspaces(url: &DatabaseUrl, format: OutputFormat) -> Result<(), CliError> {
    let store = existing(url).await?;
    print_all(
        format,
        async |after| {
            store
                .list_workspaces(after, PAGE)
                .await
                .map_err(CliError::store)
        },
        |workspace| workspace.numeric_id,
        WorkspaceOutput::from,
    )
    .await
}

/// `user list --workspace WS`: the workspace's users, by id.
pub(super) async fn users(
    url: &DatabaseUrl,
    workspace: &str,
    format: OutputFormat,
) -> Result<(), CliError> {
    let workspace_id = WorkspaceId::parse(workspace).ok_or("--workspace must be a ws_ id")?;
    let store = existing(url).await?;
    print_all(
        format,
        async |after| {
            store
                .list_users(workspace_id, after, PAGE)
                .await
                .map_err(|error| missing(error, format!("no workspace {workspace_id}")))
        },
        |user| user.id,
        UserOutput::from,
    )
    .await
}

/// `key list --user USR`: the user's API keys, revoked ones too, by id;
/// never their secrets.
pub(super) async fn keys(
    url: &DatabaseUrl,
    user: &str,
    format: OutputFormat,
) -> Result<(), CliError> {
    let user_id = UserId::parse(user).ok_or("--user must be a usr_ id")?;
    let store = existing(url).await?;
    print_all(
        format,
        async |after: Option<KeyId>| {
            store
                .list_api_keys(user_id, after, PAGE)
                .await
                .map_err(|error| missing(error, format!("no user {user_id}")))
        },
        |key| key.id,
        |key| KeyOutput::new(key, None),
    )
    .await
}

/// `NotFound` worded as `message`; any other failure as usual.
fn missing(error: StoreError, message: String) -> CliError {
    match error {
        error @ StoreError::NotFound => CliError::caused_by(message, error),
        other => CliError::store(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_under_a_header() {
        let rows: Vec<serde_json::Map<String, Value>> = [
            serde_json::json!({"id": "usr_1", "name": "Jane Example", "email": null, "scopes": ["a", "b"]}),
            serde_json::json!({"id": "usr_22", "name": "Sam", "email": "sam@example.com", "scopes": []}),
        ]
        .into_iter()
        .filter_map(|value| value.as_object().cloned())
        .collect();
        assert_eq!(
            table(&["id", "name", "email", "scopes"], &rows),
            "id      name          email            scopes\n\
             usr_1   Jane Example  -                a,b\n\
             usr_22  Sam           sam@example.com\n"
        );
        assert_eq!(table(&["id"], &[]), "");
    }
}
