//! A throw-away PKI for TLS tests: root CA -> intermediate CA -> leaves.
//!
//! ```ignore
//! let pki = Pki::new();
//! let leaf = pki.localhost_leaf();          // localhost + 127.0.0.1, signed by the intermediate
//! let ca_file = pki.ca_file();              // root PEM on disk, for `tls_config.ca_file`
//! ```
//!
//! Every certificate's times are whole seconds, so expectations such as
//! `probe_ssl_earliest_cert_expiry` can be compared exactly.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

pub const ROOT_CN: &str = "Test Root CA";
pub const INTERMEDIATE_CN: &str = "Test Intermediate";
pub const ORG: &str = "TestOrg";
pub const LEAF_ORG: &str = "Leaf Org";

/// Validity window of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// Valid from one hour ago for `days` days.
    pub fn days(days: i64) -> Self {
        let now = now();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }

    /// Expired yesterday (valid for the 30 days before that).
    pub fn expired() -> Self {
        let now = now();
        Self {
            not_before: now - Duration::days(31),
            not_after: now - Duration::days(1),
        }
    }

    /// Becomes valid tomorrow.
    pub fn not_yet_valid() -> Self {
        let now = now();
        Self {
            not_before: now + Duration::days(1),
            not_after: now + Duration::days(31),
        }
    }

    pub fn between(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        Self {
            not_before: not_before.replace_nanosecond(0).unwrap(),
            not_after: not_after.replace_nanosecond(0).unwrap(),
        }
    }
}

impl Default for Validity {
    fn default() -> Self {
        Self::days(90)
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

/// A leaf certificate with its key and the chain a server should send.
#[derive(Debug)]
pub struct Leaf {
    /// The leaf alone.
    pub cert: CertificateDer<'static>,
    /// What the server presents: the leaf first, then intermediates (if any).
    pub chain: Vec<CertificateDer<'static>>,
    /// NotAfter of each certificate in `chain`, Unix seconds, same order.
    pub chain_not_after: Vec<i64>,
    pub validity: Validity,
    /// Serial number, big-endian bytes as encoded in the certificate.
    pub serial: Vec<u8>,
    cert_pem: String,
    chain_pem: String,
    key_pem: String,
    key_der: Vec<u8>,
}

impl Leaf {
    /// The private key (PKCS#8), for a rustls server config.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The leaf certificate alone, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The served chain (leaf first), PEM.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// Lowercase hex SHA-256 of the leaf DER (blackbox's `fingerprint_sha256`).
    pub fn fingerprint_sha256(&self) -> String {
        hex(&Sha256::digest(self.cert.as_ref()))
    }

    /// The serial as blackbox's `serialnumber` label shows it: the minimal
    /// big-endian bytes, two lowercase hex digits each.
    pub fn serial_hex(&self) -> String {
        let start = self
            .serial
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(self.serial.len().saturating_sub(1));
        hex(&self.serial[start..])
    }

    /// Leaf NotAfter, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.validity.not_after.unix_timestamp()
    }

    /// Leaf NotBefore, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.validity.not_before.unix_timestamp()
    }

    /// Minimum NotAfter over the presented certificates
    /// (blackbox's `probe_ssl_earliest_cert_expiry`).
    pub fn earliest_expiry(&self) -> i64 {
        *self.chain_not_after.iter().min().expect("non-empty chain")
    }

    /// Writes `<stem>.crt` (the served chain) and `<stem>.key` into `dir`.
    pub fn write_to(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.chain_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }
}

/// Root CA + intermediate CA, and a temp dir holding the root PEM.
pub struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
    root_validity: Validity,
    intermediate_validity: Validity,
    dir: TempDir,
    ca_file: PathBuf,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// Root "CN=Test Root CA,O=TestOrg" (10 years) and intermediate
    /// "CN=Test Intermediate,O=TestOrg" (5 years) signed by it.
    pub fn new() -> Self {
        let root_validity = Validity::days(3650);
        let mut params = ca_params(ROOT_CN, root_validity);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("root key"))
            .expect("root CA");

        let intermediate_validity = Validity::days(1825);
        let mut params = ca_params(INTERMEDIATE_CN, intermediate_validity);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.use_authority_key_identifier_extension = true;
        let intermediate = CertifiedIssuer::signed_by(
            params,
            KeyPair::generate().expect("intermediate key"),
            &root,
        )
        .expect("intermediate CA");

        let dir = tempfile::Builder::new()
            .prefix("pki-")
            .tempdir()
            .expect("temp dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, root.pem()).expect("write ca.pem");
        Self {
            root,
            intermediate,
            root_validity,
            intermediate_validity,
            dir,
            ca_file,
        }
    }

    /// Root CA certificate, PEM (the trust anchor for `ca_file`).
    pub fn ca_pem(&self) -> String {
        self.root.pem()
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.root.der().clone()
    }

    /// Path of the root CA PEM inside the PKI's temp dir.
    pub fn ca_file(&self) -> PathBuf {
        self.ca_file.clone()
    }

    pub fn intermediate_pem(&self) -> String {
        self.intermediate.pem()
    }

    pub fn intermediate_der(&self) -> CertificateDer<'static> {
        self.intermediate.der().clone()
    }

    pub fn root_not_after(&self) -> i64 {
        self.root_validity.not_after.unix_timestamp()
    }

    pub fn intermediate_not_after(&self) -> i64 {
        self.intermediate_validity.not_after.unix_timestamp()
    }

    /// The PKI's temp dir (deleted when the `Pki` is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `<dir>/<name>` and returns the path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// A leaf for `dns` names and `ips`, signed by the intermediate; the
    /// served chain is leaf + intermediate. Subject
    /// `CN=<first name>,O=Leaf Org,C=US`.
    pub fn leaf(&self, dns: &[&str], ips: &[IpAddr], validity: Validity) -> Leaf {
        self.leaf_with(dns, ips, validity, |_| {})
    }

    /// Like [`Pki::leaf`], with a hook to change the parameters (subject,
    /// serial, extensions ...) before signing.
    pub fn leaf_with(
        &self,
        dns: &[&str],
        ips: &[IpAddr],
        validity: Validity,
        customize: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let mut params = leaf_params(dns, ips, validity);
        customize(&mut params);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.intermediate)
            .expect("sign leaf");
        let mut leaf = Leaf {
            cert: cert.der().clone(),
            chain: vec![cert.der().clone()],
            chain_not_after: vec![params.not_after.unix_timestamp()],
            validity: Validity {
                not_before: params.not_before,
                not_after: params.not_after,
            },
            serial: serial_of(&params),
            cert_pem: cert.pem(),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        };
        leaf.chain.push(self.intermediate.der().clone());
        leaf.chain_not_after
            .push(self.intermediate_validity.not_after.unix_timestamp());
        leaf.chain_pem.push_str(&self.intermediate.pem());
        leaf
    }

    /// `n` self-signed CA certificates named like the intermediate (same
    /// subject, other keys): issuers a verifier finds by name and must try
    /// and reject one signature at a time.
    pub fn decoy_intermediates(&self, n: usize) -> Vec<CertificateDer<'static>> {
        (0..n)
            .map(|_| {
                let mut params = ca_params(INTERMEDIATE_CN, self.intermediate_validity);
                params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                let key = KeyPair::generate().expect("decoy key");
                params.self_signed(&key).expect("decoy CA").der().clone()
            })
            .collect()
    }

    /// `localhost` + `127.0.0.1`, valid for 90 days, chain served.
    pub fn localhost_leaf(&self) -> Leaf {
        self.leaf(&["localhost"], &[localhost_ip()], Validity::default())
    }

    /// `localhost` + `127.0.0.1`, expired yesterday.
    pub fn expired_leaf(&self) -> Leaf {
        self.leaf(&["localhost"], &[localhost_ip()], Validity::expired())
    }

    /// `localhost` + `127.0.0.1`, valid from tomorrow.
    pub fn not_yet_valid_leaf(&self) -> Leaf {
        self.leaf(&["localhost"], &[localhost_ip()], Validity::not_yet_valid())
    }

    /// Valid and trusted, but only for `wrong.example.test` (no IP SAN).
    pub fn wrong_host_leaf(&self) -> Leaf {
        self.leaf(&["wrong.example.test"], &[], Validity::default())
    }

    /// `localhost` + `127.0.0.1`, signed by the intermediate, but the server
    /// sends the leaf alone (incomplete chain: verification fails).
    pub fn leaf_without_intermediate(&self) -> Leaf {
        let mut leaf = self.localhost_leaf();
        leaf.chain.truncate(1);
        leaf.chain_not_after.truncate(1);
        leaf.chain_pem = leaf.cert_pem.clone();
        leaf
    }

    /// `localhost` + `127.0.0.1`, self-signed (not issued by this PKI).
    pub fn self_signed_leaf(&self) -> Leaf {
        let validity = Validity::default();
        let params = leaf_params(&["localhost"], &[localhost_ip()], validity);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.self_signed(&key).expect("self-sign leaf");
        Leaf {
            cert: cert.der().clone(),
            chain: vec![cert.der().clone()],
            chain_not_after: vec![validity.not_after.unix_timestamp()],
            validity,
            serial: serial_of(&params),
            cert_pem: cert.pem(),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

pub fn localhost_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn ca_params(cn: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, ORG);
    params.distinguished_name = dn;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(dns: &[&str], ips: &[IpAddr], validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let cn = dns
        .first()
        .map(|s| s.to_string())
        .or_else(|| ips.first().map(|ip| ip.to_string()))
        .unwrap_or_else(|| "test leaf".to_string());
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, LEAF_ORG);
    dn.push(DnType::CountryName, "US");
    params.distinguished_name = dn;
    params.subject_alt_names = dns
        .iter()
        .map(|name| SanType::DnsName((*name).try_into().expect("DNS SAN")))
        .chain(ips.iter().map(|ip| SanType::IpAddress(*ip)))
        .collect();
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    // A random positive 16-byte serial, set here so tests know it.
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f).max(1);
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params
}

fn serial_of(params: &CertificateParams) -> Vec<u8> {
    params
        .serial_number
        .as_ref()
        .expect("leaf serial is always set")
        .to_bytes()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
