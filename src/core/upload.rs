//! Uploads: files a user sends before attaching them to a message. What
//! the file may be ([`media`]), which uploads a message may attach
//! ([`attach`]), how a download names it ([`disposition`]), and the
//! pre-signed URLs that let a client send one without its API key
//! ([`signed_url`]). No I/O here: the bytes live in a
//! blob store, the records in the [`crate::store`].

pub mod attach;
pub mod disposition;
pub mod media;
pub mod signed_url;
