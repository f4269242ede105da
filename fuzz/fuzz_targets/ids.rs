//! Ids, ticket references and tokens: parsing never panics, and whatever
//! parses prints back to an equivalent value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticketd::core::id::{MessageId, TicketId};
use ticketd::core::ticket::TicketRef;
use ticketd::core::token::ApiToken;

fuzz_target!(|text: &str| {
    if let Some(reference) = TicketRef::parse(text) {
        let printed = match reference {
            TicketRef::Id(id) => id.to_string(),
            TicketRef::Number(number) => number.to_string(),
        };
        assert_eq!(TicketRef::parse(&printed), Some(reference));
    }
    if let Some(id) = MessageId::parse(text) {
        assert_eq!(MessageId::parse(&id.to_string()), Some(id));
    }
    if let Some(id) = TicketId::from_key(text) {
        assert_eq!(TicketId::from_key(&id.key()), Some(id));
    }
    if let Some(token) = ApiToken::parse(text) {
        assert_eq!(ApiToken::parse(&token.expose()), Some(token));
    }
});
