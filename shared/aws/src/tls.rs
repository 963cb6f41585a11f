//! Whom the functions' HTTPS clients trust.
//!
//! - AWS endpoints: every one a function calls presents a certificate from Amazon Trust
//!   Services, so the five roots in `amazon-roots.pem` are all the SDK clients need. The
//!   SDK's own default client trusts the machine's whole store instead: it reads and parses
//!   every certificate under /etc/ssl (about 150) in the first moments of a cold start, to use
//!   five of them.
//! - Anything else on the internet (the token issuer, the payment provider, the channels):
//!   Mozilla's root CAs compiled into the binary (`webpki-roots`), the same CAs as Lambda's
//!   own bundle without reading ~150 files at start.
//! - An endpoint override (moto, a local emulator): the machine's store, since such an
//!   endpoint may present any certificate the machine was told to trust; none at all for a
//!   plain `http://` override, where no TLS is spoken ([`Trust::for_endpoint`]), so that a
//!   function run against moto does not spend its first milliseconds reading ~150 files.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Amazon Trust Services' root CAs (PEM).
pub const AMAZON_ROOTS: &[u8] = include_bytes!("amazon-roots.pem");

/// Whom a client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Amazon Trust Services' five roots: AWS endpoints.
    Amazon,
    /// Mozilla's roots, compiled in: public endpoints.
    Mozilla,
    /// The machine's store: endpoint overrides.
    Machine,
    /// No root at all: a plain `http://` endpoint override, to which no TLS connection is
    /// made (one would fail, as it should: nothing was meant to be trusted).
    Nothing,
}

impl Trust {
    /// Whom an SDK client pointed at `endpoint` (an override) trusts: the machine's store
    /// for `https://`, nothing for plain `http://`.
    pub fn for_endpoint(endpoint: &str) -> Trust {
        let plain = endpoint
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        if plain {
            Trust::Nothing
        } else {
            Trust::Machine
        }
    }

    /// The root store.
    pub fn roots(self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        match self {
            Trust::Amazon => {
                let certs = CertificateDer::pem_slice_iter(AMAZON_ROOTS).filter_map(Result::ok);
                store.add_parsable_certificates(certs);
            }
            Trust::Mozilla => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Trust::Machine => {
                let found = rustls_native_certs::load_native_certs();
                for error in &found.errors {
                    tracing::warn!(%error, "a certificate of the machine's store was not read");
                }
                store.add_parsable_certificates(found.certs);
            }
            Trust::Nothing => {}
        }
        store
    }

    /// A TLS client configuration on aws-lc-rs (the one crypto library of the functions)
    /// trusting these roots (no ALPN: HTTP/1.1 only, which is what the clients speak).
    pub fn client_config(self) -> ClientConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_root_certificates(self.roots())
            .with_no_client_auth()
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::{AMAZON_ROOTS, Trust};

    #[test]
    fn a_plain_http_override_trusts_nothing_and_an_https_one_the_machine() {
        assert_eq!(Trust::for_endpoint("http://127.0.0.1:5000"), Trust::Nothing);
        assert_eq!(Trust::for_endpoint("HTTP://moto:5000"), Trust::Nothing);
        assert_eq!(
            Trust::for_endpoint("https://emulator.local"),
            Trust::Machine
        );
        assert_eq!(Trust::for_endpoint("localhost:4566"), Trust::Machine);
        assert!(Trust::Nothing.roots().is_empty());
    }

    #[test]
    fn the_amazon_roots_are_five_certificates_that_parse() {
        let certs: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(AMAZON_ROOTS)
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        assert_eq!(
            Trust::Amazon.roots().len(),
            5,
            "each is a usable trust anchor"
        );
    }

    #[test]
    fn mozilla_roots_are_compiled_in() {
        assert!(Trust::Mozilla.roots().len() > 100);
    }
}
