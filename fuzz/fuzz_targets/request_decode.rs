//! Fuzz target: any bytes as a request frame go through the broker's decode path (header parse,
//! version check, length check, kafka-protocol decode) without panicking or allocating the sizes
//! the bytes claim.
#![no_main]

use kafka_protocol::messages::{ApiKey, RequestKind};
use libfuzzer_sys::fuzz_target;
use runnel_protocol::frame::{parse_request_head, peek_prefix};
use runnel_protocol::validate::check_request_body;
use runnel_protocol::versions::{check, VersionCheck};

fuzz_target!(|data: &[u8]| {
    let Ok((key, version, _)) = peek_prefix(data) else {
        return;
    };
    if check(key, version) != VersionCheck::Served {
        return;
    }
    let Ok(api_key) = ApiKey::try_from(key) else {
        return;
    };
    let Ok(head) = parse_request_head(data, api_key.request_header_version(version)) else {
        return;
    };
    let body = &data[head.header_len..];
    if check_request_body(key, version, body).is_err() {
        return;
    }
    let mut bytes = bytes::Bytes::copy_from_slice(body);
    let _ = RequestKind::decode(api_key, &mut bytes, version);
});
