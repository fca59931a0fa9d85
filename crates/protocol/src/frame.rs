//! Request headers and response frames.
//!
//! The broker reads a frame (a 4-byte size, refused above `socket.request.max.bytes`, then that many
//! bytes); this module parses the request header from it without panicking on short or hostile input,
//! and encodes responses with their size prefix and the right response-header version.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};

use crate::versions::SUPPORTED_APIS;

/// Why a request header could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    /// The frame ended inside the header.
    #[error("request header truncated")]
    Truncated,
    /// A length or varint in the header is invalid.
    #[error("malformed request header: {0}")]
    Malformed(&'static str),
}

/// The parts of a request header the broker needs, read without allocation beyond the client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// API key as sent (may be unknown).
    pub api_key: i16,
    /// API version as sent.
    pub api_version: i16,
    /// Correlation id echoed in the response.
    pub correlation_id: i32,
    /// Client id, if any.
    pub client_id: Option<String>,
    /// Length of the header in bytes; the body starts there.
    pub header_len: usize,
}

/// Reads the fixed prefix of a request header: api key, api version, correlation id.
pub fn peek_prefix(frame: &[u8]) -> Result<(i16, i16, i32), HeaderError> {
    if frame.len() < 8 {
        return Err(HeaderError::Truncated);
    }
    Ok((
        i16::from_be_bytes([frame[0], frame[1]]),
        i16::from_be_bytes([frame[2], frame[3]]),
        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    ))
}

/// Reads an unsigned varint (at most 5 bytes) at `pos`, advancing it.
pub fn read_uvarint(buf: &[u8], pos: &mut usize) -> Result<u32, HeaderError> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let b = *buf.get(*pos).ok_or(HeaderError::Truncated)?;
        *pos += 1;
        value |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(HeaderError::Malformed("varint longer than 5 bytes"))
}

/// Parses a request header. `header_version` is 1 (classic) or 2 (flexible, with tagged fields);
/// version 0 (no client id) is only used by controlled-shutdown v0, which Runnel does not serve.
pub fn parse_request_head(frame: &[u8], header_version: i16) -> Result<RequestHead, HeaderError> {
    let (api_key, api_version, correlation_id) = peek_prefix(frame)?;
    let mut pos = 8;
    let mut client_id = None;
    if header_version >= 1 {
        if frame.len() < pos + 2 {
            return Err(HeaderError::Truncated);
        }
        let len = i16::from_be_bytes([frame[pos], frame[pos + 1]]);
        pos += 2;
        if len >= 0 {
            let end = pos + len as usize;
            let raw = frame.get(pos..end).ok_or(HeaderError::Truncated)?;
            client_id = Some(String::from_utf8_lossy(raw).into_owned());
            pos = end;
        } else if len != -1 {
            return Err(HeaderError::Malformed("negative client id length"));
        }
    }
    if header_version >= 2 {
        let count = read_uvarint(frame, &mut pos)?;
        for _ in 0..count {
            let _tag = read_uvarint(frame, &mut pos)?;
            let size = read_uvarint(frame, &mut pos)? as usize;
            if frame.len() < pos.saturating_add(size) {
                return Err(HeaderError::Truncated);
            }
            pos += size;
        }
    }
    Ok(RequestHead {
        api_key,
        api_version,
        correlation_id,
        client_id,
        header_len: pos,
    })
}

/// Request header version for a known API key and version.
pub fn request_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    api_key.request_header_version(api_version)
}

/// Encodes a response held in a [`ResponseKind`] with its header and 4-byte size prefix.
pub fn encode_response_kind(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(api_version)
    };
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0);
    }
    body.encode(&mut buf, api_version)?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// The KIP-511 answer to an ApiVersions request of a version the broker does not know: error 35
/// (UNSUPPORTED_VERSION) and a v0 body listing the supported ranges, with a v0 response header.
pub fn api_versions_fallback(correlation_id: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(16 + SUPPORTED_APIS.len() * 6);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    buf.put_i16(kafka_protocol::ResponseError::UnsupportedVersion.code());
    buf.put_i32(SUPPORTED_APIS.len() as i32);
    for r in SUPPORTED_APIS {
        buf.put_i16(r.api_key as i16);
        buf.put_i16(r.advertised_min);
        buf.put_i16(r.max);
    }
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_v1(key: i16, ver: i16, corr: i32, client: &str) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&key.to_be_bytes());
        v.extend_from_slice(&ver.to_be_bytes());
        v.extend_from_slice(&corr.to_be_bytes());
        v.extend_from_slice(&(client.len() as i16).to_be_bytes());
        v.extend_from_slice(client.as_bytes());
        v
    }

    #[test]
    fn parses_v1_and_v2_headers() {
        let h = header_v1(3, 1, 42, "abc");
        let head = parse_request_head(&h, 1).unwrap();
        assert_eq!(
            (head.api_key, head.api_version, head.correlation_id),
            (3, 1, 42)
        );
        assert_eq!(head.client_id.as_deref(), Some("abc"));
        assert_eq!(head.header_len, h.len());

        let mut h2 = header_v1(18, 3, 7, "c");
        h2.extend_from_slice(&[1, 5, 2, 0xaa, 0xbb]); // one tagged field of 2 bytes
        let head = parse_request_head(&h2, 2).unwrap();
        assert_eq!(head.header_len, h2.len());
    }

    #[test]
    fn truncated_headers_are_errors_at_every_length() {
        let mut h = header_v1(18, 3, 7, "client");
        h.extend_from_slice(&[1, 5, 2, 0xaa, 0xbb]);
        for cut in 0..h.len() {
            assert!(parse_request_head(&h[..cut], 2).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let mut h = header_v1(3, 1, 1, "");
        h[8..10].copy_from_slice(&i16::MAX.to_be_bytes());
        assert_eq!(parse_request_head(&h, 1), Err(HeaderError::Truncated));
        h[8..10].copy_from_slice(&(-5i16).to_be_bytes());
        assert!(parse_request_head(&h, 1).is_err());
        let mut h2 = header_v1(3, 1, 1, "");
        h2.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(parse_request_head(&h2, 2).is_err());
    }

    #[test]
    fn fallback_body_is_v0() {
        let b = api_versions_fallback(9);
        let size = i32::from_be_bytes(b[0..4].try_into().unwrap()) as usize;
        assert_eq!(size, b.len() - 4);
        assert_eq!(i32::from_be_bytes(b[4..8].try_into().unwrap()), 9);
        assert_eq!(i16::from_be_bytes(b[8..10].try_into().unwrap()), 35);
        let n = i32::from_be_bytes(b[10..14].try_into().unwrap()) as usize;
        assert_eq!(n, SUPPORTED_APIS.len());
        assert_eq!(b.len(), 14 + n * 6);
    }
}
