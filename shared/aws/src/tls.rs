//! The SDK clients' HTTP client: rustls on aws-lc-rs, trusting only Amazon's root CAs.
//!
//! Every AWS endpoint a function calls presents a certificate from Amazon Trust Services,
//! so the five roots in `amazon-roots.pem` are all it needs. The SDK's default client
//! trusts the machine's whole store instead: it reads and parses every certificate under
//! /etc/ssl (about 150) in the first moments of a cold start, to use five of them. With an
//! endpoint override (moto, a local emulator) the default client is kept, since such an
//! endpoint may present any certificate the machine trusts.

use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Amazon Trust Services' root CAs (PEM).
pub const AMAZON_ROOTS: &[u8] = include_bytes!("amazon-roots.pem");

/// An HTTPS client for AWS endpoints that trusts Amazon's roots only.
pub fn amazon_https_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_ROOTS);
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context from a fixed trust store");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::AMAZON_ROOTS;

    #[test]
    fn the_amazon_roots_are_five_certificates_that_parse() {
        let certs: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(AMAZON_ROOTS)
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        let mut store = aws_smithy_http_client_roots();
        let (added, failed) = store.add_parsable_certificates(certs);
        assert_eq!((added, failed), (5, 0), "each is a usable trust anchor");
    }

    /// An empty rustls root store, as the SDK's client builds it from the trust store.
    fn aws_smithy_http_client_roots() -> rustls::RootCertStore {
        rustls::RootCertStore::empty()
    }
}
