//! Property tests of certificate inspection: whatever bytes arrive, parsing
//! does not panic; for generated certificates (rcgen, or names written in
//! DER directly) every field the TLS metrics use matches what went in,
//! formatted as Go (and so blackbox_exporter) formats it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType, SerialNumber};
use rustls::{CipherSuite, ProtocolVersion};
use sha2::{Digest, Sha256};

use super::*;

/// One signing key for every generated certificate (key generation is the
/// slow part, and nothing here depends on the key).
fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().expect("key pair"))
}

/// A real certificate with some of everything: names, SANs, extensions.
fn base_cert() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| {
        let mut params =
            CertificateParams::new(vec!["leaf.test".into(), "*.leaf.test".into()]).expect("params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "leaf.test");
        dn.push(DnType::OrganizationName, "Org, Inc");
        dn.push(DnType::CountryName, "DE");
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&[0x0a, 0xbc, 0xde]));
        params
            .self_signed(key())
            .expect("self-signed")
            .der()
            .to_vec()
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// --- Go's rules, restated -----------------------------------------------------

/// `RDNSequence.String()`'s escaping: `,+"\<>;` always, `#` first, space
/// first or last.
fn go_escape(v: &str) -> String {
    let mut out = String::new();
    for (i, c) in v.char_indices() {
        let first = i == 0;
        let last = i + c.len_utf8() == v.len();
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (c == '#' && first)
            || (c == ' ' && (first || last))
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// DER definite length.
fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes: Vec<u8> = n
        .to_be_bytes()
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// Go's `asn1.Marshal(string)`: PrintableString if every byte is in its
/// alphabet (without `*` and `&`), else UTF8String.
fn go_marshal(v: &str) -> Vec<u8> {
    let printable = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b));
    let mut out = vec![if printable { 0x13 } else { 0x0c }];
    out.extend(der_len(v.len()));
    out.extend_from_slice(v.as_bytes());
    out
}

/// The Go names of the attributes `Name.String()` prints by name, in the
/// order it prints them.
const GO_ORDER: [(u64, &str); 9] = [
    (5, "SERIALNUMBER"),
    (3, "CN"),
    (11, "OU"),
    (10, "O"),
    (17, "POSTALCODE"),
    (9, "STREET"),
    (7, "L"),
    (8, "ST"),
    (6, "C"),
];

/// String types of attribute values.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Utf8,
    Printable,
    Ia5,
    Bmp,
    T61,
    Numeric,
}

#[derive(Debug, Clone)]
struct Atv {
    arcs: &'static [u64],
    kind: Kind,
    value: String,
}

impl Atv {
    fn der(&self) -> Vec<u8> {
        let (tag, body): (u8, Vec<u8>) = match self.kind {
            Kind::Utf8 => (0x0c, self.value.as_bytes().to_vec()),
            Kind::Printable => (0x13, self.value.as_bytes().to_vec()),
            Kind::Ia5 => (0x16, self.value.as_bytes().to_vec()),
            Kind::Numeric => (0x12, self.value.as_bytes().to_vec()),
            Kind::T61 => (0x14, self.value.chars().map(|c| c as u8).collect()),
            Kind::Bmp => (
                0x1e,
                self.value
                    .encode_utf16()
                    .flat_map(u16::to_be_bytes)
                    .collect(),
            ),
        };
        let mut atv = oid(self.arcs);
        atv.extend(tlv(tag, &body));
        tlv(0x30, &atv)
    }

    /// The string Go decodes: a BMPString loses one trailing NUL
    /// (`parseBMPString` strips a terminator).
    fn decoded(&self) -> String {
        match self.kind {
            Kind::Bmp => self
                .value
                .strip_suffix('\0')
                .unwrap_or(&self.value)
                .to_string(),
            _ => self.value.clone(),
        }
    }
}

/// `pkix.Name.String()` of a parsed name, restated from Go's
/// `FillFromRDNSequence`, `ToRDNSequence` and `Name.String`: the
/// well-known attributes by name in Go's fixed order (CN and SERIALNUMBER:
/// the last value, left out when empty; the others every value, joined
/// with `+`), then the other attributes as `oid=#hex(asn1.Marshal(value))`
/// in reverse certificate order. Returns it and the CommonName.
fn go_name(rdns: &[Vec<Atv>]) -> (String, String) {
    let mut lists: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let (mut cn, mut serial) = (String::new(), String::new());
    let mut extras = Vec::new();
    for atv in rdns.iter().flatten() {
        let v = atv.decoded();
        match atv.arcs {
            [2, 5, 4, 3] => cn = v,
            [2, 5, 4, 5] => serial = v,
            [2, 5, 4, n] if GO_ORDER.iter().any(|(a, _)| a == n) => {
                lists.entry(*n).or_default().push(v)
            }
            arcs => {
                let dotted: Vec<String> = arcs.iter().map(u64::to_string).collect();
                extras.push(format!("{}=#{}", dotted.join("."), hex(&go_marshal(&v))));
            }
        }
    }
    let mut parts = Vec::new();
    for (arc, short) in GO_ORDER {
        let values = match arc {
            3 => [cn.clone()].into_iter().filter(|v| !v.is_empty()).collect(),
            5 => [serial.clone()]
                .into_iter()
                .filter(|v| !v.is_empty())
                .collect(),
            _ => lists.get(&arc).cloned().unwrap_or_default(),
        };
        if !values.is_empty() {
            let rdn: Vec<String> = values
                .iter()
                .map(|v| format!("{short}={}", go_escape(v)))
                .collect();
            parts.push(rdn.join("+"));
        }
    }
    parts.extend(extras.into_iter().rev());
    (parts.join(","), cn)
}

// --- DER: writing names, reading and splicing certificates ---------------------

pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

pub(super) fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut push = |mut v: u64| {
        let mut groups = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            groups.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        body.extend(groups.iter().rev());
    };
    push(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push(a);
    }
    tlv(0x06, &body)
}

fn name_der(rdns: &[Vec<Atv>]) -> Vec<u8> {
    let seq: Vec<u8> = rdns
        .iter()
        .flat_map(|rdn| tlv(0x31, &rdn.iter().flat_map(Atv::der).collect::<Vec<u8>>()))
        .collect();
    tlv(0x30, &seq)
}

/// (header length, content length) of the TLV at the start of `buf`.
fn header(buf: &[u8]) -> (usize, usize) {
    match buf[1] {
        l if l < 0x80 => (2, usize::from(l)),
        l => {
            let n = usize::from(l & 0x7f);
            let len = buf[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (2 + n, len)
        }
    }
}

fn children(mut buf: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (h, len) = header(buf);
        out.push(buf[..h + len].to_vec());
        buf = &buf[h + len..];
    }
    out
}

fn content(tlv: &[u8]) -> &[u8] {
    &tlv[header(tlv).0..]
}

/// `der` with its subject (and issuer, when given) replaced (the signature
/// no longer verifies, which parsing does not look at).
pub(super) fn with_names(der: &[u8], subject: &[u8], issuer: Option<&[u8]>) -> Vec<u8> {
    let outer = children(content(der));
    let mut tbs = children(content(&outer[0]));
    // [0] version, serial, signature, issuer, validity, subject, ...
    let base = usize::from(tbs[0][0] == 0xa0);
    if let Some(issuer) = issuer {
        tbs[base + 2] = issuer.to_vec();
    }
    tbs[base + 4] = subject.to_vec();
    let mut body = tlv(0x30, &tbs.concat());
    for rest in &outer[1..] {
        body.extend_from_slice(rest);
    }
    tlv(0x30, &body)
}

// --- generators ----------------------------------------------------------------

const STANDARD: &[&[u64]] = &[
    &[2, 5, 4, 3],
    &[2, 5, 4, 5],
    &[2, 5, 4, 6],
    &[2, 5, 4, 7],
    &[2, 5, 4, 8],
    &[2, 5, 4, 9],
    &[2, 5, 4, 10],
    &[2, 5, 4, 11],
    &[2, 5, 4, 17],
];
const OTHERS: &[&[u64]] = &[
    &[2, 5, 4, 12],
    &[2, 5, 4, 42],
    &[1, 2, 840, 113549, 1, 9, 1],
    &[0, 9, 2342, 19200300, 100, 1, 25],
];

/// Values with everything Go's escaping cares about, and then some.
fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ #,+\"\\\\<>;=a-z]{0,8}",
        "\\PC{0,6}",
        "(?s).{0,4}",
        Just(String::new()),
    ]
}

fn atv() -> impl Strategy<Value = Atv> {
    let arcs = prop_oneof![3 => prop::sample::select(STANDARD), 1 => prop::sample::select(OTHERS)];
    let value = prop_oneof![
        tricky_text().prop_map(|v| (Kind::Utf8, v)),
        "[A-Za-z0-9 '()+,./:=?*&-]{0,8}".prop_map(|v| (Kind::Printable, v)),
        "[\\x00-\\x7f]{0,8}".prop_map(|v| (Kind::Ia5, v)),
        "(?s).{0,4}".prop_map(|v| (Kind::Bmp, v)),
        "[\\x00-\\u{ff}]{0,8}".prop_map(|v| (Kind::T61, v)),
        "[0-9 ]{0,8}".prop_map(|v| (Kind::Numeric, v)),
    ];
    (arcs, value).prop_map(|(arcs, (kind, value))| Atv { arcs, kind, value })
}

fn rdns() -> impl Strategy<Value = Vec<Vec<Atv>>> {
    prop::collection::vec(prop::collection::vec(atv(), 1..3), 0..6)
}

/// Unix seconds from year 1 to 9999 (UTCTime and GeneralizedTime).
fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        -62_135_596_800i64..253_402_300_799,
        1_600_000_000i64..2_600_000_000,
    ]
}

#[derive(Debug, Clone)]
struct GenCert {
    cn: String,
    org: Option<String>,
    org_first: bool,
    /// DNS names, each with an IP SAN after it or not.
    sans: Vec<(String, bool)>,
    serial: Vec<u8>,
    not_before: i64,
    not_after: i64,
}

fn gen_cert() -> impl Strategy<Value = GenCert> {
    (
        tricky_text(),
        prop::option::of(tricky_text()),
        any::<bool>(),
        prop::collection::vec(
            (
                "(\\*\\.)?[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,10}){0,2}",
                any::<bool>(),
            ),
            0..4,
        ),
        prop::collection::vec(any::<u8>(), 1..=20),
        timestamp(),
        timestamp(),
    )
        .prop_map(
            |(cn, org, org_first, sans, serial, not_before, not_after)| GenCert {
                cn,
                org,
                org_first,
                sans,
                serial,
                not_before,
                not_after,
            },
        )
}

fn build(g: &GenCert) -> Vec<u8> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if g.org_first
        && let Some(o) = &g.org
    {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, g.cn.as_str());
    if !g.org_first
        && let Some(o) = &g.org
    {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    params.distinguished_name = dn;
    params.subject_alt_names = g
        .sans
        .iter()
        .flat_map(|(dns, ip)| {
            let mut v = vec![SanType::DnsName(dns.clone().try_into().expect("IA5"))];
            if *ip {
                v.push(SanType::IpAddress("192.0.2.1".parse().expect("ip")));
            }
            v
        })
        .collect();
    params.serial_number = Some(SerialNumber::from_slice(&g.serial));
    params.not_before = time::OffsetDateTime::from_unix_timestamp(g.not_before).expect("in range");
    params.not_after = time::OffsetDateTime::from_unix_timestamp(g.not_after).expect("in range");
    params
        .self_signed(key())
        .expect("self-signed")
        .der()
        .to_vec()
}

/// `%x` of `big.Int.Bytes()` for a signed big-endian DER integer of at
/// most 16 bytes, restated with i128.
fn go_serial(raw: &[u8]) -> String {
    let fill = if raw[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut bytes = [fill; 16];
    bytes[16 - raw.len()..].copy_from_slice(raw);
    let magnitude = i128::from_be_bytes(bytes).unsigned_abs().to_be_bytes();
    let start = magnitude.iter().position(|b| *b != 0).unwrap_or(16);
    hex(&magnitude[start..])
}

/// A certificate that only expires (the expiry helpers' tests).
pub(super) fn cert_info(not_after: i64) -> CertInfo {
    CertInfo {
        not_before: 0,
        not_after,
        subject: String::new(),
        issuer: String::new(),
        subject_cn: String::new(),
        issuer_cn: String::new(),
        dns_sans: Vec::new(),
        serial_hex: String::new(),
        fingerprint_sha256: String::new(),
        is_ca: false,
    }
}

// --- properties -----------------------------------------------------------------

#[test]
fn every_strict_prefix_of_a_certificate_is_an_error() {
    let der = base_cert();
    assert!(parse_certificate(der).is_ok());
    for len in 0..der.len() {
        assert!(
            parse_certificate(&der[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn cipher_names_are_unique_and_spelled_as_go_does() {
    let mut seen: BTreeMap<String, u16> = BTreeMap::new();
    for id in 0..=u16::MAX {
        let name = cipher_suite_name(CipherSuite::from(id));
        assert!(!name.starts_with("TLS13_"), "{id:#06x}: {name}");
        if let Some(hex) = name.strip_prefix("0x") {
            // Go's fallback, exactly four upper-case digits of the id.
            assert_eq!(hex, format!("{id:04X}"));
        } else {
            assert!(
                name.starts_with("TLS_") || name.starts_with("SSL_"),
                "{id:#06x}: {name}"
            );
        }
        if let Some(other) = seen.insert(name.clone(), id) {
            panic!("{name} names both {other:#06x} and {id:#06x}");
        }
    }
}

#[test]
fn version_labels_for_every_id() {
    for id in 0..=u16::MAX {
        let want = match id {
            0x0301 => "TLS 1.0",
            0x0302 => "TLS 1.1",
            0x0303 => "TLS 1.2",
            0x0304 => "TLS 1.3",
            _ => "unknown",
        };
        assert_eq!(
            tls_version_label(ProtocolVersion::from(id)),
            want,
            "{id:#06x}"
        );
    }
}

proptest! {
    #![proptest_config(crate::net::proptest_config(256))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            // DER-looking: a SEQUENCE header over random content.
            prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| tlv(0x30, &b)),
        ],
    ) {
        let _ = parse_certificate(&bytes);
    }

    #[test]
    fn flipped_bits_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..5)) {
        let mut der = base_cert().to_vec();
        for (at, bit) in &flips {
            let i = at.index(der.len());
            der[i] ^= 1 << bit;
        }
        if let Ok(info) = parse_certificate(&der) {
            prop_assert_eq!(info.fingerprint_sha256, hex(&Sha256::digest(&der)));
            prop_assert!(info.serial_hex.len() % 2 == 0);
            prop_assert!(info.serial_hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn serials_are_the_minimal_magnitude_in_lower_hex(raw in prop::collection::vec(any::<u8>(), 1..=16)) {
        prop_assert_eq!(serial_hex(&raw), go_serial(&raw));
    }

    #[test]
    fn escaping_is_gos(v in tricky_text()) {
        prop_assert_eq!(escape_value(&v), go_escape(&v));
    }

    #[test]
    fn names_render_as_go_renders_them(subject in rdns(), issuer in rdns()) {
        let der = with_names(base_cert(), &name_der(&subject), Some(&name_der(&issuer)));
        let info = parse_certificate(&der).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (want_subject, want_cn) = go_name(&subject);
        let (want_issuer, want_issuer_cn) = go_name(&issuer);
        prop_assert_eq!(info.subject, want_subject);
        prop_assert_eq!(info.subject_cn, want_cn);
        prop_assert_eq!(info.issuer, want_issuer);
        prop_assert_eq!(info.issuer_cn, want_issuer_cn);
    }
}

proptest! {
    #![proptest_config(crate::net::proptest_config(64))]

    #[test]
    fn generated_certificates_report_what_they_contain(g in gen_cert()) {
        let der = build(&g);
        let info = parse_certificate(&der).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut subject = Vec::new();
        if !g.cn.is_empty() {
            subject.push(format!("CN={}", go_escape(&g.cn)));
        }
        if let Some(o) = &g.org {
            subject.push(format!("O={}", go_escape(o)));
        }
        prop_assert_eq!(&info.subject, &subject.join(","));
        prop_assert_eq!(&info.issuer, &info.subject);
        prop_assert_eq!(&info.subject_cn, &g.cn);
        prop_assert_eq!(&info.issuer_cn, &g.cn);
        let dns: Vec<String> = g.sans.iter().map(|(d, _)| d.clone()).collect();
        prop_assert_eq!(&info.dns_sans, &dns);
        let first = g.serial.iter().position(|b| *b != 0).unwrap_or(g.serial.len());
        prop_assert_eq!(&info.serial_hex, &hex(&g.serial[first..]));
        prop_assert_eq!(info.not_before, g.not_before);
        prop_assert_eq!(info.not_after, g.not_after);
        prop_assert_eq!(&info.fingerprint_sha256, &hex(&Sha256::digest(&der)));
        prop_assert!(!info.is_ca);
        // Stable: the same bytes give the same labels.
        prop_assert_eq!(parse_certificate(&der).ok(), Some(info));
    }

    #[test]
    fn earliest_expiry_is_the_minimum_not_after(
        expiries in prop::collection::vec(timestamp(), 1..4),
        rotate in any::<prop::sample::Index>(),
    ) {
        let mut certs: Vec<CertInfo> = expiries
            .iter()
            .map(|&not_after| {
                let params = {
                    let mut p = CertificateParams::default();
                    p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).expect("in range");
                    p
                };
                let der = params.self_signed(key()).expect("self-signed");
                parse_certificate(der.der()).expect("parses")
            })
            .collect();
        let min = expiries.iter().copied().min();
        prop_assert_eq!(earliest_expiry(&certs), min);
        prop_assert_eq!(chain_expiry(&certs), min);
        // Order does not matter.
        let by = rotate.index(certs.len());
        certs.rotate_left(by);
        prop_assert_eq!(earliest_expiry(&certs), min);
    }

    #[test]
    fn expiry_helpers_take_the_minimum(expiries in prop::collection::vec(any::<i64>(), 0..8)) {
        let certs: Vec<CertInfo> = expiries.iter().copied().map(cert_info).collect();
        prop_assert_eq!(earliest_expiry(&certs), expiries.iter().copied().min());
        prop_assert_eq!(chain_expiry(&certs), expiries.iter().copied().min());
    }
}
