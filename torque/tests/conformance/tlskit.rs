//! Certificates made fresh for each test with rcgen (no committed keys): a CA,
//! certificates it issues, and TLS configurations built from them.

#![allow(dead_code)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use torque::tls::{
    Identity, TlsClientConfig, TlsClientOptions, TlsServerConfig, TlsServerOptions, TrustRoots,
};

/// A certificate authority that issues leaf certificates.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub fn identity(&self) -> Identity {
        Identity::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).expect("identity")
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A certificate for `names` (DNS names or IP addresses), valid now.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    /// A certificate for `names` that expired yesterday.
    pub fn expired_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |params| {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    fn leaf_with(&self, names: &[&str], adjust: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    pub fn roots(&self) -> TrustRoots {
        TrustRoots::from_pem(self.pem.as_bytes()).expect("roots")
    }
}

/// A CA and a server certificate for `localhost` and 127.0.0.1.
pub struct Pki {
    pub ca: Ca,
    pub server: Leaf,
}

impl Pki {
    pub fn new() -> Pki {
        let ca = Ca::new("Torque Test CA");
        let server = ca.leaf(&["localhost", "127.0.0.1"]);
        Pki { ca, server }
    }

    pub fn server_options(&self) -> TlsServerOptions {
        TlsServerOptions::new(self.server.identity())
    }

    pub fn server_config(&self) -> TlsServerConfig {
        self.server_options().build().expect("server config")
    }

    pub fn client_options(&self) -> TlsClientOptions {
        TlsClientOptions::new().trust_roots(self.ca.roots())
    }

    pub fn client_config(&self) -> TlsClientConfig {
        self.client_options().build().expect("client config")
    }
}
