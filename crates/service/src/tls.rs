//! TLS for the EMKS's interface: the server's mutual-TLS configuration, the
//! client agent the EESE and the HSS use, and who a peer is (from its
//! certificate's common name, see [`crate::pki`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::ServiceError;
use crate::pki::CA_CERT;

/// Who a client is, as its certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// The HSS: provisions roots.
    Hss,
    /// The EESE of an enterprise: fetches its UEs' roots, RANDs, changes.
    Eese(String),
    /// A certificate of the CA that names no role here.
    Other(String),
}

impl Peer {
    /// Reads the role from the leaf certificate's common name.
    #[must_use]
    pub fn from_cert(der: &[u8]) -> Peer {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return Peer::Other(String::new());
        };
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("")
            .to_string();
        match cn.split_once(':') {
            None if cn == "hss" => Peer::Hss,
            Some(("eese", e)) if crate::pki::valid_enterprise(e) => Peer::Eese(e.to_string()),
            _ => Peer::Other(cn),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ServiceError> {
    std::fs::read(path).map_err(|e| ServiceError::Tls(format!("{}: {e}", path.display())))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The EMKS's server configuration from `dir`: `emks.crt`, `emks.key`, and
/// client certificates required, signed by `ca.crt`.
///
/// # Errors
/// [`ServiceError::Tls`] naming the file that is missing or bad.
pub fn server_config(dir: &Path, stem: &str) -> Result<Arc<rustls::ServerConfig>, ServiceError> {
    let ca = dir.join(CA_CERT);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read(&ca)?) {
        let c = c.map_err(|e| ServiceError::Tls(format!("{}: {e}", ca.display())))?;
        roots
            .add(c)
            .map_err(|e| ServiceError::Tls(format!("{}: {e}", ca.display())))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| ServiceError::Tls(format!("client verifier: {e}")))?;
    let (chain, key) = identity(dir, stem)?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ServiceError::Tls(format!("{stem}.crt/{stem}.key: {e}")))?;
    Ok(Arc::new(cfg))
}

/// A server configuration from `dir` that asks for no client certificate:
/// `<stem>.crt` and `<stem>.key` (the admin interface, whose clients show a
/// bearer token instead).
///
/// # Errors
/// [`ServiceError::Tls`] naming the file that is missing or bad.
pub fn server_config_no_client_auth(
    dir: &Path,
    stem: &str,
) -> Result<Arc<rustls::ServerConfig>, ServiceError> {
    let (chain, key) = identity(dir, stem)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ServiceError::Tls(format!("{stem}.crt/{stem}.key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn identity(
    dir: &Path,
    stem: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServiceError> {
    let cp = dir.join(format!("{stem}.crt"));
    let kp = dir.join(format!("{stem}.key"));
    let chain = CertificateDer::pem_slice_iter(&read(&cp)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", cp.display())))?;
    if chain.is_empty() {
        return Err(ServiceError::Tls(format!(
            "{}: no certificate",
            cp.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&kp)?)
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", kp.display())))?;
    Ok((chain, key))
}

/// A blocking HTTPS client that trusts only `dir`'s `ca.crt` and presents
/// `<stem>.crt`; HTTP error statuses are returned, not raised.
///
/// # Errors
/// [`ServiceError::Tls`] naming the file that is missing or bad.
pub fn client_agent(
    dir: &Path,
    stem: &str,
    timeout: Duration,
) -> Result<ureq::Agent, ServiceError> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let ca_path = dir.join(CA_CERT);
    let ca = Certificate::from_pem(&read(&ca_path)?)
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", ca_path.display())))?;
    let cp = dir.join(format!("{stem}.crt"));
    let kp = dir.join(format!("{stem}.key"));
    let cert = Certificate::from_pem(&read(&cp)?)
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", cp.display())))?;
    let key = PrivateKey::from_pem(&read(&kp)?)
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", kp.display())))?;
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
        .client_cert(Some(ClientCert::new_with_certs(&[cert], key)))
        .build();
    Ok(plain_agent_config(timeout).tls_config(tls).build().into())
}

/// A blocking HTTPS client that trusts only `dir`'s `ca.crt` and presents
/// no certificate (the admin client); HTTP error statuses are returned.
///
/// # Errors
/// [`ServiceError::Tls`] naming the file that is missing or bad.
pub fn ca_agent(dir: &Path, timeout: Duration) -> Result<ureq::Agent, ServiceError> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let ca_path = dir.join(CA_CERT);
    let ca = Certificate::from_pem(&read(&ca_path)?)
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", ca_path.display())))?;
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
        .build();
    Ok(plain_agent_config(timeout).tls_config(tls).build().into())
}

/// A plain client configuration: this timeout, statuses returned.
pub(crate) fn plain_agent_config(
    timeout: Duration,
) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_response_header_size(16 << 10)
}

/// A plain HTTP client (admin interface, webhook).
#[must_use]
pub fn plain_agent(timeout: Duration) -> ureq::Agent {
    plain_agent_config(timeout).build().into()
}
