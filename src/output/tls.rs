//! `ssl.*` settings shared by every output (and `setup`), with Filebeat's option names, and
//! the rustls client configuration built from them for the outputs that speak TLS themselves.
//! (The Kafka output maps the same settings onto librdkafka's OpenSSL properties instead.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};

use crate::config::Secret;

fn yes() -> bool {
    true
}

/// How the server's certificate is checked (Filebeat's `ssl.verification_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationMode {
    /// Chain to a trusted CA and host name (the default).
    #[default]
    Full,
    /// As `full`. (Filebeat's `strict` also refuses a certificate without SANs; rustls never
    /// falls back to the common name, so `full` is already that strict here.)
    Strict,
    /// Chain to a trusted CA, any host name.
    Certificate,
    /// Nothing is checked: for tests only (the connection is encrypted, not authenticated).
    None,
}

/// `ssl.*`: present means enabled unless `enabled = false`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SslConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// PEM files with the CAs to trust (in addition to the built-in public roots).
    #[serde(default)]
    pub certificate_authorities: Vec<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with `key`.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub key_passphrase: Option<Secret>,
    #[serde(default)]
    pub verification_mode: VerificationMode,
}

impl Default for SslConfig {
    fn default() -> Self {
        SslConfig {
            enabled: true,
            certificate_authorities: Vec::new(),
            certificate: None,
            key: None,
            key_passphrase: None,
            verification_mode: VerificationMode::Full,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {path}: {reason}; fix the path or the file's permissions")]
    Read {
        key: String,
        path: String,
        reason: String,
    },
    #[error("{key}: {path} holds no {what} in PEM format (-----BEGIN ...-----)")]
    Empty {
        key: String,
        path: String,
        what: &'static str,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl SslConfig {
    /// Check at load time that every file named exists and parses (key path `prefix`.ssl.*).
    pub fn validate(&self, prefix: &str) -> Result<(), TlsError> {
        if self.enabled {
            client_config(self, prefix).map(|_| ())
        } else {
            Ok(())
        }
    }
}

impl SslConfig {
    /// For outputs whose TLS library reads the files itself (Kafka: librdkafka, which also
    /// takes encrypted keys): every file named exists, is a readable regular file, and the
    /// certificates hold PEM certificates; `certificate` and `key` come together.
    pub fn check_files(&self, prefix: &str) -> Result<(), TlsError> {
        for (i, ca) in self.certificate_authorities.iter().enumerate() {
            read_certs(ca, &format!("{prefix}.ssl.certificate_authorities[{i}]"))?;
        }
        match (&self.certificate, &self.key) {
            (None, None) => Ok(()),
            (Some(cert), Some(key)) => {
                read_certs(cert, &format!("{prefix}.ssl.certificate"))?;
                read_bounded(key, &format!("{prefix}.ssl.key")).map(|_| ())
            }
            _ => Err(TlsError::Invalid {
                key: format!("{prefix}.ssl"),
                message: "set both certificate and key for a client certificate, or neither".into(),
            }),
        }
    }
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_bounded(path, key)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid {
            key: key.into(),
            message: format!("{}: not a valid PEM certificate ({e})", path.display()),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            key: key.into(),
            path: path.display().to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Certificates and keys are small: refuse anything that is not a regular file of sane size.
fn read_bounded(path: &Path, key: &str) -> Result<Vec<u8>, TlsError> {
    const MAX: u64 = 4 << 20;
    let err = |reason: String| TlsError::Read {
        key: key.into(),
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.len() > MAX {
        return Err(err(format!("larger than {MAX} bytes")));
    }
    std::fs::read(path).map_err(|e| err(e.to_string()))
}

/// The rustls client configuration for `ssl` (errors name `prefix`.ssl.<key>).
pub fn client_config(ssl: &SslConfig, prefix: &str) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for (i, ca) in ssl.certificate_authorities.iter().enumerate() {
        let key = format!("{prefix}.ssl.certificate_authorities[{i}]");
        for cert in read_certs(ca, &key)? {
            roots.add(cert).map_err(|e| TlsError::Invalid {
                key: key.clone(),
                message: format!("{}: not a usable CA certificate ({e})", ca.display()),
            })?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid {
            key: format!("{prefix}.ssl"),
            message: e.to_string(),
        })?;
    let verifier: Arc<dyn ServerCertVerifier> = match ssl.verification_mode {
        VerificationMode::None => Arc::new(NoVerification(provider.clone())),
        mode => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Invalid {
                    key: format!("{prefix}.ssl.certificate_authorities"),
                    message: e.to_string(),
                })?;
            if mode == VerificationMode::Certificate {
                Arc::new(AnyHostName(webpki))
            } else {
                webpki
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&ssl.certificate, &ssl.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key_path)) => {
            let certs = read_certs(cert, &format!("{prefix}.ssl.certificate"))?;
            let kkey = format!("{prefix}.ssl.key");
            let bytes = read_bounded(key_path, &kkey)?;
            if ssl.key_passphrase.is_some()
                || bytes.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED")
            {
                return Err(TlsError::Invalid {
                    key: kkey,
                    message: format!(
                        "{}: encrypted private keys are not supported by this output; decrypt it \
                         (openssl pkcs8 -topk8 -nocrypt -in KEY -out key.pem) and protect the file \
                         with its permissions instead",
                        key_path.display()
                    ),
                });
            }
            let pkey = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Invalid {
                key: kkey.clone(),
                message: format!("{}: no usable private key in PEM ({e})", key_path.display()),
            })?;
            builder
                .with_client_auth_cert(certs, pkey)
                .map_err(|e| TlsError::Invalid {
                    key: kkey,
                    message: format!("certificate and key do not go together ({e})"),
                })
        }
        _ => Err(TlsError::Invalid {
            key: format!("{prefix}.ssl"),
            message: "set both certificate and key for a client certificate, or neither".into(),
        }),
    }
}

/// `verification_mode = "certificate"`: the chain must lead to a trusted CA; the name is not
/// checked.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
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

/// `verification_mode = "none"`: any certificate; the handshake signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_key() {
        let ssl = SslConfig {
            certificate_authorities: vec!["/nonexistent/ca.pem".into()],
            ..Default::default()
        };
        let e = client_config(&ssl, "output.logstash")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("output.logstash.ssl.certificate_authorities[0]")
                && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let ssl = SslConfig {
            certificate: Some("/x.pem".into()),
            ..Default::default()
        };
        let e = client_config(&ssl, "output.x").unwrap_err().to_string();
        assert!(e.contains("both certificate and key"), "{e}");
    }

    #[test]
    fn default_builds_with_public_roots() {
        assert!(client_config(&SslConfig::default(), "output.x").is_ok());
        let ssl = SslConfig {
            verification_mode: VerificationMode::None,
            ..Default::default()
        };
        assert!(client_config(&ssl, "output.x").is_ok());
    }

    #[test]
    fn not_a_regular_file() {
        let ssl = SslConfig {
            certificate_authorities: vec!["/dev/zero".into()],
            ..Default::default()
        };
        let e = client_config(&ssl, "output.x").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
