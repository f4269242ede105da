//! The content keys of uploads stored sealed, for [`crate::service::Uploads`]:
//! each upload's own key, sealed under the key file's newest data key when
//! the upload is made, and opened with whichever key sealed it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::core::crypto::{self, ContentKey, CryptoError};
use crate::core::id::UploadId;
use crate::encryption::Encryption;
use crate::service::{ContentKeys, ServiceError};
use crate::store::Store;

/// The content keys of a running server, under its key file's data keys.
pub struct ContentKeyring {
    encryption: Arc<Encryption>,
    /// The store whose registry a re-read key file is checked against.
    store: Arc<dyn Store>,
}

impl ContentKeyring {
    /// Content keys under `encryption`'s data keys, re-read against
    /// `store` when a key is missing or refused.
    pub fn new(encryption: Arc<Encryption>, store: Arc<dyn Store>) -> Self {
        Self { encryption, store }
    }
}

#[async_trait]
impl ContentKeys for ContentKeyring {
    fn generate(&self, upload: UploadId) -> Result<(ContentKey, String), ServiceError> {
        let keyring = self.encryption.keyring();
        let failed = |error: CryptoError| {
            ServiceError::Internal(format!("cannot seal the content key of {upload}: {error}"))
        };
        let key = ContentKey::generate().map_err(failed)?;
        let sealed = crypto::seal_content_key(keyring.current(), upload, &key).map_err(failed)?;
        Ok((key, sealed))
    }

    async fn open(&self, upload: UploadId, sealed: &str) -> Result<ContentKey, ServiceError> {
        let opened = match crypto::open_content_key(&self.encryption.keyring(), upload, sealed) {
            Err(CryptoError::UnknownKey(_)) => {
                // Perhaps sealed by a node that has a newer key file.
                self.refresh().await;
                crypto::open_content_key(&self.encryption.keyring(), upload, sealed)
            }
            other => other,
        };
        opened.map_err(|error| match error {
            CryptoError::UnknownKey(key) => ServiceError::Unavailable(format!(
                "upload {upload} is sealed with key {key}, which the encryption key file {} \
                 lacks: copy this database's key file here",
                self.encryption.key_file().display()
            )),
            other => ServiceError::Internal(format!(
                "the content key of upload {upload} cannot be opened: {other}"
            )),
        })
    }

    async fn refresh(&self) {
        self.encryption.reload(self.store.as_ref()).await;
    }
}
