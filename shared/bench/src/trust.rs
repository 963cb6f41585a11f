//! What a TLS client pays at start for its root certificates, for the three ways a function
//! can trust: the machine's store (read and parsed from /etc/ssl, what the SDK's default
//! client and `with_native_roots` do), Mozilla's roots compiled in (`webpki-roots`, the
//! functions' outbound HTTPS), and the five Amazon roots (the SDK clients, see
//! `bazaar_aws::tls`).

use std::time::{Duration, Instant};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Builds a root store the way `how` says; returns how many roots it holds.
pub fn build(how: &str) -> usize {
    let mut store = RootCertStore::empty();
    match how {
        "system store" => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
        "webpki-roots" => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        "amazon roots" => {
            let certs = CertificateDer::pem_slice_iter(bazaar_aws::tls::AMAZON_ROOTS)
                .filter_map(Result::ok);
            store.add_parsable_certificates(certs);
        }
        other => panic!("no trust store {other:?}"),
    }
    store.len()
}

/// The median time of `runs` builds, and the root count.
pub fn measure(how: &str, runs: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut roots = 0;
    for _ in 0..runs {
        let started = Instant::now();
        roots = std::hint::black_box(build(how));
        times.push(started.elapsed());
    }
    times.sort();
    (times[runs / 2], roots)
}
