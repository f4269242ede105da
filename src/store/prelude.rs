//! Every storage trait, for callers that use several roles of a
//! [`Store`]: `use crate::store::prelude::*;`.

pub use super::{
    DataKeyStore, IdempotencyStore, ProvisioningStore, Store, TicketStore, TransferStore,
    UploadStore,
};
