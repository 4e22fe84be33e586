//! What an `AWS_IAM` Function URL does before it invokes the function:
//! verify the request's SigV4 signature (service `lambda`, its region,
//! within 5 minutes of the signing time) and put the signer's identity in
//! `requestContext.authorizer.iam`. Written from the SigV4 specification,
//! independently of the `aws-sigv4` signer the agent uses, and checked here
//! against the AWS test-suite vectors the agent's fixtures carry.

use crate::lambda_runtime::IamCaller;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// How far the signing time may be from now.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// An access key the front knows: its secret and who it belongs to.
#[derive(Debug, Clone)]
pub struct IamKey {
    pub secret_access_key: String,
    pub caller: IamCaller,
}

/// Why a request was refused (each is a `403` from a Function URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    Unsigned,
    Malformed(String),
    UnknownKey(String),
    /// Signed for another region or service.
    WrongScope(String),
    /// The signing time is more than 5 minutes from now.
    Expired(String),
    Mismatch,
}

impl Refusal {
    /// The body a Function URL answers with.
    pub fn message(&self) -> String {
        match self {
            Refusal::Unsigned | Refusal::UnknownKey(_) => "Forbidden".into(),
            Refusal::Malformed(m) => format!("Authorization header is malformed: {m}"),
            Refusal::WrongScope(m) => format!("Credential should be scoped to {m}"),
            Refusal::Expired(m) => m.clone(),
            Refusal::Mismatch => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `YYYYMMDDTHHMMSSZ` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(s, f).ok()?.assume_utc();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).ok()?))
}

fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// Verify one request; answers the signer's identity.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    keys: &HashMap<String, IamKey>,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<IamCaller, Refusal> {
    let header = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let auth = *header("authorization").first().ok_or(Refusal::Unsigned)?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| Refusal::Malformed("not AWS4-HMAC-SHA256".into()))?;
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| Refusal::Malformed(format!("`{part}`")))?;
        fields.insert(k, v);
    }
    let field = |k: &str| {
        fields
            .get(k)
            .copied()
            .ok_or_else(|| Refusal::Malformed(format!("no {k}")))
    };
    let credential = field("Credential")?;
    let signed_headers = field("SignedHeaders")?;
    let signature = field("Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, scope_region, scope_service, terminator] = scope[..] else {
        return Err(Refusal::Malformed(format!("Credential `{credential}`")));
    };
    if terminator != "aws4_request" {
        return Err(Refusal::Malformed(format!("Credential `{credential}`")));
    }
    let key = keys
        .get(access_key)
        .ok_or_else(|| Refusal::UnknownKey(access_key.to_string()))?;
    if scope_region != region || scope_service != service {
        return Err(Refusal::WrongScope(format!(
            "{region}/{service}, not {scope_region}/{scope_service}"
        )));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(Refusal::Malformed(
            "host and x-amz-date must be signed".into(),
        ));
    }
    let amz = *header("x-amz-date")
        .first()
        .ok_or_else(|| Refusal::Malformed("no X-Amz-Date".into()))?;
    let signed_at =
        parse_amz_date(amz).ok_or_else(|| Refusal::Malformed(format!("X-Amz-Date `{amz}`")))?;
    if !amz.starts_with(date) {
        return Err(Refusal::Malformed(
            "Credential date is not X-Amz-Date's".into(),
        ));
    }
    match now.duration_since(signed_at) {
        Ok(d) if d > MAX_SKEW => {
            return Err(Refusal::Expired(format!(
                "Signature expired: {amz} is now earlier than {} ({} - 5 min.)",
                amz_date(now - MAX_SKEW),
                amz_date(now)
            )));
        }
        Err(e) if e.duration() > MAX_SKEW => {
            return Err(Refusal::Expired(format!(
                "Signature not yet current: {amz} is still later than {} ({} + 5 min.)",
                amz_date(now + MAX_SKEW),
                amz_date(now)
            )));
        }
        _ => {}
    }
    let body_hash = sha256_hex(body);
    if let Some(claimed) = header("x-amz-content-sha256").first()
        && *claimed != body_hash
    {
        return Err(Refusal::Mismatch);
    }
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let canonical_uri = encode(path, true);
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&decode(k), false), encode(&decode(v), false))
        })
        .collect();
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in &names {
        let values = header(name);
        if values.is_empty() {
            return Err(Refusal::Malformed(format!(
                "signed header `{name}` is missing"
            )));
        }
        let joined = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(",");
        canonical_headers.push_str(&format!("{name}:{joined}\n"));
    }
    let canonical = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{body_hash}"
    );
    let scope = format!("{date}/{scope_region}/{scope_service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k = hmac(
        format!("AWS4{}", key.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k = hmac(&k, scope_region.as_bytes());
    let k = hmac(&k, scope_service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    let expected = hex::encode(hmac(&k, to_sign.as_bytes()));
    if expected.as_bytes().ct_eq(signature.as_bytes()).into() {
        Ok(key.caller.clone())
    } else {
        Err(Refusal::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test-suite case from the agent's fixtures: (request headers with the
    /// signed ones, body, path).
    fn vector(name: &str) -> (String, String, Vec<(String, String)>, Vec<u8>) {
        let p = crate::workspace_dir()
            .join("agent/tests/fixtures/sigv4")
            .join(name)
            .join("header-signed-request.txt");
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let mut first = lines.next().unwrap().split(' ');
        let method = first.next().unwrap().to_string();
        let path = first.next().unwrap().to_string();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        (method, path, headers, body.as_bytes().to_vec())
    }

    fn keys() -> HashMap<String, IamKey> {
        HashMap::from([(
            "AKIDEXAMPLE".to_string(),
            IamKey {
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                caller: IamCaller {
                    account_id: "111122223333".into(),
                    user_arn: "arn:aws:iam::111122223333:user/example".into(),
                    user_id: "AIDAEXAMPLE".into(),
                    access_key: "AKIDEXAMPLE".into(),
                },
            },
        )])
    }

    fn at_vector_time() -> SystemTime {
        parse_amz_date("20150830T123600Z").unwrap()
    }

    #[test]
    fn the_test_suite_signed_requests_verify_and_a_changed_byte_does_not() {
        for name in [
            "get-vanilla",
            "get-vanilla-query-order-key-case",
            "post-x-www-form-urlencoded",
            "post-header-key-sort",
        ] {
            let (m, p, h, b) = vector(name);
            let ok = verify(
                &m,
                &p,
                &h,
                &b,
                &keys(),
                "us-east-1",
                "service",
                at_vector_time(),
            );
            assert!(ok.is_ok(), "{name}: {ok:?}");
            let mut h2 = h.clone();
            h2.push(("x-ignored".into(), "1".into()));
            assert!(
                verify(
                    &m,
                    &p,
                    &h2,
                    &b,
                    &keys(),
                    "us-east-1",
                    "service",
                    at_vector_time()
                )
                .is_ok(),
                "{name}: an unsigned header does not matter"
            );
            let tampered = format!("{p}{}", if p.contains('?') { "&x=1" } else { "?x=1" });
            assert_eq!(
                verify(
                    &m,
                    &tampered,
                    &h,
                    &b,
                    &keys(),
                    "us-east-1",
                    "service",
                    at_vector_time()
                ),
                Err(Refusal::Mismatch),
                "{name}"
            );
        }
    }

    #[test]
    fn a_signature_older_than_five_minutes_is_expired_and_another_region_refused() {
        let (m, p, h, b) = vector("get-vanilla");
        let later = at_vector_time() + Duration::from_secs(301);
        let e = verify(&m, &p, &h, &b, &keys(), "us-east-1", "service", later).unwrap_err();
        assert!(
            matches!(&e, Refusal::Expired(msg) if msg.starts_with("Signature expired")),
            "{e:?}"
        );
        let e = verify(
            &m,
            &p,
            &h,
            &b,
            &keys(),
            "eu-west-1",
            "service",
            at_vector_time(),
        )
        .unwrap_err();
        assert!(matches!(e, Refusal::WrongScope(_)), "{e:?}");
        assert_eq!(
            verify(
                &m,
                &p,
                &[],
                &b,
                &keys(),
                "us-east-1",
                "service",
                at_vector_time()
            ),
            Err(Refusal::Unsigned)
        );
    }
}
