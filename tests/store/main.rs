//! The storage conformance suite: every test is a function over a
//! `&dyn Store`, instantiated once per backend, so all backends are held to
//! the same observable behaviour.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap is a failed test"
)]

mod backends;
mod blob;
mod encryption;
mod fixtures;
mod suite;
mod test_database;
#[path = "../shared/test_postgres.rs"]
mod test_postgres;
#[path = "../shared/test_s3.rs"]
mod test_s3;
mod upgrade;
mod upload_service;
mod uploads;

/// Instantiates every suite function as a `#[tokio::test]` per backend, in
/// a module named for the backend's constructor in `backends`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        conformance!(@backend sqlite, $($name),*);
        conformance!(@backend postgres, $($name),*);
    };
    (@backend $backend:ident, $($name:ident),*) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    // None: PostgreSQL is unreachable outside CI, and a
                    // notice on stderr says its half was skipped.
                    let Some(backend) = crate::backends::Backend::$backend().await else {
                        return;
                    };
                    crate::suite::$name(backend.store()).await;
                }
            )*
        }
    };
}

conformance!(
    workspace_codes_are_unique,
    users_and_keys_need_their_parents,
    key_credentials_round_trip,
    revoking_is_idempotent,
    tickets_are_numbered_per_workspace,
    messages_get_integer_ids_unique_across_tickets,
    ticket_rows_carry_unread_counts_previews_and_totals,
    messages_keep_their_task_and_lists_filter_by_task_and_time,
    concurrent_creation_never_reuses_a_number,
    only_customers_own_tickets,
    visibility_follows_roles,
    replies_extend_the_thread_and_move_the_status,
    concurrent_replies_are_all_kept_in_order,
    closed_tickets_refuse_replies_and_keep_nothing,
    thread_times_never_run_backwards,
    actions_follow_the_lifecycle,
    ticket_lists_page_by_recent_activity,
    ticket_lists_filter_by_status,
    message_lists_page_oldest_first,
    messages_are_found_only_through_their_ticket,
    emptiness_is_reported,
    export_pages_list_every_row_in_dump_order,
    imported_records_read_back_exactly,
    a_refused_import_batch_keeps_nothing,
    records_crossing_workspaces_are_read_by_neither,
    export_pages_cross_thousands_of_messages,
    keys_register_once_and_a_foreign_key_file_is_refused,
    sealed_bodies_need_a_registered_key_that_is_not_retiring,
    retiring_keys_are_deleted_only_once_nothing_is_sealed_with_them,
    the_server_secret_registers_once,
    idempotent_writes_complete_their_record_and_replay,
    idempotency_claims_are_taken_over_only_after_their_lease,
    a_renewed_claim_holds_until_its_new_lease_ends,
    a_restarted_node_releases_the_claims_its_earlier_process_left,
    failed_idempotent_writes_keep_nothing_and_release_their_claim,
    expired_idempotency_records_are_ignored_and_swept,
    concurrent_claims_grant_a_key_once,
    uploads_are_recorded_pending_then_stored_and_seen_by_their_owner_only,
    the_sweep_takes_expired_unattached_uploads_in_steps,
    an_upload_url_is_used_once,
    messages_attach_their_senders_uploads_in_one_write,
    uploads_that_cannot_be_attached_refuse_the_whole_message,
);
