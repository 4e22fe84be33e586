//! The launcher's HTTP API from the agent's side: one signed (or bearer)
//! request per ask, the answer turned into an [`Outcome`], and the wait
//! for a human's decision.

use crate::config::{Auth, Settings};
use crate::outcome::{Kind, Outcome};
use crate::sign::{SERVICE, ToSign, sign_v4};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use launcher_core::request::{Action, IDEMPOTENCY_KEY_HEADER, Lifecycle, idempotency_key_ok};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// How far a Function URL lets the request's signing time drift.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Why an ask got no outcome from the launcher. Every message names what to
/// fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("invalid request: field `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error(
        "no AWS credentials: {0}. Set AWS_PROFILE (or --aws-profile / the profile's aws_profile), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role is attached; for a local `launcher serve`, give its bearer token (MICROVM_TOKEN or --token-file)"
    )]
    NoCredentials(String),
    #[error(
        "clock skew: this machine's clock is {skew_seconds} s {direction} the Function URL's ({server_date}); SigV4 signatures are accepted within 5 minutes. Fix the clock (NTP), then retry"
    )]
    ClockSkew {
        skew_seconds: u64,
        direction: &'static str,
        server_date: String,
    },
    #[error(
        "the launcher received no IAM identity with this signed request: {url} is not an AWS_IAM Function URL (its AuthType is NONE, or something in front of it drops the identity). Use the launcher's Function URL with AuthType AWS_IAM"
    )]
    NotIamUrl { url: String },
    #[error(
        "the launcher does not know this bearer token ({url}): check MICROVM_TOKEN / the token file against the agent's bearer_token_sha256 in the launcher's config (`launcher hash-token`)"
    )]
    UnknownToken { url: String },
    #[error(
        "the Function URL refused the signed request (HTTP {status}: {message}). The credentials' principal needs lambda:InvokeFunctionUrl and lambda:InvokeFunction (with condition lambda:InvokedViaFunctionUrl = true) on the launcher function, and the region ({region}) must be the function's"
    )]
    Forbidden {
        status: u16,
        message: String,
        region: String,
    },
    #[error("the launcher answered HTTP {status} {code}: {message}{}", .field.as_ref().map(|f| format!(" (field `{f}`)")).unwrap_or_default())]
    Launcher {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
    },
    #[error("cannot reach the launcher at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("the launcher's answer to {what} is not what its API documents: {message}")]
    BadAnswer { what: String, message: String },
    #[error("{0}")]
    Sign(#[from] crate::sign::SignError),
}

impl ClientError {
    /// A short machine-readable code for `--json` and MCP results.
    pub fn code(&self) -> String {
        match self {
            ClientError::Config(_) => "config".into(),
            ClientError::Invalid { .. } => "invalid_request".into(),
            ClientError::NoCredentials(_) => "no_credentials".into(),
            ClientError::ClockSkew { .. } => "clock_skew".into(),
            ClientError::NotIamUrl { .. } => "not_aws_iam_function_url".into(),
            ClientError::UnknownToken { .. } => "unknown_bearer_token".into(),
            ClientError::Forbidden { .. } => "forbidden".into(),
            ClientError::Launcher { code, .. } => code.clone(),
            ClientError::Transport { .. } => "unreachable".into(),
            ClientError::BadAnswer { .. } => "bad_answer".into(),
            ClientError::Sign(_) => "signing".into(),
        }
    }

    /// Whether waiting may retry after this error (the launcher or the
    /// network was briefly unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Launcher { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The error as `--json` prints it.
    pub fn to_json(&self) -> Value {
        let mut e = serde_json::json!({"code": self.code(), "message": self.to_string()});
        if let ClientError::Launcher { field: Some(f), .. }
        | ClientError::Invalid { field: f, .. } = self
        {
            e["field"] = serde_json::json!(f);
        }
        serde_json::json!({"outcome": "error", "exit_code": Kind::Error.exit_code(), "error": e})
    }
}

/// The source of the current time (tests move it).
pub type Clock = fn() -> SystemTime;

/// A client of one launcher.
pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    credentials: Option<SharedCredentialsProvider>,
    clock: Clock,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

/// The HTTP method and path of an action, and its JSON body.
pub fn route(action: &Action) -> (String, Value) {
    let (path, body) = match action {
        Action::Run(r) => ("/microvms/run-request".to_string(), serde_json::to_value(r)),
        Action::AuthToken {
            microvm_id,
            request,
        } => (
            format!("/microvms/{microvm_id}/auth-token-request"),
            serde_json::to_value(request),
        ),
        Action::ShellToken {
            microvm_id,
            request,
        } => (
            format!("/microvms/{microvm_id}/shell-token-request"),
            serde_json::to_value(request),
        ),
        Action::Lifecycle {
            microvm_id,
            op,
            request,
        } => {
            let verb = match op {
                Lifecycle::Suspend => "suspend",
                Lifecycle::Resume => "resume",
                Lifecycle::Terminate => "terminate",
            };
            (
                format!("/microvms/{microvm_id}/{verb}"),
                serde_json::to_value(request),
            )
        }
    };
    (path, body.unwrap_or(Value::Null))
}

impl Client {
    /// A client for `settings`; for IAM auth, the standard AWS credential
    /// chain (optionally a named profile) is set up, not yet asked.
    pub async fn new(settings: Settings) -> Client {
        let credentials = match &settings.auth {
            Auth::Iam {
                region,
                aws_profile,
            } => {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(region.clone()));
                if let Some(p) = aws_profile {
                    loader = loader.profile_name(p);
                }
                loader.load().await.credentials_provider()
            }
            Auth::Bearer(_) => None,
        };
        Client::with_credentials(settings, credentials, SystemTime::now)
    }

    /// A client with these credentials and clock (tests).
    pub fn with_credentials(
        settings: Settings,
        credentials: Option<SharedCredentialsProvider>,
        clock: Clock,
    ) -> Client {
        Client {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            settings,
            credentials,
            clock,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn credentials(&self) -> Result<Credentials, ClientError> {
        let Some(p) = &self.credentials else {
            return Err(ClientError::NoCredentials(
                "no credential provider is configured".into(),
            ));
        };
        p.provide_credentials()
            .await
            .map_err(|e| ClientError::NoCredentials(error_chain(&e)))
    }

    /// One request; answers (status, JSON body).
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value), ClientError> {
        let url = format!("{}{path}", self.settings.url);
        let bytes = body.map(Value::to_string).unwrap_or_default().into_bytes();
        let mut headers: Vec<(String, String)> = Vec::new();
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        if let Some(k) = idempotency_key {
            headers.push((IDEMPOTENCY_KEY_HEADER.to_ascii_lowercase(), k.to_string()));
        }
        let region = match &self.settings.auth {
            Auth::Bearer(t) => {
                headers.push(("authorization".into(), format!("Bearer {}", t.expose())));
                None
            }
            Auth::Iam { region, .. } => {
                let creds = self.credentials().await?;
                let added = sign_v4(
                    ToSign {
                        method,
                        url: &url,
                        headers: &headers,
                        body: &bytes,
                    },
                    &creds,
                    region,
                    SERVICE,
                    (self.clock)(),
                    true,
                )?;
                headers.extend(added);
                Some(region.clone())
            }
        };
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut rb = self.http.request(m, &url);
        for (k, v) in &headers {
            rb = rb.header(k, v);
        }
        if body.is_some() {
            rb = rb.body(bytes);
        }
        let resp = rb.send().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            message: error_chain(&e),
        })?;
        let status = resp.status().as_u16();
        let date = resp
            .headers()
            .get("date")
            .and_then(|d| d.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            message: error_chain(&e),
        })?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        let launcher_error = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .filter(|e| e.get("code").is_some());
        if let (Some(region), 403, None) = (&region, status, launcher_error) {
            // Not the launcher's answer: the Function URL's own IAM check.
            if let Some(skew) = date.as_deref().and_then(|d| skew_from(d, (self.clock)())) {
                return Err(skew);
            }
            let message = json
                .as_ref()
                .and_then(|j| j.get("Message").or_else(|| j.get("message")))
                .and_then(Value::as_str)
                .map_or_else(|| text.chars().take(300).collect(), str::to_string);
            return Err(ClientError::Forbidden {
                status,
                message,
                region: region.clone(),
            });
        }
        if status == 401 && launcher_error.is_some_and(|e| e["code"] == "unauthenticated") {
            return Err(match &self.settings.auth {
                Auth::Iam { .. } => ClientError::NotIamUrl {
                    url: self.settings.url.clone(),
                },
                Auth::Bearer(_) => ClientError::UnknownToken {
                    url: self.settings.url.clone(),
                },
            });
        }
        match json {
            Some(v) => Ok((status, v)),
            None => Err(ClientError::BadAnswer {
                what: format!("{method} {path}"),
                message: format!(
                    "HTTP {status}, body not JSON: {}",
                    text.chars().take(200).collect::<String>()
                ),
            }),
        }
    }

    /// Submit an ask. The action is validated first with the launcher's
    /// own rules, so a bad field is named without a round trip.
    pub async fn submit(
        &self,
        action: &Action,
        idempotency_key: Option<&str>,
    ) -> Result<Outcome, ClientError> {
        action.validate().map_err(|e| ClientError::Invalid {
            field: e.field,
            message: e.message,
        })?;
        if let Some(k) = idempotency_key
            && !idempotency_key_ok(k)
        {
            return Err(ClientError::Invalid {
                field: "idempotency_key".into(),
                message: "must be 1 to 255 visible ASCII characters".into(),
            });
        }
        let (path, body) = route(action);
        let (status, answer) = self
            .send("POST", &path, Some(&body), idempotency_key)
            .await?;
        let what = format!("POST {path}");
        match status {
            200 => outcome_of(answer, Some(Kind::Executed), &what),
            202 => {
                let state = answer
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("pending")
                    .to_string();
                outcome_of(answer, Kind::of_state(&state), &what)
            }
            403 if answer.pointer("/error/code").and_then(Value::as_str) == Some("blocked") => {
                Ok(Outcome {
                    kind: Kind::Blocked,
                    request_id: None,
                    answer,
                })
            }
            _ => Err(launcher_error(status, &answer)),
        }
    }

    /// `GET /requests/{id}`.
    pub async fn status(&self, request_id: &str) -> Result<Outcome, ClientError> {
        if request_id.is_empty()
            || request_id.len() > 256
            || !request_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            || request_id.chars().all(|c| c == '.')
        {
            return Err(ClientError::Invalid {
                field: "request_id".into(),
                message: format!("`{request_id}` is not a request id (req_…)"),
            });
        }
        let path = format!("/requests/{request_id}");
        let (status, answer) = self.send("GET", &path, None, None).await?;
        if status != 200 {
            return Err(launcher_error(status, &answer));
        }
        let state = answer
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        outcome_of(answer, Kind::of_state(&state), &format!("GET {path}"))
    }

    /// Follow a pending outcome until it is final or `timeout` passes
    /// (`None`: no limit). `progress(request_id, elapsed)` is called about
    /// once a second. Polls every `poll` (growing to at most 15 s);
    /// transient errors are retried, up to 5 in a row.
    pub async fn wait(
        &self,
        first: Outcome,
        poll: Duration,
        timeout: Option<Duration>,
        progress: &mut (dyn FnMut(&str, Duration) + Send),
    ) -> Result<Outcome, ClientError> {
        let Some(id) = first.request_id.clone() else {
            return Ok(first);
        };
        if first.kind.is_final() {
            return Ok(first);
        }
        let start = tokio::time::Instant::now();
        let mut interval = poll.max(Duration::from_millis(100));
        let mut next_poll = start + interval;
        let mut failures = 0u32;
        let mut last = first;
        loop {
            let elapsed = start.elapsed();
            if timeout.is_some_and(|t| elapsed >= t) {
                return Ok(last);
            }
            progress(&id, elapsed);
            let tick = (start + elapsed + Duration::from_secs(1)).min(next_poll);
            tokio::time::sleep_until(tick).await;
            if tokio::time::Instant::now() < next_poll {
                continue;
            }
            match self.status(&id).await {
                Ok(o) if o.kind.is_final() => return Ok(o),
                Ok(o) => {
                    failures = 0;
                    last = o;
                }
                Err(e) if e.is_transient() && failures < 5 => failures += 1,
                Err(e) => return Err(e),
            }
            interval = (interval * 3 / 2).min(Duration::from_secs(15).max(poll));
            next_poll = tokio::time::Instant::now() + interval;
        }
    }
}

fn outcome_of(answer: Value, kind: Option<Kind>, what: &str) -> Result<Outcome, ClientError> {
    let request_id = answer
        .get("request_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    match kind {
        Some(kind) => Ok(Outcome {
            kind,
            request_id,
            answer,
        }),
        None => Err(ClientError::BadAnswer {
            what: what.to_string(),
            message: format!("unknown state in {answer}"),
        }),
    }
}

fn launcher_error(status: u16, answer: &Value) -> ClientError {
    let e = answer.get("error");
    let s = |k: &str| e.and_then(|e| e.get(k)).and_then(Value::as_str);
    ClientError::Launcher {
        status,
        code: s("code").unwrap_or("http_error").to_string(),
        message: s("message")
            .map_or_else(|| answer.to_string(), str::to_string)
            .chars()
            .take(1000)
            .collect(),
        field: s("field").map(str::to_string),
    }
}

/// Clock skew shown by the `Date` of a refused answer, when it is beyond
/// what SigV4 accepts.
fn skew_from(date: &str, now: SystemTime) -> Option<ClientError> {
    use aws_smithy_types::date_time::{DateTime, Format};
    let server = DateTime::from_str(date, Format::HttpDate).ok()?;
    let server = SystemTime::try_from(server).ok()?;
    let (skew, direction) = match now.duration_since(server) {
        Ok(d) => (d, "ahead of"),
        Err(e) => (e.duration(), "behind"),
    };
    (skew > MAX_CLOCK_SKEW).then(|| ClientError::ClockSkew {
        skew_seconds: skew.as_secs(),
        direction,
        server_date: date.to_string(),
    })
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_five_minutes_off_is_accepted_and_ten_is_clock_skew() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let date = |t: SystemTime| {
            aws_smithy_types::DateTime::from(t)
                .fmt(aws_smithy_types::date_time::Format::HttpDate)
                .unwrap()
        };
        assert!(skew_from(&date(now - Duration::from_secs(290)), now).is_none());
        let e = skew_from(&date(now - Duration::from_secs(600)), now).unwrap();
        assert!(e.to_string().contains("600 s ahead of"), "{e}");
        let e = skew_from(&date(now + Duration::from_secs(3600)), now).unwrap();
        assert!(e.to_string().contains("3600 s behind"), "{e}");
    }
}
