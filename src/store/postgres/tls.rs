//! TLS to PostgreSQL, as libpq's `sslmode` and `sslrootcert` in the
//! database URL ask for it, over rustls.
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default) | if the server offers it | not checked |
//! | `require` | always | not checked |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA, for the URL's host |
//!
//! The trusted CAs are those of the PEM file `sslrootcert`, or the
//! system's (`sslrootcert=system`, or none given). tokio-postgres knows
//! only the first three modes and not `sslrootcert`, so both are taken out
//! of the URL here before it reads the rest.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, unverified.
    #[default]
    Prefer,
    /// TLS, unverified.
    Require,
    /// TLS, the certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, the certificate signed by a trusted CA and for the host.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres is told: whether TLS must be used.
    pub fn wire(self) -> WireMode {
        match self {
            Self::Disable => WireMode::Disable,
            Self::Prefer => WireMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => WireMode::Require,
        }
    }
}

/// The TLS settings of a database URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of trusted CAs; `None` for the system's.
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of the query of `url`; returns
/// the URL without them, and what they say.
///
/// # Errors
/// An `sslmode` libpq does not know, or one of them given twice.
pub fn split_url(url: &str) -> Result<(String, TlsSettings), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), TlsSettings::default()));
    };
    let mut settings = TlsSettings::default();
    let (mut mode, mut root) = (None, None);
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "sslmode" if mode.is_none() => mode = Some(percent_decoded(value)),
            "sslrootcert" if root.is_none() => root = Some(percent_decoded(value)),
            "sslmode" | "sslrootcert" => return Err(format!("{name} is given twice")),
            _ => rest.push(pair),
        }
    }
    if let Some(mode) = mode {
        settings.mode = SslMode::parse(&mode).ok_or_else(|| {
            format!(
                "sslmode={mode:?} is not one of disable, prefer, require, verify-ca, verify-full"
            )
        })?;
    }
    settings.root_cert = root.filter(|root| root != "system").map(PathBuf::from);
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, settings))
}

/// `%XX` escapes decoded (a file path in a URL may carry them).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls connector for `settings` (also for `disable`, which never
/// uses it).
///
/// # Errors
/// The root certificate file cannot be read or holds no certificate, or
/// the system's CAs cannot be read.
pub fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS: {error}"))?;
    let config = match settings.mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(trusted_roots(settings)?);
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots,
                Arc::clone(&provider),
            )
            .build()
            .map_err(|error| format!("TLS: {error}"))?;
            if settings.mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyHost(verifier)))
                    .with_no_client_auth()
            }
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The CAs `settings` trusts: its `sslrootcert` file's, or the system's.
fn trusted_roots(settings: &TlsSettings) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match &settings.root_cert {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|error| format!("sslrootcert {}: {error}", path.display()))?;
            for certificate in certificates {
                let certificate = certificate
                    .map_err(|error| format!("sslrootcert {}: {error}", path.display()))?;
                roots
                    .add(certificate)
                    .map_err(|error| format!("sslrootcert {}: {error}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "sslrootcert {} holds no PEM certificate",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "no system CA certificates were found for sslmode=verify-ca/verify-full: \
                     give sslrootcert=PATH"
                        .into(),
                );
            }
        }
    }
    Ok(roots)
}

/// `require` and `prefer`: the session is encrypted, its certificate not
/// checked (as libpq does), but the handshake's signatures still are.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA, for whatever host.
#[derive(Debug)]
struct AnyHost(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHost {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, settings) = split_url(
            "postgres://u@db/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .expect("valid");
        assert_eq!(url, "postgres://u@db/x?application_name=a");
        assert_eq!(
            settings,
            TlsSettings {
                mode: SslMode::VerifyFull,
                root_cert: Some(PathBuf::from("/etc/ca.pem")),
            }
        );
        let (url, settings) = split_url("postgres://u@db/x").expect("valid");
        assert_eq!(
            (url.as_str(), settings),
            ("postgres://u@db/x", TlsSettings::default())
        );
        let (url, settings) =
            split_url("postgres://u@db/x?sslmode=require&sslrootcert=system").expect("valid");
        assert_eq!(url, "postgres://u@db/x");
        assert_eq!(settings.mode, SslMode::Require);
        assert_eq!(settings.root_cert, None);
        assert!(
            split_url("postgres://u@db/x?sslmode=allow")
                .expect_err("refused")
                .contains("not one of disable, prefer, require, verify-ca, verify-full")
        );
        assert!(split_url("postgres://u@db/x?sslmode=require&sslmode=disable").is_err());
        assert_eq!(SslMode::VerifyCa.wire(), WireMode::Require);
        assert_eq!(SslMode::Prefer.wire(), WireMode::Prefer);
    }
}
