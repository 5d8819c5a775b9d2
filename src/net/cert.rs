//! Certificate inspection for the TLS metric family.
//!
//! Every string produced here becomes a Prometheus label value that users
//! compare against blackbox_exporter's output, so the formatting follows Go's
//! `crypto/x509` + `pkix.Name.String()` byte for byte rather than
//! x509-parser's own `Display` (which uses certificate order and `", "`).

use std::fmt::Write as _;

use rustls::{CipherSuite, ProtocolVersion};
use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

/// What the TLS metrics need to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// Subject in Go's `pkix.Name.String()` form.
    pub subject: String,
    /// Issuer in Go's `pkix.Name.String()` form.
    pub issuer: String,
    /// Subject CommonName as Go's `Name.CommonName` holds it ("" if none).
    pub subject_cn: String,
    /// Issuer CommonName as Go's `Name.CommonName` holds it ("" if none).
    pub issuer_cn: String,
    /// dNSName entries of subjectAltName, in certificate order.
    pub dns_sans: Vec<String>,
    /// Go's `fmt.Sprintf("%x", serial.Bytes())`.
    pub serial_hex: String,
    /// Lowercase hex SHA-256 of the DER.
    pub fingerprint_sha256: String,
    /// basicConstraints cA flag.
    pub is_ca: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CertParseError {
    #[error("malformed certificate: {0}")]
    Malformed(#[from] X509Error),
    #[error("truncated certificate DER")]
    Truncated,
}

/// Parse one DER certificate into the fields the TLS metrics report.
///
/// Deliberately lenient where Go is strict (undecodable name values,
/// duplicate extensions): a certificate Go would reject still makes the
/// handshake fail, and reporting what we can see is the point of recording
/// the presented chain.
pub fn parse_certificate(der: &[u8]) -> Result<CertInfo, CertParseError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| match e {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
            CertParseError::Malformed(e)
        }
        x509_parser::nom::Err::Incomplete(_) => CertParseError::Truncated,
    })?;

    let subject = GoName::from_x509(cert.subject());
    let issuer = GoName::from_x509(cert.issuer());

    // A duplicated SAN extension is an error in x509-parser; report no SANs
    // rather than dropping the whole certificate.
    let dns_sans = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };

    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);

    Ok(CertInfo {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        subject: subject.render(),
        issuer: issuer.render(),
        subject_cn: subject.common_name,
        issuer_cn: issuer.common_name,
        dns_sans,
        serial_hex: serial_hex(cert.raw_serial()),
        fingerprint_sha256: hex_lower(&Sha256::digest(der)),
        is_ca,
    })
}

/// Minimum NotAfter over every certificate the server presented
/// (`probe_ssl_earliest_cert_expiry`): any certificate sent counts, whether
/// or not it ends up in a verified path.
pub fn earliest_expiry(certs: &[CertInfo]) -> Option<i64> {
    certs.iter().map(|c| c.not_after).min()
}

/// Minimum NotAfter of one verified chain: the chain stops working when its
/// first member expires. The caller takes the maximum over chains.
pub fn chain_expiry(chain: &[CertInfo]) -> Option<i64> {
    chain.iter().map(|c| c.not_after).min()
}

/// The `version` label of `probe_tls_version_info`, spelled as blackbox does.
pub fn tls_version_label(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_0 => "TLS 1.0",
        ProtocolVersion::TLSv1_1 => "TLS 1.1",
        ProtocolVersion::TLSv1_2 => "TLS 1.2",
        ProtocolVersion::TLSv1_3 => "TLS 1.3",
        _ => "unknown",
    }
}

/// The `cipher` label of `probe_tls_cipher_info`, as Go's
/// `tls.CipherSuiteName` spells it.
///
/// Only TLS 1.3 names differ from rustls (`TLS13_` prefix); the table still
/// lists every suite rustls+ring can negotiate so the mapping is reviewable
/// in one place. Other known suites use rustls' IANA name; unknown ids use
/// Go's `0x%04X` fallback.
pub fn cipher_suite_name(s: CipherSuite) -> String {
    let name = match s {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_AES_128_CCM_SHA256 => "TLS_AES_128_CCM_SHA256",
        CipherSuite::TLS13_AES_128_CCM_8_SHA256 => "TLS_AES_128_CCM_8_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => {
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => {
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
        }
        other => {
            return match other.as_str() {
                Some(iana) => iana.to_owned(),
                None => format!("0x{:04X}", u16::from(other)),
            };
        }
    };
    name.to_owned()
}

/// Go's `fmt.Sprintf("%x", serial.Bytes())`: the magnitude as minimal
/// big-endian bytes, two hex digits each (so `0x0abc` stays `0abc`, and a
/// zero serial is "").
fn serial_hex(raw: &[u8]) -> String {
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude = if negative {
        // Two's complement negation; big.Int.Bytes() is the absolute value.
        let mut out = raw.to_vec();
        for b in out.iter_mut() {
            *b = !*b;
        }
        for b in out.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        out
    } else {
        raw.to_vec()
    };
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    hex_lower(&magnitude[start..])
}

fn hex_lower(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The well-known attributes, in the order Go's `Name.String()` prints
/// them (the reverse of `ToRDNSequence`'s C, ST, L, STREET, POSTALCODE, O,
/// OU, CN, SERIALNUMBER).
const STANDARD_ORDER: [(u8, &str); 9] = [
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

/// A distinguished name reduced the way Go's `Name.FillFromRDNSequence`
/// reduces it: RDN grouping is lost, CN and SERIALNUMBER keep only the last
/// value, the other standard attributes keep every value in order.
struct GoName {
    /// Values per entry of [`STANDARD_ORDER`].
    standard: [Vec<String>; 9],
    common_name: String,
    serial_number: String,
    /// Already rendered `oid=#hex` items, in certificate order.
    extra: Vec<String>,
}

impl GoName {
    fn from_x509(name: &X509Name<'_>) -> Self {
        let mut out = GoName {
            standard: Default::default(),
            common_name: String::new(),
            serial_number: String::new(),
            extra: Vec::new(),
        };
        for atv in name.iter_attributes() {
            let oid = atv.attr_type();
            let value = go_string_value(atv.attr_value());
            let standard_arc = match oid.as_bytes() {
                // 2.5.4.x encodes as 55 04 x for x < 128.
                [0x55, 0x04, arc] => STANDARD_ORDER.iter().position(|(a, _)| a == arc),
                _ => None,
            };
            match (standard_arc, value) {
                (Some(idx), Some(v)) => match STANDARD_ORDER[idx].0 {
                    3 => out.common_name = v,
                    5 => out.serial_number = v,
                    _ => out.standard[idx].push(v),
                },
                // Non-standard attribute: Go re-marshals the decoded string.
                (None, Some(v)) => out.extra.push(format!(
                    "{}=#{}",
                    oid.to_id_string(),
                    hex_lower(&go_marshal_string(&v))
                )),
                // Go would reject the certificate; show the raw value instead
                // of losing the attribute.
                (_, None) => out.extra.push(format!(
                    "{}=#{}",
                    oid.to_id_string(),
                    hex_lower(&raw_der(atv.attr_value()))
                )),
            }
        }
        out
    }

    /// `pkix.Name.String()`.
    fn render(&self) -> String {
        let mut rdns: Vec<String> = Vec::new();
        for (idx, (arc, short)) in STANDARD_ORDER.iter().enumerate() {
            let values: Vec<&str> = match arc {
                // Go drops an empty CN / SERIALNUMBER entirely.
                3 if !self.common_name.is_empty() => vec![self.common_name.as_str()],
                5 if !self.serial_number.is_empty() => vec![self.serial_number.as_str()],
                3 | 5 => Vec::new(),
                _ => self.standard[idx].iter().map(String::as_str).collect(),
            };
            if values.is_empty() {
                continue;
            }
            let rdn: Vec<String> = values
                .iter()
                .map(|v| format!("{short}={}", escape_value(v)))
                .collect();
            rdns.push(rdn.join("+"));
        }
        // Go prepends the extras to the sequence it then prints reversed, so
        // they come last and in reverse certificate order.
        rdns.extend(self.extra.iter().rev().cloned());
        rdns.join(",")
    }
}

/// Go's escaping in `RDNSequence.String()`: `,+"\<>;` always, a leading
/// space or `#`, and a trailing space.
fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (k, c) in v.char_indices() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k == v.len() - 1,
            '#' => k == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Decode an attribute value the way Go's x509 `parseASN1String` does;
/// `None` where Go would reject the certificate.
fn go_string_value(any: &Any<'_>) -> Option<String> {
    if any.class() != Class::Universal || any.header.is_constructed() {
        return None;
    }
    let data = any.data;
    match any.tag() {
        // Go treats T.61 as Latin-1.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::PrintableString => data
            .iter()
            .all(|&b| is_printable(b, true))
            .then(|| data.iter().map(|&b| char::from(b)).collect()),
        Tag::Utf8String => std::str::from_utf8(data).ok().map(str::to_owned),
        Tag::Ia5String => data
            .is_ascii()
            .then(|| data.iter().map(|&b| char::from(b)).collect()),
        Tag::NumericString => data
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b' ')
            .then(|| data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let mut data = data;
            if data.ends_with(&[0, 0]) {
                data = &data[..data.len() - 2];
            }
            let units = data
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            Some(
                char::decode_utf16(units)
                    .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// The PrintableString alphabet. x509 parsing also admits `*` and `&`
/// (seen in real certificates); `asn1.Marshal` does not.
fn is_printable(b: u8, lenient: bool) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'\''..=b')' | b'+'..=b'/' | b' ' | b':' | b'=' | b'?')
        || (lenient && matches!(b, b'*' | b'&'))
}

/// Go's `asn1.Marshal(string)`: PrintableString when the alphabet allows,
/// otherwise UTF8String — so the hex shown for e.g. an IA5String email is
/// that of a UTF8String.
fn go_marshal_string(s: &str) -> Vec<u8> {
    let tag = if s.bytes().all(|b| b.is_ascii() && is_printable(b, false)) {
        0x13
    } else {
        0x0c
    };
    let mut out = vec![tag];
    push_der_length(&mut out, s.len());
    out.extend_from_slice(s.as_bytes());
    out
}

/// Re-encode a value's full TLV (x509-parser keeps header and content apart).
fn raw_der(any: &Any<'_>) -> Vec<u8> {
    let class_bits = (any.class() as u8) << 6;
    let constructed = if any.header.is_constructed() { 0x20 } else { 0 };
    let tag = any.tag().0;
    let mut out = Vec::with_capacity(any.data.len() + 8);
    if tag < 31 {
        out.push(class_bits | constructed | tag as u8);
    } else {
        out.push(class_bits | constructed | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        let last = groups.len() - 1;
        for (i, g) in groups.iter().rev().enumerate() {
            out.push(if i == last { *g } else { g | 0x80 });
        }
    }
    push_der_length(&mut out, any.data.len());
    out.extend_from_slice(any.data);
    out
}

fn push_der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let start = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - start) as u8);
        out.extend_from_slice(&bytes[start..]);
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::proptests::{cert_info, oid, tlv, with_names};
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType, SerialNumber};

    const OID_EMAIL: &[u64] = &[1, 2, 840, 113549, 1, 9, 1];
    const OID_C: &[u64] = &[2, 5, 4, 6];
    const OID_O: &[u64] = &[2, 5, 4, 10];
    const OID_OU: &[u64] = &[2, 5, 4, 11];
    const OID_CN: &[u64] = &[2, 5, 4, 3];
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const IA5: u8 = 0x16;

    fn params_with_dn(dn: DistinguishedName) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        params
    }

    fn self_signed(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    // --- a minimal DER writer, for names rcgen cannot express -------------

    /// RDNSequence from RDNs of (oid, string tag, value).
    fn name(rdns: &[&[(&[u64], u8, &str)]]) -> Vec<u8> {
        let mut seq = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (o, tag, v) in rdn.iter() {
                let mut atv = oid(o);
                atv.extend(tlv(*tag, v.as_bytes()));
                set.extend(tlv(0x30, &atv));
            }
            seq.extend(tlv(0x31, &set));
        }
        tlv(0x30, &seq)
    }

    fn cert_with_subject(subject: &[u8]) -> Vec<u8> {
        let base = self_signed(CertificateParams::default());
        with_names(&base, subject, None)
    }

    // --- names -------------------------------------------------------------

    #[test]
    fn reference_example_subject_reproduces_exactly() {
        // openssl-style order and types: C, O, OU, OU, CN, emailAddress (IA5).
        let subject = name(&[
            &[(OID_C, PRINTABLE, "US")],
            &[(OID_O, UTF8, "Org, Inc")],
            &[(OID_OU, UTF8, "Unit A")],
            &[(OID_OU, UTF8, "Unit B")],
            &[(OID_CN, UTF8, "name.test")],
            &[(OID_EMAIL, IA5, "a@b.c")],
        ]);
        let info = parse_certificate(&cert_with_subject(&subject)).unwrap();
        assert_eq!(
            info.subject,
            r"CN=name.test,OU=Unit A+OU=Unit B,O=Org\, Inc,C=US,1.2.840.113549.1.9.1=#0c056140622e63"
        );
        assert_eq!(info.subject_cn, "name.test");
    }

    #[test]
    fn rcgen_custom_email_attribute_is_rendered_as_oid_hex() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "US");
        dn.push(DnType::CommonName, "name.test");
        dn.push(DnType::CustomDnType(OID_EMAIL.to_vec()), "a@b.c");
        let info = parse_certificate(&self_signed(params_with_dn(dn))).unwrap();
        assert_eq!(
            info.subject,
            "CN=name.test,C=US,1.2.840.113549.1.9.1=#0c056140622e63"
        );
    }

    #[test]
    fn multi_valued_ou_joined_with_plus_in_both_encodings() {
        let separate = name(&[
            &[(OID_OU, UTF8, "Unit A")],
            &[(OID_OU, UTF8, "Unit B")],
            &[(OID_CN, UTF8, "x")],
        ]);
        let one_rdn = name(&[
            &[(OID_OU, UTF8, "Unit A"), (OID_OU, UTF8, "Unit B")],
            &[(OID_CN, UTF8, "x")],
        ]);
        for subject in [separate, one_rdn] {
            let info = parse_certificate(&cert_with_subject(&subject)).unwrap();
            assert_eq!(info.subject, "CN=x,OU=Unit A+OU=Unit B");
        }
    }

    #[test]
    fn fixed_go_order_regardless_of_der_order() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "DE");
        dn.push(DnType::StateOrProvinceName, "Berlin");
        dn.push(DnType::LocalityName, "Mitte");
        dn.push(DnType::OrganizationName, "Org");
        dn.push(DnType::OrganizationalUnitName, "Ops");
        dn.push(DnType::CommonName, "leaf.test");
        let forward = parse_certificate(&self_signed(params_with_dn(dn))).unwrap();

        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "leaf.test");
        dn.push(DnType::OrganizationalUnitName, "Ops");
        dn.push(DnType::LocalityName, "Mitte");
        dn.push(DnType::OrganizationName, "Org");
        dn.push(DnType::StateOrProvinceName, "Berlin");
        dn.push(DnType::CountryName, "DE");
        let backward = parse_certificate(&self_signed(params_with_dn(dn))).unwrap();

        let want = "CN=leaf.test,OU=Ops,O=Org,L=Mitte,ST=Berlin,C=DE";
        assert_eq!(forward.subject, want);
        assert_eq!(backward.subject, want);
        // Self-signed: the issuer is the same name.
        assert_eq!(backward.issuer, want);
        assert_eq!(backward.issuer_cn, "leaf.test");
    }

    #[test]
    fn comma_is_escaped() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Org, Inc");
        dn.push(DnType::CommonName, "c");
        let info = parse_certificate(&self_signed(params_with_dn(dn))).unwrap();
        assert_eq!(info.subject, r"CN=c,O=Org\, Inc");
    }

    #[test]
    fn escaping_follows_go_rules() {
        assert_eq!(
            escape_value(r#"a,b+c"d\e<f>g;h"#),
            r#"a\,b\+c\"d\\e\<f\>g\;h"#
        );
        assert_eq!(escape_value(" #x# y "), r"\ #x# y\ ");
        assert_eq!(escape_value("#lead"), r"\#lead");
        assert_eq!(escape_value("a=b"), "a=b");
        assert_eq!(escape_value(""), "");
    }

    #[test]
    fn extras_come_last_in_reverse_certificate_order_and_are_remarshalled() {
        let title: &[u64] = &[2, 5, 4, 12];
        let given: &[u64] = &[2, 5, 4, 42];
        let subject = name(&[
            &[(title, UTF8, "T")],
            &[(OID_CN, UTF8, "x")],
            &[(given, UTF8, "G&")],
        ]);
        let info = parse_certificate(&cert_with_subject(&subject)).unwrap();
        // "T" fits PrintableString (13); '&' forces UTF8String (0c).
        assert_eq!(info.subject, "CN=x,2.5.4.42=#0c024726,2.5.4.12=#130154");
    }

    #[test]
    fn last_common_name_wins_and_empty_one_is_dropped() {
        let two = name(&[&[(OID_CN, UTF8, "first")], &[(OID_CN, UTF8, "second")]]);
        let info = parse_certificate(&cert_with_subject(&two)).unwrap();
        assert_eq!(info.subject, "CN=second");
        assert_eq!(info.subject_cn, "second");

        let empty = name(&[&[(OID_O, UTF8, "")], &[(OID_CN, UTF8, "")]]);
        let info = parse_certificate(&cert_with_subject(&empty)).unwrap();
        assert_eq!(info.subject, "O=");
        assert_eq!(info.subject_cn, "");
    }

    #[test]
    fn issuer_differs_from_subject_when_signed_by_a_ca() {
        let mut ca_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Test CA");
        dn.push(DnType::OrganizationName, "CA Org");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "leaf.test");
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = params_with_dn(dn).signed_by(&leaf_key, &issuer).unwrap();

        let leaf = parse_certificate(leaf.der()).unwrap();
        assert_eq!(leaf.subject, "CN=leaf.test");
        assert_eq!(leaf.issuer, "CN=Test CA,O=CA Org");
        assert_eq!(leaf.issuer_cn, "Test CA");
        assert!(!leaf.is_ca);
        assert!(parse_certificate(ca_cert.der()).unwrap().is_ca);
    }

    // --- other fields ------------------------------------------------------

    #[test]
    fn serial_keeps_leading_nibble_zero() {
        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x0a, 0xbc]));
        let info = parse_certificate(&self_signed(params)).unwrap();
        assert_eq!(info.serial_hex, "0abc");

        // DER adds a 00 byte before a high bit; Go's Bytes() drops it.
        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from_slice(&[0x8a, 0xbc]));
        let info = parse_certificate(&self_signed(params)).unwrap();
        assert_eq!(info.serial_hex, "8abc");
    }

    #[test]
    fn serial_hex_edge_cases() {
        assert_eq!(serial_hex(&[0x00]), "");
        assert_eq!(serial_hex(&[0x00, 0x00, 0x01]), "01");
        // Negative serials: big.Int.Bytes() is the magnitude.
        assert_eq!(serial_hex(&[0xff]), "01");
        assert_eq!(serial_hex(&[0xff, 0x00]), "0100");
        assert_eq!(serial_hex(&[0x80]), "80");
    }

    #[test]
    fn dns_sans_only_in_order() {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
            SanType::Rfc822Name("a@b.c".try_into().unwrap()),
            SanType::DnsName("example.test".try_into().unwrap()),
        ];
        let info = parse_certificate(&self_signed(params)).unwrap();
        assert_eq!(info.dns_sans, ["localhost", "example.test"]);
        assert_eq!(info.dns_sans.join(","), "localhost,example.test");
    }

    #[test]
    fn fingerprint_is_sha256_of_der() {
        let der = self_signed(CertificateParams::default());
        let info = parse_certificate(&der).unwrap();
        let want: String = Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(info.fingerprint_sha256, want);
        assert_eq!(info.fingerprint_sha256.len(), 64);
    }

    #[test]
    fn validity_round_trips() {
        let mut params = CertificateParams::default();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap();
        let info = parse_certificate(&self_signed(params)).unwrap();
        assert_eq!(info.not_before, 1_700_000_000);
        // 2100-01-01 is past 2049, so this also covers GeneralizedTime.
        assert_eq!(info.not_after, 4_102_444_800);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_certificate(&[]).is_err());
        assert!(parse_certificate(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
    }

    #[test]
    fn expiry_helpers_take_the_minimum() {
        let mk = cert_info;
        let certs = [mk(300), mk(100), mk(200)];
        assert_eq!(earliest_expiry(&certs), Some(100));
        assert_eq!(chain_expiry(&certs), Some(100));
        assert_eq!(earliest_expiry(&[]), None);
        assert_eq!(chain_expiry(&[]), None);
    }

    // --- session labels ----------------------------------------------------

    #[test]
    fn tls13_cipher_names_use_go_spelling() {
        assert_eq!(
            cipher_suite_name(CipherSuite::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            cipher_suite_name(CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            cipher_suite_name(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
            "TLS_CHACHA20_POLY1305_SHA256"
        );
    }

    #[test]
    fn every_ring_suite_has_a_go_name() {
        for suite in rustls::crypto::ring::ALL_CIPHER_SUITES {
            let name = cipher_suite_name(suite.suite());
            assert!(name.starts_with("TLS_"), "{name}");
            assert!(!name.starts_with("TLS13_"), "{name}");
        }
        assert_eq!(
            cipher_suite_name(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        );
        assert_eq!(
            cipher_suite_name(CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA),
            "TLS_RSA_WITH_AES_128_CBC_SHA"
        );
        assert_eq!(cipher_suite_name(CipherSuite::from(0xfafa)), "0xFAFA");
    }

    #[test]
    fn version_labels() {
        assert_eq!(tls_version_label(ProtocolVersion::TLSv1_0), "TLS 1.0");
        assert_eq!(tls_version_label(ProtocolVersion::TLSv1_1), "TLS 1.1");
        assert_eq!(tls_version_label(ProtocolVersion::TLSv1_2), "TLS 1.2");
        assert_eq!(tls_version_label(ProtocolVersion::TLSv1_3), "TLS 1.3");
        assert_eq!(tls_version_label(ProtocolVersion::SSLv3), "unknown");
    }
}
