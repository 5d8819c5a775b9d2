//! Reading a stapled OCSP response (RFC 6960) well enough to report the
//! certificate status and the validity window.
//!
//! The responder's signature is not checked: the staple is reported as the
//! server presented it (a prober shows what clients are told). Nothing is
//! reported when nothing was stapled — never "good" by default.

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
    Malformed(&'static str),
    #[error("OCSP responder status {0} (not successful)")]
    ResponderStatus(u8),
    #[error("OCSP response type is not id-pkix-ocsp-basic")]
    NotBasic,
    #[error("OCSP response has no SingleResponse")]
    NoResponse,
}

/// DER encoding of id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1).
const OID_OCSP_BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];

/// A cursor over DER TLVs.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// Read one TLV: (tag, contents).
    fn read(&mut self) -> Result<(u8, &'a [u8]), OcspError> {
        let (&tag, rest) = self
            .0
            .split_first()
            .ok_or(OcspError::Malformed("truncated"))?;
        let (&first, mut rest) = rest
            .split_first()
            .ok_or(OcspError::Malformed("no length"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(OcspError::Malformed("bad length"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(OcspError::Malformed("length past end"));
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Ok((tag, value))
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], OcspError> {
        match self.read()? {
            (t, v) if t == tag => Ok(v),
            _ => Err(OcspError::Malformed(what)),
        }
    }
}

/// GeneralizedTime `YYYYMMDDHHMMSS[.f]Z` to Unix seconds.
fn generalized_time(v: &[u8]) -> Result<i64, OcspError> {
    let s = std::str::from_utf8(v).map_err(|_| OcspError::Malformed("time not ASCII"))?;
    let bad = OcspError::Malformed("bad GeneralizedTime");
    if s.len() < 15 || !s.ends_with('Z') {
        return Err(bad);
    }
    let num = |r: std::ops::Range<usize>| {
        s.get(r)
            .and_then(|x| x.parse::<i64>().ok())
            .ok_or(bad.clone())
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(8..10)?, num(10..12)?, num(12..14)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad);
    }
    Ok(crate::civil_time::days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Strip leading zero bytes of a DER INTEGER (for serial comparison).
fn minimal(int: &[u8]) -> &[u8] {
    let start = int.iter().position(|b| *b != 0).unwrap_or(int.len());
    &int[start..]
}

/// Parse a stapled response; `leaf_serial` (big-endian, any leading zeros)
/// picks the SingleResponse about the leaf, else the first one is used.
pub fn parse(der: &[u8], leaf_serial: Option<&[u8]>) -> Result<OcspInfo, OcspError> {
    let mut outer = Der(Der(der).expect(0x30, "OCSPResponse")?);
    let status = outer.expect(0x0a, "responseStatus")?;
    match status {
        [0] => {}
        [s] => return Err(OcspError::ResponderStatus(*s)),
        _ => return Err(OcspError::Malformed("responseStatus")),
    }
    let mut bytes = Der(Der(outer.expect(0xa0, "responseBytes")?).expect(0x30, "ResponseBytes")?);
    if bytes.expect(0x06, "responseType")? != OID_OCSP_BASIC {
        return Err(OcspError::NotBasic);
    }
    let basic = bytes.expect(0x04, "response")?;
    let mut basic = Der(Der(basic).expect(0x30, "BasicOCSPResponse")?);
    let mut tbs = Der(basic.expect(0x30, "ResponseData")?);
    if tbs.peek_tag() == Some(0xa0) {
        tbs.read()?; // version
    }
    let (responder, _) = tbs.read()?; // responderID: [1] byName or [2] byKey
    if responder != 0xa1 && responder != 0xa2 {
        return Err(OcspError::Malformed("responderID"));
    }
    let produced_at = generalized_time(tbs.expect(0x18, "producedAt")?)?;
    let mut responses = Der(tbs.expect(0x30, "responses")?);
    let mut chosen: Option<OcspInfo> = None;
    while !responses.is_empty() {
        let mut single = Der(responses.expect(0x30, "SingleResponse")?);
        let mut cert_id = Der(single.expect(0x30, "CertID")?);
        cert_id.expect(0x30, "hashAlgorithm")?;
        cert_id.expect(0x04, "issuerNameHash")?;
        cert_id.expect(0x04, "issuerKeyHash")?;
        let serial = cert_id.expect(0x02, "serialNumber")?;
        let status = match single.read()? {
            (0x80, _) => OcspStatus::Good,
            (0xa1, _) => OcspStatus::Revoked,
            (0x82, _) => OcspStatus::Unknown,
            _ => return Err(OcspError::Malformed("certStatus")),
        };
        let this_update = generalized_time(single.expect(0x18, "thisUpdate")?)?;
        let next_update = if single.peek_tag() == Some(0xa0) {
            let (_, inner) = single.read()?;
            Some(generalized_time(Der(inner).expect(0x18, "nextUpdate")?)?)
        } else {
            None
        };
        let info = OcspInfo {
            status,
            produced_at,
            this_update,
            next_update,
        };
        let matches = leaf_serial.is_some_and(|s| minimal(s) == minimal(serial));
        if matches {
            return Ok(info);
        }
        chosen.get_or_insert(info);
    }
    chosen.ok_or(OcspError::NoResponse)
}

/// A minimal DER encoder for building test responses (used by the unit
/// tests here and by integration tests that staple OCSP).
pub mod encode {
    pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = value.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(value);
        out
    }

    /// `YYYYMMDDHHMMSSZ` for a Unix time.
    pub fn generalized_time(unix: i64) -> Vec<u8> {
        let days = unix.div_euclid(86_400);
        let rem = unix.rem_euclid(86_400);
        let (y, m, d) = crate::civil_time::civil_from_days(days);
        let s = format!(
            "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        );
        tlv(0x18, s.as_bytes())
    }

    /// An unsigned-but-well-formed OCSPResponse with one SingleResponse.
    /// `status`: 0 good, 1 revoked, 2 unknown.
    pub fn response(
        serial: &[u8],
        status: u8,
        this_update: i64,
        next_update: Option<i64>,
    ) -> Vec<u8> {
        let sha1 = tlv(
            0x30,
            &[tlv(0x06, &[0x2b, 0x0e, 0x03, 0x02, 0x1a]), vec![0x05, 0x00]].concat(),
        );
        let cert_id = tlv(
            0x30,
            &[
                sha1.clone(),
                tlv(0x04, &[0u8; 20]),
                tlv(0x04, &[0u8; 20]),
                tlv(0x02, serial),
            ]
            .concat(),
        );
        let cert_status = match status {
            0 => vec![0x80, 0x00],
            1 => tlv(0xa1, &generalized_time(this_update)),
            _ => vec![0x82, 0x00],
        };
        let mut single = [cert_id, cert_status, generalized_time(this_update)].concat();
        if let Some(n) = next_update {
            single.extend(tlv(0xa0, &generalized_time(n)));
        }
        let responses = tlv(0x30, &tlv(0x30, &single));
        let responder = tlv(0xa2, &tlv(0x04, &[1u8; 20]));
        let tbs = tlv(
            0x30,
            &[responder, generalized_time(this_update), responses].concat(),
        );
        let basic = tlv(0x30, &[tbs, sha1, tlv(0x03, &[0x00, 0x01, 0x02])].concat());
        let bytes = tlv(
            0x30,
            &[tlv(0x06, super::OID_OCSP_BASIC), tlv(0x04, &basic)].concat(),
        );
        tlv(0x30, &[tlv(0x0a, &[0]), tlv(0xa0, &bytes)].concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_statuses() {
        for (code, status) in [
            (0, OcspStatus::Good),
            (1, OcspStatus::Revoked),
            (2, OcspStatus::Unknown),
        ] {
            let der = encode::response(&[0x0a, 0xbc], code, 1_700_000_000, Some(1_700_600_000));
            let info = parse(&der, Some(&[0x00, 0x0a, 0xbc])).unwrap();
            assert_eq!(info.status, status);
            assert_eq!(info.this_update, 1_700_000_000);
            assert_eq!(info.next_update, Some(1_700_600_000));
        }
    }

    #[test]
    fn without_next_update() {
        let der = encode::response(&[1], 0, 1_800_000_000, None);
        assert_eq!(parse(&der, None).unwrap().next_update, None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(&[], None).is_err());
        assert!(parse(&[0x30, 0x82, 0xff], None).is_err());
        assert!(parse(&[0x30, 0x03, 0x0a, 0x01, 0x06], None).is_err());
        assert_eq!(
            parse(&[0x30, 0x03, 0x0a, 0x01, 0x01], None),
            Err(OcspError::ResponderStatus(1))
        );
        let der = encode::response(&[1], 0, 1_800_000_000, None);
        for cut in 0..der.len() {
            let _ = parse(&der[..cut], None);
        }
    }

    #[test]
    fn times() {
        assert_eq!(generalized_time(b"19700101000000Z"), Ok(0));
        assert_eq!(generalized_time(b"20231114221320Z"), Ok(1_700_000_000));
        assert!(generalized_time(b"2023111422132").is_err());
    }
}
