//! The operator's read-only commands: `workspace list`, `user list`,
//! `key list` (never a secret) and `config show` (every setting with its
//! source, secrets redacted).

use serde_json::Value;

use super::BACKEND;
use super::cli::{Scratch, keys, refused, text};

/// The JSON lines a successful command printed, with nothing on stderr.
#[track_caller]
fn json_lines(scratch: &Scratch, args: &[&str]) -> Vec<Value> {
    let output = scratch.run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ticketd {args:?}: {stderr}");
    assert_eq!(stderr, "", "ticketd {args:?} wrote to stderr");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// What a successful command printed.
#[track_caller]
fn stdout(scratch: &Scratch, args: &[&str]) -> String {
    let output = scratch.run(args);
    assert!(output.status.success(), "ticketd {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn lists_print_what_was_provisioned_as_created_and_never_a_secret() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let acme = scratch.create_workspace("Acme Hosting");
    let globex = scratch.create_workspace("Globex");
    let acme_id = text(&acme["id"]).to_owned();
    let jane = scratch.create_user(&acme_id, "customer", "Jane Example");
    let sam = scratch.create_user(&acme_id, "staff", "Sam Agent");
    let jane_id = text(&jane["id"]).to_owned();
    let first = scratch.create_key(&jane_id);
    let second = scratch.create_key(&jane_id);
    let revoked = scratch.json(&["key", "revoke", text(&second["id"])]);

    assert_eq!(
        json_lines(&scratch, &["workspace", "list"]),
        vec![acme.clone(), globex]
    );
    let mut users = vec![jane.clone(), sam];
    users.sort_by(|a, b| text(&a["id"]).cmp(text(&b["id"])));
    assert_eq!(
        json_lines(&scratch, &["user", "list", "--workspace", &acme_id]),
        users
    );
    let listed = json_lines(&scratch, &["key", "list", "--user", &jane_id]);
    let mut expected = vec![first.clone(), revoked];
    for key in &mut expected {
        key.as_object_mut().unwrap().remove("token");
    }
    expected.sort_by(|a, b| text(&a["id"]).cmp(text(&b["id"])));
    assert_eq!(listed, expected);
    for key in &listed {
        assert_eq!(
            keys(key),
            [
                "createdAt",
                "id",
                "revokedAt",
                "scopes",
                "userId",
                "workspaceId"
            ]
        );
    }
    let all = stdout(
        &scratch,
        &["key", "list", "--user", &jane_id, "--format", "table"],
    );
    assert!(!all.contains(text(&first["token"])), "{all}");

    // A table: a header, then a row per object, columns aligned.
    let table = stdout(&scratch, &["workspace", "list", "--format", "table"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("id "), "{table}");
    assert!(
        lines[0].ends_with("createdAt") && lines[0].contains("numericId"),
        "{table}"
    );
    assert!(lines[1].starts_with(text(&acme["id"])), "{table}");
    assert!(
        lines[1].contains("  Acme Hosting  ACMEHOSTING  standard  "),
        "{table}"
    );
    let column = lines[0].find("code").unwrap();
    assert_eq!(&lines[1][column..column + 11], "ACMEHOSTING");
    assert_eq!(&lines[2][column..column + 6], "GLOBEX");

    // A workspace with no users lists none; unknown ids are said so.
    let globex_id = lines[2].split_whitespace().next().unwrap();
    assert_eq!(
        stdout(&scratch, &["user", "list", "--workspace", globex_id]),
        ""
    );
    let unknown_workspace = "ws_01jbz9x8m7k6h5g4f3e2d1c0b9";
    let args = ["user", "list", "--workspace", unknown_workspace];
    assert_eq!(
        refused(&scratch.run(&args), &args),
        format!("ticketd: no workspace {unknown_workspace}\n")
    );
    let args = ["key", "list", "--user", "usr_01jbz9x8m7k6h5g4f3e2d1c0b9"];
    assert_eq!(
        refused(&scratch.run(&args), &args),
        "ticketd: no user usr_01jbz9x8m7k6h5g4f3e2d1c0b9\n"
    );
    let args = ["key", "list", "--user", "jane"];
    assert_eq!(
        refused(&scratch.run(&args), &args),
        "ticketd: --user must be a usr_ id\n"
    );
}

#[test]
fn listing_never_creates_a_database() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    if !scratch.db_url().starts_with("sqlite://") {
        return;
    }
    let missing = scratch.dir.path().join("nothing-here/ticketd.db");
    let url = format!("sqlite://{}", missing.display());
    let output = scratch
        .command()
        .args(["--database", &url, "workspace", "list"])
        .output()
        .unwrap();
    let stderr = refused(&output, &["workspace", "list"]);
    assert_eq!(stderr, format!("ticketd: no ticketd database at {url}\n"));
    assert!(!missing.exists());
}

/// The `config show` line of `setting`.
fn setting<'a>(lines: &'a [Value], setting: &str) -> &'a Value {
    lines
        .iter()
        .find(|line| line["setting"] == setting)
        .unwrap_or_else(|| panic!("no {setting} in {lines:?}"))
}

#[test]
fn config_show_names_each_settings_value_and_source_with_secrets_redacted() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    std::fs::write(
        scratch.dir.path().join("ticketd.toml"),
        "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\nrequest_timeout_secs = 40\n",
    )
    .unwrap();
    let output = scratch
        .command()
        .env("TICKETD_REQUEST_TIMEOUT_SECS", "20")
        .env(
            "TICKETD_RATE_LIMIT_URL",
            "redis://:hunter2@127.0.0.1:6379/3",
        )
        .args([
            "--database",
            "postgres://ticketd:s3cret@db.internal/ticketd",
            "config",
            "show",
            "--max-subject-chars",
            "120",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        !printed.contains("s3cret") && !printed.contains("hunter2"),
        "{printed}"
    );
    let lines: Vec<Value> = printed
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let expect = |name: &str, value: Value, source: &str| {
        let line = setting(&lines, name);
        assert_eq!(line["value"], value, "{line}");
        assert_eq!(line["source"], source, "{line}");
        assert_eq!(keys(line), ["setting", "source", "value"]);
    };
    expect(
        "database",
        "postgres://ticketd:***@db.internal/ticketd".into(),
        "flag --database",
    );
    expect("listen", "127.0.0.1:9000".into(), "file ticketd.toml");
    expect("max_body_bytes", 4096.into(), "file ticketd.toml");
    expect(
        "request_timeout_secs",
        20.into(),
        "environment TICKETD_REQUEST_TIMEOUT_SECS",
    );
    expect(
        "rate_limit_url",
        "redis://:***@127.0.0.1:6379/3".into(),
        "environment TICKETD_RATE_LIMIT_URL",
    );
    expect("max_subject_chars", 120.into(), "flag --max-subject-chars");
    // Unset ones show the value the default gives them.
    expect("rate_limit_key_prefix", "ticketd:rl:".into(), "default");
    expect("database_pool_size", 16.into(), "default");
    expect("blob_store", "database".into(), "default");
    expect("body_read_timeout_secs", 10.into(), "default");
    expect("public_url", Value::Null, "default");

    // Every setting once, in the order of the configuration's keys; a
    // table too.
    let names: Vec<&str> = lines.iter().map(|line| text(&line["setting"])).collect();
    assert_eq!(names, ticketd::config::Settings::KEYS);
    let table = stdout(&scratch, &["config", "show", "--format", "table"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["setting", "value", "source"]);
    assert_eq!(
        table.lines().count(),
        ticketd::config::Settings::KEYS.len() + 1,
        "{table}"
    );

    // An invalid configuration is refused as serve refuses it.
    let args = ["config", "show", "--max-body-bytes", "10"];
    assert_eq!(
        refused(&scratch.run(&args), &args),
        "ticketd: max_body_bytes must be at least 1024\n"
    );
}
