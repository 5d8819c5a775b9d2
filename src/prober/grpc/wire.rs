//! The gRPC health check on the wire: the `grpc.health.v1` messages (prost
//! derives their protobuf encoding; no .proto file or protoc needed for two
//! one-field messages) and gRPC's length-prefixed message framing.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;

/// The health check method's path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// The largest response message the probe accepts. A HealthCheckResponse
/// is 2 bytes; anything near this is not a health answer, and a bound
/// keeps what one probe holds small whatever the target sends.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The five bytes before each message: a compressed flag, then the length
/// (big-endian u32).
const PREFIX: usize = 5;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse` (`status` is the ServingStatus
/// enum's number: an unknown number decodes, as protobuf enums are open).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// ServingStatus names, by number, as grpc-go's `String()` prints them
/// (the `serving_status` label values of blackbox).
pub const SERVING_STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/// ServingStatus SERVING, the one healthy answer.
pub const SERVING: i32 = 1;

/// The name of a ServingStatus number; an unknown number prints as the
/// number, as Go's generated enums do.
pub fn serving_status_name(status: i32) -> String {
    usize::try_from(status)
        .ok()
        .and_then(|i| SERVING_STATUSES.get(i))
        .map_or_else(|| status.to_string(), |s| (*s).to_string())
}

/// The request body: one uncompressed, length-prefixed message.
pub fn request_body(service: &str) -> Bytes {
    let message = HealthCheckRequest {
        service: service.to_string(),
    };
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(PREFIX + len);
    out.put_u8(0);
    // A service name over 4 GiB cannot come from a config file that loaded.
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message.encode_raw(&mut out);
    out.freeze()
}

/// What is wrong with a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no response message")]
    Empty,
    #[error("response ended inside a message prefix ({0} of 5 bytes)")]
    TruncatedPrefix(usize),
    #[error("response ended after {got} of {want} message bytes")]
    TruncatedMessage { got: usize, want: usize },
    /// The probe offers no compression (no `grpc-accept-encoding`), so a
    /// compressed message is one it cannot read.
    #[error("response message is compressed, though the probe accepts no compression")]
    Compressed,
    #[error("invalid compressed flag {0} in a message prefix")]
    BadFlag(u8),
    #[error("response message of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooLarge(u64),
    #[error("more than one response message for a unary call")]
    Trailing,
    #[error("malformed HealthCheckResponse: {0}")]
    Decode(String),
}

/// Check a message prefix once its five bytes are there: Ok(length) of
/// the message that follows. Used while reading, so an oversized message
/// is refused before its bytes are buffered.
pub fn check_prefix(prefix: &[u8]) -> Result<usize, FrameError> {
    let [flag, a, b, c, d, ..] = *prefix else {
        return Err(FrameError::TruncatedPrefix(prefix.len()));
    };
    match flag {
        0 => {}
        1 => return Err(FrameError::Compressed),
        other => return Err(FrameError::BadFlag(other)),
    }
    let len = u32::from_be_bytes([a, b, c, d]);
    usize::try_from(len)
        .ok()
        .filter(|n| *n <= MAX_MESSAGE)
        .ok_or(FrameError::TooLarge(u64::from(len)))
}

/// The one message of a complete unary response body.
pub fn decode_response(body: &[u8]) -> Result<HealthCheckResponse, FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    let len = check_prefix(body)?;
    let rest = body.get(PREFIX..).unwrap_or_default();
    let message = rest.get(..len).ok_or(FrameError::TruncatedMessage {
        got: rest.len(),
        want: len,
    })?;
    if rest.len() > len {
        return Err(FrameError::Trailing);
    }
    HealthCheckResponse::decode(message).map_err(|e| FrameError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(message.len() as u32).to_be_bytes());
        v.extend_from_slice(message);
        v
    }

    #[test]
    fn request_is_one_prefixed_message() {
        // field 1, wire type 2 (0x0a), length 3, "foo".
        assert_eq!(
            request_body("foo").as_ref(),
            &[0, 0, 0, 0, 5, 0x0a, 3, b'f', b'o', b'o']
        );
        // The empty service (the server as a whole) is an empty message.
        assert_eq!(request_body("").as_ref(), &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn decodes_statuses() {
        // status = SERVING (field 1, varint 1).
        assert_eq!(decode_response(&framed(0, &[0x08, 1])).unwrap().status, 1);
        // UNKNOWN is the default: proto3 leaves it off the wire.
        assert_eq!(decode_response(&framed(0, &[])).unwrap().status, 0);
        // An unknown field is skipped, an unknown enum number kept.
        let msg = [0x10, 7, 0x08, 9];
        assert_eq!(decode_response(&framed(0, &msg)).unwrap().status, 9);
        assert_eq!(serving_status_name(2), "NOT_SERVING");
        assert_eq!(serving_status_name(3), "SERVICE_UNKNOWN");
        assert_eq!(serving_status_name(9), "9");
        assert_eq!(serving_status_name(-1), "-1");
    }

    #[test]
    fn refuses_bad_frames() {
        assert_eq!(decode_response(&[]), Err(FrameError::Empty));
        assert_eq!(
            decode_response(&[0, 0, 0]),
            Err(FrameError::TruncatedPrefix(3))
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 4, 0x08]),
            Err(FrameError::TruncatedMessage { got: 1, want: 4 })
        );
        assert_eq!(
            decode_response(&framed(1, &[0x08, 1])),
            Err(FrameError::Compressed)
        );
        assert_eq!(
            decode_response(&framed(2, &[0x08, 1])),
            Err(FrameError::BadFlag(2))
        );
        let mut two = framed(0, &[0x08, 1]);
        two.extend(framed(0, &[0x08, 1]));
        assert_eq!(decode_response(&two), Err(FrameError::Trailing));
        // A varint cut short is not a message.
        assert!(matches!(
            decode_response(&framed(0, &[0x08])),
            Err(FrameError::Decode(_))
        ));
    }

    #[test]
    fn oversized_messages_are_refused_from_the_prefix() {
        let over = (MAX_MESSAGE + 1) as u32;
        let mut prefix = vec![0];
        prefix.extend_from_slice(&over.to_be_bytes());
        assert_eq!(
            check_prefix(&prefix),
            Err(FrameError::TooLarge(u64::from(over)))
        );
        prefix[1..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            check_prefix(&prefix),
            Err(FrameError::TooLarge(u64::from(u32::MAX)))
        );
        assert_eq!(check_prefix(&framed(0, &[0; MAX_MESSAGE])), Ok(MAX_MESSAGE));
    }
}
