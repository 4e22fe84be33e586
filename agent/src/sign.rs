//! SigV4 for a request to the launcher's `AWS_IAM` Function URL, with
//! the `aws-sigv4` crate (the AWS SDK's own signer): service `lambda`, the
//! URL's region, the caller's credentials. The signer is a pure function of
//! its inputs (the time included), so the AWS SigV4 test-suite vectors
//! check it (`tests/sigv4_vectors.rs`).

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// The service name a Lambda Function URL verifies signatures for.
pub const SERVICE: &str = "lambda";

/// What to sign.
#[derive(Debug, Clone, Copy)]
pub struct ToSign<'a> {
    pub method: &'a str,
    /// The full URL (scheme, host, path, query).
    pub url: &'a str,
    /// The headers the request will carry (`host` is taken from the URL
    /// when absent).
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Signing failed: the request could not be expressed for the signer.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request: {0}")]
pub struct SignError(String);

/// The headers to add to the request (`authorization`, `x-amz-date`, and
/// `x-amz-security-token` for temporary credentials; `x-amz-content-sha256`
/// when `content_sha256_header`).
pub fn sign_v4(
    req: ToSign<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
    content_sha256_header: bool,
) -> Result<Vec<(String, String)>, SignError> {
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    if content_sha256_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        req.method,
        req.url,
        req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(req.body),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}
