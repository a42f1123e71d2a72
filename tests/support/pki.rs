//! The test PKI shared by the TLS tests (Kafka, Elasticsearch): a fresh CA per test and a
//! server certificate for 127.0.0.1 and localhost, with rcgen.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A self-signed test CA (its PEM written to `<dir>/<name>-ca.pem`) and a server certificate
/// for 127.0.0.1 and localhost signed by it.
pub struct TestPki {
    pub ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    pub ca_path: PathBuf,
    pub server: rcgen::Certificate,
    pub server_key: rcgen::KeyPair,
}

pub fn test_pki(dir: &Path, name: &str) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("oxibeat test CA {name}"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params")
        .signed_by(&server_key, &ca)
        .expect("server certificate");
    let ca_path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    TestPki {
        ca,
        ca_path,
        server,
        server_key,
    }
}

impl TestPki {
    /// The server side of TLS; with `client_auth`, a client certificate from this CA is required.
    pub fn server_config(&self, client_auth: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(self.ca.der().clone())
                .expect("CA as a trust anchor");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.server_key.serialize_der().into());
        Arc::new(
            builder
                .with_single_cert(vec![self.server.der().clone()], key)
                .expect("server TLS config"),
        )
    }
}

/// A test CA (PEM at the returned path) and a server configuration with its certificate.
pub fn test_ca(dir: &Path, name: &str) -> (PathBuf, Arc<rustls::ServerConfig>) {
    let pki = test_pki(dir, name);
    let config = pki.server_config(false);
    (pki.ca_path, config)
}
