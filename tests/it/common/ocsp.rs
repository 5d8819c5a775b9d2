//! OCSP responses for servers to staple (RFC 6960), built with the RustCrypto
//! `x509-ocsp` types.
//!
//! ```ignore
//! let der = ocsp::response(&leaf.serial, 0, now - 3600, Some(now + 86_400));
//! let server = Server::tls(ServerTls::new(&leaf).ocsp(der).build()).await;
//! ```
//!
//! The response is well-formed but not signed by anyone: the signature is a
//! dummy bit string and no certificates are included (the prober reports a
//! staple as the server presented it, without checking the signature).

use std::time::Duration;

use const_oid::db::rfc5912::ID_SHA_1;
use der::Encode;
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use spki::AlgorithmIdentifierOwned;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, ResponderId,
    ResponseData, RevokedInfo, SingleResponse, Version,
};

/// A DER OCSPResponse, responseStatus successful, of type
/// id-pkix-ocsp-basic, with one SingleResponse about `serial`.
///
/// - `serial`: big-endian, as in the certificate (leading zero bytes are
///   dropped and a 0 byte is put in front of a high first bit, as DER wants
///   of a positive INTEGER); at most 20 bytes.
/// - `status`: 0 good, 1 revoked (revocationTime = `this_update`, no
///   reason), anything else unknown.
/// - `this_update`, `next_update`: Unix seconds; producedAt is
///   `this_update`, and nextUpdate is left out when `None`.
///
/// The CertID has a SHA-1 AlgorithmIdentifier and 20 zero bytes for both
/// issuer hashes; the responderID is byKey, 20 bytes of 0x01; the signature
/// algorithm is SHA-1's OID and the signature the bits `0x01 0x02`.
pub fn response(serial: &[u8], status: u8, this_update: i64, next_update: Option<i64>) -> Vec<u8> {
    let sha1 = AlgorithmIdentifierOwned {
        oid: ID_SHA_1,
        parameters: Some(Null.into()),
    };
    let cert_id = CertId {
        hash_algorithm: sha1.clone(),
        issuer_name_hash: OctetString::new([0u8; 20]).expect("issuer name hash"),
        issuer_key_hash: OctetString::new([0u8; 20]).expect("issuer key hash"),
        serial_number: SerialNumber::new(serial)
            .unwrap_or_else(|e| panic!("serial {serial:02x?} as a serialNumber: {e}")),
    };
    let cert_status = match status {
        0 => CertStatus::good(),
        1 => CertStatus::revoked(RevokedInfo {
            revocation_time: time(this_update),
            revocation_reason: None,
        }),
        _ => CertStatus::unknown(),
    };
    let single = SingleResponse {
        cert_id,
        cert_status,
        this_update: time(this_update),
        next_update: next_update.map(time),
        single_extensions: None,
    };
    let basic = BasicOcspResponse {
        tbs_response_data: ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new([1u8; 20]).expect("responder key hash"),
            ),
            produced_at: time(this_update),
            responses: vec![single],
            response_extensions: None,
        },
        signature_algorithm: sha1,
        signature: BitString::from_bytes(&[0x01, 0x02]).expect("signature"),
        certs: None,
    };
    OcspResponse::successful(basic)
        .and_then(|response| response.to_der())
        .expect("encode OCSPResponse")
}

/// Unix seconds as a GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(unix: i64) -> OcspGeneralizedTime {
    let since_epoch = u64::try_from(unix)
        .map(Duration::from_secs)
        .unwrap_or_else(|_| panic!("time {unix} is before 1970"));
    OcspGeneralizedTime(
        GeneralizedTime::from_unix_duration(since_epoch)
            .unwrap_or_else(|e| panic!("time {unix} as a GeneralizedTime: {e}")),
    )
}

#[cfg(test)]
mod tests {
    // Imports inside the functions: the bench includes this file with
    // cfg(test) set but compiles no #[test] function.
    use super::*;

    /// `der` decoded with x509-ocsp: the OCSPResponse and its
    /// BasicOCSPResponse.
    fn decode(der: &[u8]) -> (OcspResponse, BasicOcspResponse) {
        use der::Decode;

        let response = OcspResponse::from_der(der).expect("OCSPResponse decodes");
        let bytes = response
            .response_bytes
            .as_ref()
            .expect("responseBytes present");
        let basic =
            BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("BasicOCSPResponse");
        (response, basic)
    }

    fn unix(t: &OcspGeneralizedTime) -> u64 {
        t.0.to_unix_duration().as_secs()
    }

    #[test]
    fn round_trips_through_x509_ocsp() {
        use der::asn1::ObjectIdentifier;
        use x509_ocsp::OcspResponseStatus;

        let (this_update, next_update) = (1_700_000_000, 1_700_600_000);
        // (serial, as the INTEGER holds it, status, nextUpdate): a high first
        // bit gets a 0 byte in front, a leading zero byte is dropped.
        let cases = [
            (vec![0x0a, 0xbc], vec![0x0a, 0xbc], 0, Some(next_update)),
            (
                vec![0x8a, 0xbc],
                vec![0x00, 0x8a, 0xbc],
                1,
                Some(next_update),
            ),
            (vec![0x00, 0x01], vec![0x01], 2, None),
            (vec![0x7f; 16], vec![0x7f; 16], 0, None),
        ];
        for (serial, encoded_serial, status, next) in cases {
            let der = response(&serial, status, this_update, next);
            let (response, basic) = decode(&der);
            let what = format!("serial {serial:02x?}, status {status}");

            assert_eq!(response.response_status, OcspResponseStatus::Successful);
            assert_eq!(
                response.response_bytes.as_ref().map(|b| b.response_type),
                Some(ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1")),
                "{what}: id-pkix-ocsp-basic"
            );

            let data = &basic.tbs_response_data;
            assert_eq!(data.version, Version::V1);
            assert_eq!(
                data.responder_id,
                ResponderId::ByKey(OctetString::new([1u8; 20]).expect("key hash"))
            );
            assert_eq!(unix(&data.produced_at), this_update as u64, "{what}");
            assert_eq!(data.responses.len(), 1, "{what}");
            assert_eq!(data.response_extensions, None);
            assert_eq!(basic.certs, None);
            assert_eq!(basic.signature.raw_bytes(), [0x01, 0x02]);

            let single = &data.responses[0];
            let cert_id = &single.cert_id;
            assert_eq!(
                cert_id.hash_algorithm.oid,
                ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
                "{what}: SHA-1"
            );
            assert_eq!(cert_id.issuer_name_hash.as_bytes(), [0u8; 20]);
            assert_eq!(cert_id.issuer_key_hash.as_bytes(), [0u8; 20]);
            assert_eq!(cert_id.serial_number.as_bytes(), encoded_serial, "{what}");

            match (status, &single.cert_status) {
                (0, CertStatus::Good(_)) | (2, CertStatus::Unknown(_)) => {}
                (1, CertStatus::Revoked(info)) => {
                    assert_eq!(unix(&info.revocation_time), this_update as u64);
                    assert_eq!(info.revocation_reason, None);
                }
                (_, other) => panic!("{what}: certStatus {other:?}"),
            }
            assert_eq!(unix(&single.this_update), this_update as u64, "{what}");
            assert_eq!(
                single.next_update.as_ref().map(unix),
                next.map(|n| n as u64),
                "{what}"
            );
        }
    }
}
