//! SaslHandshake (17) and SaslAuthenticate (36) outside an authentication exchange: on a
//! listener without SASL, or on an authenticated connection that cannot re-authenticate (its
//! client used SaslAuthenticate v0). Kafka's KafkaApis answers both with ILLEGAL_SASL_STATE; the
//! exchange itself is the connection's (`security::sasl::Authenticator`).

use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::ResponseError;

use super::sb;

/// SaslHandshake where no handshake is expected.
pub fn handshake_out_of_place() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

/// SaslAuthenticate where no authentication is in progress.
pub fn authenticate_out_of_place() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(sb(
            "SaslAuthenticate request received after successful authentication",
        )))
}
