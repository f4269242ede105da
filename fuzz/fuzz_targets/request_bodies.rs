//! Request bodies: any bytes either parse into a valid request or yield a
//! client error; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticketd::api::messages::read_reply;
use ticketd::api::tickets::read_create_ticket;
use ticketd::core::text::TextLimits;

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    let limits = TextLimits::PUBLISHED;
    for outcome in [
        read_reply(value.clone(), limits).map(|_| ()),
        read_create_ticket(value, limits).map(|_| ()),
    ] {
        if let Err(error) = outcome {
            assert!(error.code().status().is_client_error(), "{:?}", error.code());
        }
    }
});
