//! Reading a stapled OCSP response (RFC 6960) well enough to report the
//! certificate status and the validity window, with RustCrypto's
//! `x509-ocsp` (DER decoding by `der`).
//!
//! The responder's signature is not checked: the staple is reported as the
//! server presented it (a prober shows what clients are told). Nothing is
//! reported when nothing was stapled — never "good" by default.

use der::Decode as _;
use der::oid::AssociatedOid as _;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse};

/// `certStatus` of the matching SingleResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    Good,
    Revoked,
    Unknown,
}

impl OcspStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OcspStatus::Good => "good",
            OcspStatus::Revoked => "revoked",
            OcspStatus::Unknown => "unknown",
        }
    }
}

/// What a staple says about the leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspInfo {
    pub status: OcspStatus,
    pub produced_at: i64,
    pub this_update: i64,
    pub next_update: Option<i64>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OcspError {
    #[error("malformed DER in OCSP response: {0}")]
    Malformed(String),
    #[error("OCSP responder status {0} (not successful)")]
    ResponderStatus(String),
    #[error("OCSP response type is not id-pkix-ocsp-basic")]
    NotBasic,
    #[error("OCSP response has no SingleResponse")]
    NoResponse,
}

impl From<der::Error> for OcspError {
    fn from(e: der::Error) -> Self {
        OcspError::Malformed(e.to_string())
    }
}

fn unix(t: &OcspGeneralizedTime) -> i64 {
    i64::try_from(t.0.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// Strip leading zero bytes of a DER INTEGER (for serial comparison).
fn minimal(int: &[u8]) -> &[u8] {
    let start = int.iter().position(|b| *b != 0).unwrap_or(int.len());
    &int[start..]
}

/// Parse a stapled response; `leaf_serial` (big-endian, any leading zeros)
/// picks the SingleResponse about the leaf, else the first one is used.
pub fn parse(der: &[u8], leaf_serial: Option<&[u8]>) -> Result<OcspInfo, OcspError> {
    let response = OcspResponse::from_der(der)?;
    let status = response.response_status;
    if status != x509_ocsp::OcspResponseStatus::Successful {
        return Err(OcspError::ResponderStatus(format!("{status:?}")));
    }
    let bytes = response.response_bytes.ok_or(OcspError::Malformed(
        "successful response without responseBytes".into(),
    ))?;
    if bytes.response_type != BasicOcspResponse::OID {
        return Err(OcspError::NotBasic);
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())?;
    let data = basic.tbs_response_data;
    let produced_at = unix(&data.produced_at);
    let mut chosen = None;
    for single in &data.responses {
        let info = OcspInfo {
            status: match single.cert_status {
                CertStatus::Good(_) => OcspStatus::Good,
                CertStatus::Revoked(_) => OcspStatus::Revoked,
                CertStatus::Unknown(_) => OcspStatus::Unknown,
            },
            produced_at,
            this_update: unix(&single.this_update),
            next_update: single.next_update.as_ref().map(unix),
        };
        let serial = single.cert_id.serial_number.as_bytes();
        if leaf_serial.is_some_and(|s| minimal(s) == minimal(serial)) {
            return Ok(info);
        }
        chosen.get_or_insert(info);
    }
    chosen.ok_or(OcspError::NoResponse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode as _;
    use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
    use std::time::Duration;
    use x509_ocsp::{
        CertId, OcspResponseStatus, ResponderId, ResponseBytes, ResponseData, RevokedInfo,
        SingleResponse, Version,
    };

    fn time(unix: i64) -> OcspGeneralizedTime {
        let d = Duration::from_secs(u64::try_from(unix).unwrap());
        OcspGeneralizedTime(GeneralizedTime::from_unix_duration(d).unwrap())
    }

    fn sha1() -> spki::AlgorithmIdentifierOwned {
        spki::AlgorithmIdentifierOwned {
            oid: der::oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            parameters: Some(der::Any::from(Null)),
        }
    }

    /// An unsigned but well-formed response with one SingleResponse.
    fn response(serial: &[u8], status: CertStatus, this: i64, next: Option<i64>) -> Vec<u8> {
        let single = SingleResponse {
            cert_id: CertId {
                hash_algorithm: sha1(),
                issuer_name_hash: OctetString::new(vec![0u8; 20]).unwrap(),
                issuer_key_hash: OctetString::new(vec![0u8; 20]).unwrap(),
                serial_number: x509_cert::serial_number::SerialNumber::new(serial).unwrap(),
            },
            cert_status: status,
            this_update: time(this),
            next_update: next.map(time),
            single_extensions: None,
        };
        let basic = BasicOcspResponse {
            tbs_response_data: ResponseData {
                version: Version::V1,
                responder_id: ResponderId::ByKey(OctetString::new(vec![1u8; 20]).unwrap()),
                produced_at: time(this),
                responses: vec![single],
                response_extensions: None,
            },
            signature_algorithm: sha1(),
            signature: BitString::from_bytes(&[0, 1, 2]).unwrap(),
            certs: None,
        };
        OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: BasicOcspResponse::OID,
                response: OctetString::new(basic.to_der().unwrap()).unwrap(),
            }),
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn statuses() {
        let revoked = CertStatus::revoked(RevokedInfo {
            revocation_time: time(1_700_000_000),
            revocation_reason: None,
        });
        for (status, want) in [
            (CertStatus::good(), OcspStatus::Good),
            (revoked, OcspStatus::Revoked),
            (CertStatus::unknown(), OcspStatus::Unknown),
        ] {
            let der = response(&[0x0a, 0xbc], status, 1_700_000_000, Some(1_700_600_000));
            let info = parse(&der, Some(&[0x00, 0x0a, 0xbc])).unwrap();
            assert_eq!(info.status, want);
            assert_eq!(info.this_update, 1_700_000_000);
            assert_eq!(info.produced_at, 1_700_000_000);
            assert_eq!(info.next_update, Some(1_700_600_000));
        }
    }

    #[test]
    fn without_next_update() {
        let der = response(&[1], CertStatus::good(), 1_800_000_000, None);
        assert_eq!(parse(&der, None).unwrap().next_update, None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(&[], None).is_err());
        assert!(parse(&[0x30, 0x82, 0xff], None).is_err());
        assert!(parse(&[0x30, 0x03, 0x0a, 0x01, 0x06], None).is_err());
        assert!(matches!(
            parse(&[0x30, 0x03, 0x0a, 0x01, 0x01], None),
            Err(OcspError::ResponderStatus(_))
        ));
        let der = response(&[1], CertStatus::good(), 1_800_000_000, None);
        for cut in 0..der.len() {
            let _ = parse(&der[..cut], None);
        }
    }
}
