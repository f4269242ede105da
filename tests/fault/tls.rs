//! TLS to PostgreSQL: a private cluster that accepts TCP connections only
//! over TLS, with a certificate for `localhost` from a test CA; ticketd
//! connects with each `sslmode` as libpq would, and refuses a server whose
//! certificate is for another host or from another CA with a clear error.

use std::process::{Command, Output};

use crate::private_postgres::PrivateCluster;

/// `ticketd --database URL migrate`, in a scratch directory.
fn migrate(url: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .current_dir(dir.path())
        .args(["--database", url, "migrate"])
        .output()
        .unwrap()
}

#[track_caller]
fn connects(url: &str) {
    let output = migrate(url);
    assert!(
        output.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[track_caller]
fn refused(url: &str, why: &[&str]) {
    let output = migrate(url);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{url} connected");
    for part in why {
        assert!(stderr.contains(part), "{url}: {stderr}");
    }
}

#[test]
fn each_sslmode_connects_as_libpq_would_and_a_wrong_host_or_ca_is_refused() {
    let Some(cluster) = PrivateCluster::start_with_tls() else {
        return;
    };
    let port = cluster.tls_port();
    let (ca, other) = (cluster.ca_file(), cluster.other_ca_file());
    let url =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/postgres?{query}");
    let root = |path: &std::path::Path| path.display().to_string().replace('/', "%2F");

    // The server takes TLS only: each of these connects over it.
    connects(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", root(&ca)),
    ));
    connects(&url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", root(&ca)),
    ));
    connects(&url("127.0.0.1", "sslmode=require"));
    connects(&url("127.0.0.1", "application_name=tls-test"));
    // Without TLS the server refuses.
    refused(
        &url("127.0.0.1", "sslmode=disable"),
        &["no pg_hba.conf entry"],
    );

    // A certificate for another host name, or from another CA.
    refused(
        &url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={}", root(&ca)),
        ),
        &[
            &format!("cannot reach PostgreSQL at 127.0.0.1:{port}"),
            "invalid peer certificate: certificate not valid for name \"127.0.0.1\"",
        ],
    );
    refused(
        &url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", root(&other)),
        ),
        &[
            &format!("cannot reach PostgreSQL at localhost:{port}"),
            "invalid peer certificate",
        ],
    );
    refused(
        &url(
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={}", root(&other)),
        ),
        &["invalid peer certificate"],
    );
    // A root file that is not there, and a mode libpq does not have.
    refused(
        &url(
            "localhost",
            "sslmode=verify-full&sslrootcert=%2Fno%2Fsuch.crt",
        ),
        &["sslrootcert /no/such.crt"],
    );
    refused(
        &url("localhost", "sslmode=allow"),
        &["sslmode=\"allow\" is not one of disable, prefer, require, verify-ca, verify-full"],
    );
}
