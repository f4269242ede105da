//! The dump format: exact lines, round trips, and everything refused.

use super::*;
use crate::core::access::{Role, Scope};
use crate::core::dump::ReadMarkerRecord;
use crate::core::id::{KeyId, MessageId, TicketId, UploadId, UserId, WorkspaceId};
use crate::core::message::BodyFormat;
use crate::core::ticket::{Priority, TicketStatus};
use crate::core::time::Timestamp;
use crate::core::token::SecretHash;

const WS: &str = "01hxa3b4c5d6e7f8g9h0j1k2m3";
const USR: &str = "01hxa3b4c5d6e7f8g9h0j1k2m4";
const KEY: &str = "01hxa3b4c5d6e7f8g9h0j1k2m5";
const TKT: &str = "01hxa3b4c5d6e7f8g9h0j1k2m6";
const MSG: &str = "01hxa3b4c5d6e7f8g9h0j1k2m7";
const UPL: &str = "01hxa3b4c5d6e7f8g9h0j1k2m8";

fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(1_777_291_200_000 + millis)
}

fn samples() -> Vec<Record> {
    let workspace_id = WorkspaceId::from_key(WS).unwrap();
    let user_id = UserId::from_key(USR).unwrap();
    let ticket_id = TicketId::from_key(TKT).unwrap();
    vec![
        Record::Workspace(WorkspaceRecord {
            id: workspace_id,
            numeric_id: 7,
            name: "Acme \"Hosting\"".into(),
            code: "ACME".into(),
            plan: "standard".into(),
            last_ticket_number: 41,
            created_at: at(0),
            agency_signature_kid: None,
        }),
        Record::User(UserRecord {
            id: user_id,
            workspace_id,
            role: Role::Customer,
            name: "Jane Exämple".into(),
            email: None,
            created_at: at(1),
        }),
        Record::ApiKey(ApiKeyRecord {
            id: KeyId::from_key(KEY).unwrap(),
            user_id,
            secret_hash: SecretHash([0xab; 32]),
            scopes: [Scope::ReadSupport].into_iter().collect(),
            created_at: at(2),
            revoked_at: Some(at(3)),
        }),
        Record::Ticket(TicketRecord {
            id: ticket_id,
            workspace_id,
            number: 41,
            customer_id: user_id,
            subject: "Line\nbreak".into(),
            status: TicketStatus::Closed,
            priority: Priority::Urgent,
            created_at: at(4),
            updated_at: at(6),
            last_message_at: at(5),
            message_count: 1,
            resolved_at: None,
            closed_at: Some(at(6)),
            category: None,
            booking_id: None,
        }),
        Record::Message(MessageRecord {
            ticket_id,
            seq: 1,
            id: MessageId::from_key(MSG).unwrap(),
            sender_id: user_id,
            sender_role: Role::Customer,
            sender_name: "Jane Exämple".into(),
            body: "**bold**\r\n\u{2028}".into(),
            body_format: BodyFormat::Markdown,
            encrypted: true,
            sent_at: at(5),
            numeric_id: Some(3),
            task_id: None,
        }),
        Record::ReadMarker(ReadMarkerRecord {
            ticket_id,
            user_id,
            last_read_seq: 1,
        }),
        Record::Upload(UploadRecord {
            id: UploadId::from_key(UPL).unwrap(),
            workspace_id,
            owner_id: user_id,
            filename: "scan \"1\".png".into(),
            content_type: "image/png".into(),
            size: 3,
            sha256: "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81".into(),
            encrypted: false,
            content_key: None,
            created_at: at(4),
            expires_at: at(7),
            message_id: Some(MessageId::from_key(MSG).unwrap()),
            position: Some(0),
            numeric_id: 7,
        }),
    ]
}

#[test]
fn records_have_one_exact_form() {
    let lines: Vec<String> = samples()
        .iter()
        .map(|record| record_line(record).unwrap())
        .collect();
    let expected = [
        r#"{"type":"workspace","id":"ws_01hxa3b4c5d6e7f8g9h0j1k2m3","numeric_id":7,"name":"Acme \"Hosting\"","code":"ACME","plan":"standard","last_ticket_number":41,"created_at":"2026-04-27T12:00:00.000Z"}"#,
        r#"{"type":"user","id":"usr_01hxa3b4c5d6e7f8g9h0j1k2m4","workspace_id":"ws_01hxa3b4c5d6e7f8g9h0j1k2m3","role":"customer","name":"Jane Exämple","email":null,"created_at":"2026-04-27T12:00:00.001Z"}"#,
        r#"{"type":"api_key","id":"key_01hxa3b4c5d6e7f8g9h0j1k2m5","user_id":"usr_01hxa3b4c5d6e7f8g9h0j1k2m4","secret_hash":"abababababababababababababababababababababababababababababababab","scopes":["read:support"],"created_at":"2026-04-27T12:00:00.002Z","revoked_at":"2026-04-27T12:00:00.003Z"}"#,
        r#"{"type":"ticket","id":"tkt_01hxa3b4c5d6e7f8g9h0j1k2m6","workspace_id":"ws_01hxa3b4c5d6e7f8g9h0j1k2m3","number":41,"customer_id":"usr_01hxa3b4c5d6e7f8g9h0j1k2m4","subject":"Line\nbreak","status":"closed","priority":"urgent","created_at":"2026-04-27T12:00:00.004Z","updated_at":"2026-04-27T12:00:00.006Z","last_message_at":"2026-04-27T12:00:00.005Z","message_count":1,"resolved_at":null,"closed_at":"2026-04-27T12:00:00.006Z","category":null}"#,
        "{\"type\":\"message\",\"ticket_id\":\"tkt_01hxa3b4c5d6e7f8g9h0j1k2m6\",\"seq\":1,\"id\":\"tmsg_01hxa3b4c5d6e7f8g9h0j1k2m7\",\"sender_id\":\"usr_01hxa3b4c5d6e7f8g9h0j1k2m4\",\"sender_role\":\"customer\",\"sender_name\":\"Jane Exämple\",\"body\":\"**bold**\\r\\n\u{2028}\",\"body_format\":\"markdown\",\"encrypted\":true,\"sent_at\":\"2026-04-27T12:00:00.005Z\",\"numeric_id\":3}",
        r#"{"type":"read_marker","ticket_id":"tkt_01hxa3b4c5d6e7f8g9h0j1k2m6","user_id":"usr_01hxa3b4c5d6e7f8g9h0j1k2m4","last_read_seq":1}"#,
        r#"{"type":"upload","id":"upl_01hxa3b4c5d6e7f8g9h0j1k2m8","workspace_id":"ws_01hxa3b4c5d6e7f8g9h0j1k2m3","owner_id":"usr_01hxa3b4c5d6e7f8g9h0j1k2m4","filename":"scan \"1\".png","content_type":"image/png","size":3,"sha256":"039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81","encrypted":false,"content_key":null,"created_at":"2026-04-27T12:00:00.004Z","expires_at":"2026-04-27T12:00:00.007Z","message_id":"tmsg_01hxa3b4c5d6e7f8g9h0j1k2m7","position":0,"numeric_id":7}"#,
    ];
    assert_eq!(lines, expected);
    assert!(lines.iter().all(|line| !line.contains('\n')));
}

#[test]
fn records_round_trip() {
    for record in samples() {
        let line = record_line(&record).unwrap();
        assert_eq!(parse_line(&line), Ok(Entry::Record(record)), "{line}");
    }
    let counts = RecordCounts {
        workspaces: 1,
        users: 2,
        api_keys: 3,
        tickets: 4,
        messages: 5,
        uploads: 6,
        read_markers: 0,
    };
    assert_eq!(
        trailer_line(counts),
        r#"{"type":"end","workspaces":1,"users":2,"api_keys":3,"tickets":4,"messages":5,"read_markers":0,"uploads":6}"#
    );
    assert_eq!(parse_line(&trailer_line(counts)), Ok(Entry::End(counts)));
    // A version 1 trailer has no uploads.
    assert_eq!(
        parse_line(
            r#"{"type":"end","workspaces":1,"users":2,"api_keys":3,"tickets":4,"messages":5}"#
        ),
        Ok(Entry::End(RecordCounts {
            uploads: 0,
            ..counts
        }))
    );
    // File bytes, as base64 lines of at most DATA_CHUNK_BYTES.
    assert_eq!(
        data_line(b"\x89PNG"),
        r#"{"type":"upload_data","data":"iVBORw=="}"#
    );
    assert_eq!(
        parse_line(&data_line(&[7; DATA_CHUNK_BYTES])),
        Ok(Entry::Data(vec![7; DATA_CHUNK_BYTES]))
    );
    assert!(matches!(
        parse_line(&data_line(&[7; DATA_CHUNK_BYTES + 1])),
        Err(DumpError::Malformed(reason)) if reason.contains("more than")
    ));
    assert!(matches!(
        parse_line(r#"{"type":"upload_data","data":"not base64!"}"#),
        Err(DumpError::Malformed(reason)) if reason.starts_with("data: not base64")
    ));
}

#[test]
fn the_header_is_checked() {
    let header = |version, bodies| Ok(DumpHeader { version, bodies });
    let sealed = header_line(EncryptedBodies::Sealed);
    let decrypted = header_line(EncryptedBodies::Decrypted);
    assert_eq!(
        sealed,
        r#"{"format":"ticketd-dump","version":4,"decrypted":false}"#
    );
    assert_eq!(
        decrypted,
        r#"{"format":"ticketd-dump","version":4,"decrypted":true}"#
    );
    assert_eq!(check_header(&sealed), header(4, EncryptedBodies::Sealed));
    assert_eq!(
        check_header(&decrypted),
        header(4, EncryptedBodies::Decrypted)
    );
    for old in [1, 2, 3] {
        assert_eq!(
            check_header(&format!(r#"{{"format":"ticketd-dump","version":{old}}}"#)),
            header(old, EncryptedBodies::Unmarked)
        );
    }
    // Version 4 says how its bodies follow; earlier versions cannot.
    assert!(matches!(
        check_header(r#"{"format":"ticketd-dump","version":4}"#),
        Err(DumpError::Malformed(reason)) if reason.contains("missing field `decrypted`")
    ));
    assert!(matches!(
        check_header(r#"{"format":"ticketd-dump","version":3,"decrypted":true}"#),
        Err(DumpError::Malformed(reason)) if reason.contains("version 3 header has no `decrypted`")
    ));
    assert!(matches!(
        check_header(r#"{"format":"ticketd-dump","version":4,"decrypted":"yes"}"#),
        Err(DumpError::Malformed(reason)) if reason.starts_with("header: ")
    ));
    assert_eq!(
        check_header(r#"{"format":"ticketd-dump","version":5,"decrypted":false}"#),
        Err(DumpError::UnsupportedVersion("5".into()))
    );
    assert_eq!(
        check_header(r#"{"version":"1","format":"ticketd-dump"}"#),
        Err(DumpError::UnsupportedVersion("\"1\"".into()))
    );
    for not_a_dump in [
        "",
        "hello",
        r#"{"format":"other","version":1}"#,
        r#"{"format":"ticketd-dump"}"#,
        r#"{"type":"workspace"}"#,
    ] {
        assert_eq!(
            check_header(not_a_dump),
            Err(DumpError::NotADump),
            "{not_a_dump}"
        );
    }
    assert!(matches!(
        check_header(r#"{"format":"ticketd-dump","version":1,"exported_at":"now"}"#),
        Err(DumpError::Malformed(reason)) if reason.contains("unknown field `exported_at`")
    ));
}

/// The sample line of `kind` as a JSON object, to be edited.
fn sample_object(kind: RecordKind) -> serde_json::Map<String, serde_json::Value> {
    let record = samples()
        .into_iter()
        .find(|record| record.kind() == kind)
        .unwrap();
    match serde_json::from_str(&record_line(&record).unwrap()).unwrap() {
        serde_json::Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

fn parse_object(object: &serde_json::Map<String, serde_json::Value>) -> Result<Entry, DumpError> {
    parse_line(&serde_json::Value::Object(object.clone()).to_string())
}

#[test]
fn unknown_and_missing_members_are_refused() {
    for kind in RecordKind::ALL {
        let mut object = sample_object(kind);
        object.insert("extra".into(), serde_json::Value::Bool(true));
        assert!(
            matches!(parse_object(&object), Err(DumpError::Malformed(reason)) if reason.contains("unknown field `extra`")),
            "{kind:?}"
        );
        let complete = sample_object(kind);
        // A ticket's category and a message's integer id are absent from
        // version 1 dumps.
        let optional = |member: &str| {
            (kind == RecordKind::Ticket && member == "category")
                || (kind == RecordKind::Message && member == "numeric_id")
        };
        for member in complete
            .keys()
            .filter(|member| *member != "type" && !optional(member))
        {
            let mut object = complete.clone();
            object.remove(member);
            assert!(
                matches!(parse_object(&object), Err(DumpError::Malformed(reason)) if reason.contains("missing field")),
                "{kind:?} without {member}"
            );
        }
    }
    let trailer = r#"{"type":"end","workspaces":1,"users":2,"api_keys":3,"tickets":4,"messages":5,"extra":0}"#;
    assert!(matches!(parse_line(trailer), Err(DumpError::Malformed(_))));
    assert!(matches!(
        parse_line(r#"{"type":"attachment","id":"x"}"#),
        Err(DumpError::Malformed(reason)) if reason.starts_with("unknown type \"attachment\"")
    ));
    assert!(matches!(
        parse_line(r#"{"id":"x"}"#),
        Err(DumpError::Malformed(reason)) if reason.contains("missing field `type`")
    ));
}

#[test]
fn values_have_one_spelling() {
    let edits: &[(RecordKind, &str, serde_json::Value)] = &[
        (
            RecordKind::Workspace,
            "id",
            "ws_01HXA3B4C5D6E7F8G9H0J1K2M3".into(),
        ),
        (RecordKind::Workspace, "id", WS.into()),
        (RecordKind::Workspace, "id", format!("usr_{WS}").into()),
        (RecordKind::Workspace, "numeric_id", 7.5.into()),
        (
            RecordKind::Workspace,
            "created_at",
            "2026-04-27T12:00:00Z".into(),
        ),
        (
            RecordKind::Workspace,
            "created_at",
            1_777_291_200_000_i64.into(),
        ),
        (RecordKind::User, "role", "admin".into()),
        (RecordKind::ApiKey, "secret_hash", "AB".repeat(32).into()),
        (RecordKind::ApiKey, "secret_hash", "ab".repeat(31).into()),
        (RecordKind::ApiKey, "scopes", serde_json::json!(["admin"])),
        (RecordKind::ApiKey, "scopes", "read:support".into()),
        (RecordKind::Ticket, "status", "Closed".into()),
        (RecordKind::Ticket, "priority", "critical".into()),
        (RecordKind::Ticket, "resolved_at", "yesterday".into()),
        (RecordKind::Message, "encrypted", 1.into()),
        (RecordKind::Message, "body_format", "html".into()),
        (RecordKind::Message, "body", serde_json::Value::Null),
    ];
    for (kind, member, value) in edits {
        let mut object = sample_object(*kind);
        object.insert((*member).into(), value.clone());
        assert!(
            matches!(parse_object(&object), Err(DumpError::Malformed(_))),
            "{kind:?}.{member} = {value}"
        );
    }
}

#[test]
fn errors_name_the_member_or_the_column() {
    let reason = |line: &str| match parse_line(line) {
        Err(DumpError::Malformed(reason)) => reason,
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        reason(r#"{"type":"user","id":12}"#),
        "id: invalid type: integer `12`, expected a usr_ id in lowercase"
    );
    assert_eq!(
        reason(r#"{"type":"end","workspaces":-1}"#),
        "workspaces: invalid value: integer `-1`, expected u64"
    );
    assert_eq!(
        reason(r#"{"type":"user","id":"usr_"#),
        "column 25: EOF while parsing a string"
    );
    assert_eq!(reason(r#"["user"]"#), "expected a JSON object");
}

#[test]
fn times_without_an_rfc_3339_form_are_not_written() {
    let mut record = samples().remove(0);
    if let Record::Workspace(workspace) = &mut record {
        workspace.created_at = Timestamp::from_millis(300_000_000_000_000);
    }
    assert!(matches!(
        record_line(&record),
        Err(DumpError::Unwritable(reason)) if reason.contains("RFC 3339")
    ));
}

#[test]
fn the_order_is_checked_and_counted() {
    let records = samples();
    let mut order = DumpOrder::default();
    for record in &records {
        order.accept(record).unwrap();
    }
    let counts = RecordCounts {
        workspaces: 1,
        users: 1,
        api_keys: 1,
        tickets: 1,
        messages: 1,
        uploads: 1,
        read_markers: 1,
    };
    assert_eq!(order.counts(), counts);
    assert_eq!(order.check_trailer(counts), Ok(()));
    let wrong = RecordCounts {
        messages: 2,
        ..counts
    };
    assert_eq!(
        order.check_trailer(wrong),
        Err(DumpError::CountsDiffer {
            trailer: Box::new(wrong),
            found: Box::new(counts)
        })
    );

    // Going back to an earlier kind, or repeating a key, is refused.
    let error = order.accept(&records[0]).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("a workspace record after upload records"),
        "{error}"
    );
    let error = order.accept(&records[6]).unwrap_err();
    assert!(error.to_string().contains("does not come after"), "{error}");

    // Messages go by (ticket, seq).
    let mut order = DumpOrder::default();
    let Record::Message(first) = records[4].clone() else {
        panic!("the fifth sample is a message");
    };
    let second = MessageRecord {
        seq: 2,
        id: MessageId::generate(),
        ..first.clone()
    };
    order.accept(&Record::Message(first.clone())).unwrap();
    order.accept(&Record::Message(second)).unwrap();
    assert!(order.accept(&Record::Message(first)).is_err());
}

#[test]
fn cursors_order_ids_as_their_text() {
    let mut ids: Vec<UserId> = (0..200).map(|_| UserId::generate()).collect();
    ids.sort();
    let texts: Vec<String> = ids.iter().map(UserId::key).collect();
    let mut sorted_texts = texts.clone();
    sorted_texts.sort();
    assert_eq!(texts, sorted_texts);
    assert!(ExportCursor::Workspace(i64::MAX) < ExportCursor::User(ids[0]));
    assert!(
        ExportCursor::Message(TicketId::from_key(WS).unwrap(), 9)
            < ExportCursor::Message(TicketId::from_key(TKT).unwrap(), 1)
    );
}
