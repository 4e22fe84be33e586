//! Where the launcher is and how to prove who we are, from flags, the
//! environment and a small profile file, as a pure function
//! ([`Settings::from_parts`]); only `main` reads files and the environment.
//!
//! The profile file (`~/.config/microvm/config.toml`, or `MICROVM_CONFIG`)
//! holds one table per profile:
//!
//! ```toml
//! [default]
//! url = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
//! owner = "platform-team"
//! aws_profile = "ci-agent"
//!
//! [local]
//! url = "http://127.0.0.1:8080"
//! token_file = "/home/me/.config/microvm/dev-token"
//! ```
//!
//! Precedence: flag, then environment, then the profile's key.

use serde::Deserialize;
use std::collections::HashMap;

/// How requests prove the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// SigV4 for an `AWS_IAM` Function URL: service `lambda`, this region,
    /// credentials from the standard chain (optionally this AWS profile).
    Iam {
        region: String,
        aws_profile: Option<String>,
    },
    /// `Authorization: Bearer` for a local `launcher serve`.
    Bearer(BearerToken),
}

/// A bearer token whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    pub fn new(token: impl Into<String>) -> BearerToken {
        BearerToken(token.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

/// Everything a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The launcher's base URL, without a trailing slash.
    pub url: String,
    pub auth: Auth,
    /// Default `owner` for asks that name none.
    pub owner: Option<String>,
}

/// A setting that is missing or wrong, naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    /// `--url`, `MICROVM_URL`, `profile file /x/config.toml [local].url`, ...
    pub source_name: String,
    pub message: String,
}

fn err(source_name: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        source_name: source_name.into(),
        message: message.into(),
    }
}

/// The values given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub auth: Option<String>,
    pub token_file: Option<String>,
    pub aws_profile: Option<String>,
}

/// One table of the profile file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub url: Option<String>,
    pub region: Option<String>,
    pub auth: Option<String>,
    pub token_file: Option<String>,
    pub aws_profile: Option<String>,
    pub owner: Option<String>,
}

/// The profile file as read: its path (for messages) and text.
#[derive(Debug, Clone, Copy)]
pub struct ProfileFile<'a> {
    pub path: &'a str,
    pub text: &'a str,
}

/// Environment variables this crate reads.
pub const ENV_URL: &str = "MICROVM_URL";
pub const ENV_REGION: &str = "MICROVM_REGION";
pub const ENV_PROFILE: &str = "MICROVM_PROFILE";
pub const ENV_AUTH: &str = "MICROVM_AUTH";
pub const ENV_TOKEN: &str = "MICROVM_TOKEN";
pub const ENV_TOKEN_FILE: &str = "MICROVM_TOKEN_FILE";
pub const ENV_OWNER: &str = "MICROVM_OWNER";
pub const ENV_CONFIG: &str = "MICROVM_CONFIG";

/// The region of a Lambda Function URL host
/// (`<url-id>.lambda-url.<region>.on.aws`), or `None` for any other host.
pub fn function_url_region(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let rest = host.strip_suffix(".on.aws")?;
    let (id, rest) = rest.split_once(".lambda-url.")?;
    let valid_region = !rest.is_empty()
        && !rest.contains('.')
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (!id.is_empty() && !id.contains('.') && valid_region).then(|| rest.to_string())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

impl Settings {
    /// Resolve the settings. `read_token_file` reads a token file (only
    /// `main` touches the disk); it answers the file's text or an error
    /// message.
    pub fn from_parts(
        flags: &Flags,
        env: &HashMap<String, String>,
        file: Option<ProfileFile<'_>>,
        read_token_file: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Settings, ConfigError> {
        let get_env = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
        let (profile_name, profile_named) = match flags.profile.clone() {
            Some(p) => (p, Some("--profile")),
            None => match get_env(ENV_PROFILE) {
                Some(p) => (p, Some(ENV_PROFILE)),
                None => ("default".to_string(), None),
            },
        };
        let profile = match &file {
            None => {
                if let Some(src) = profile_named {
                    return Err(err(
                        src,
                        format!(
                            "profile `{profile_name}` asked for, but there is no profile file (~/.config/microvm/config.toml or {ENV_CONFIG})"
                        ),
                    ));
                }
                Profile::default()
            }
            Some(f) => {
                let tables: HashMap<String, Profile> = toml::from_str(f.text)
                    .map_err(|e| err(format!("profile file {}", f.path), e.to_string()))?;
                match tables.get(&profile_name) {
                    Some(p) => p.clone(),
                    None if profile_named.is_none() => Profile::default(),
                    None => {
                        let mut known: Vec<_> = tables.keys().cloned().collect();
                        known.sort();
                        return Err(err(
                            profile_named.unwrap_or("--profile"),
                            format!(
                                "no profile `{profile_name}` in {} (it has: {})",
                                f.path,
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        let key_name = |k: &str| match &file {
            Some(f) => format!("profile file {} [{profile_name}].{k}", f.path),
            None => k.to_string(),
        };
        let pick = |flag: &Option<String>,
                    flag_name: &str,
                    env_name: &str,
                    prof: &Option<String>,
                    key: &str|
         -> Option<(String, String)> {
            if let Some(v) = flag {
                return Some((v.clone(), flag_name.to_string()));
            }
            if let Some(v) = get_env(env_name) {
                return Some((v, env_name.to_string()));
            }
            prof.clone().map(|v| (v, key_name(key)))
        };

        let (url, url_src) = pick(&flags.url, "--url", ENV_URL, &profile.url, "url").ok_or_else(|| {
            err(
                "--url",
                format!(
                    "the launcher's URL is not set: pass --url, set {ENV_URL}, or put `url` in a profile (the launcher's Function URL, https://<id>.lambda-url.<region>.on.aws, or http://127.0.0.1:8080 for `launcher serve`)"
                ),
            )
        })?;
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|e| err(&url_src, format!("`{url}` is not a URL: {e}")))?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        match parsed.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(err(
                    &url_src,
                    format!(
                        "`{url}`: plain http is allowed only to a loopback host; the launcher's Function URL is https"
                    ),
                ));
            }
            s => {
                return Err(err(
                    &url_src,
                    format!("`{url}`: scheme `{s}` is not http(s)"),
                ));
            }
        }
        if parsed.path() != "/" || parsed.query().is_some() {
            return Err(err(
                &url_src,
                format!("`{url}`: give the launcher's base URL, without a path or query"),
            ));
        }
        let base = parsed.as_str().trim_end_matches('/').to_string();

        // Bearer when a token is given, unless told otherwise.
        let token = match (
            &flags.token_file,
            get_env(ENV_TOKEN),
            get_env(ENV_TOKEN_FILE),
            &profile.token_file,
        ) {
            (Some(path), ..) => Some(read_token(path, "--token-file", read_token_file)?),
            (None, Some(t), ..) => Some(t.trim().to_string()),
            (None, None, Some(path), _) => {
                Some(read_token(&path, ENV_TOKEN_FILE, read_token_file)?)
            }
            (None, None, None, Some(path)) => {
                Some(read_token(path, &key_name("token_file"), read_token_file)?)
            }
            _ => None,
        };
        let mode = pick(&flags.auth, "--auth", ENV_AUTH, &profile.auth, "auth");
        let auth = match (mode, token) {
            (Some((m, _)), Some(t)) if m == "bearer" => Auth::Bearer(BearerToken::new(t)),
            (None, Some(t)) => Auth::Bearer(BearerToken::new(t)),
            (Some((m, src)), None) if m == "bearer" => {
                return Err(err(
                    src,
                    format!(
                        "bearer auth needs a token: set {ENV_TOKEN}, {ENV_TOKEN_FILE}, --token-file or the profile's token_file"
                    ),
                ));
            }
            (Some((m, src)), _) if m != "iam" => {
                return Err(err(src, format!("`{m}` is not `iam` or `bearer`")));
            }
            _ => {
                let region = match pick(&flags.region, "--region", ENV_REGION, &profile.region, "region") {
                    Some((r, _)) => r,
                    None => function_url_region(&host).ok_or_else(|| {
                        err(
                            &url_src,
                            format!(
                                "`{url}` is not a Lambda Function URL (https://<url-id>.lambda-url.<region>.on.aws), so the SigV4 region is unknown: use the launcher's AWS_IAM Function URL, pass --region for a custom domain in front of it, or for a local `launcher serve` give a bearer token ({ENV_TOKEN} or --token-file)"
                            ),
                        )
                    })?,
                };
                Auth::Iam {
                    region,
                    aws_profile: pick(
                        &flags.aws_profile,
                        "--aws-profile",
                        "MICROVM_AWS_PROFILE",
                        &profile.aws_profile,
                        "aws_profile",
                    )
                    .map(|(p, _)| p),
                }
            }
        };
        let owner = get_env(ENV_OWNER).or(profile.owner);
        Ok(Settings {
            url: base,
            auth,
            owner,
        })
    }
}

fn read_token(
    path: &str,
    src: &str,
    read: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, ConfigError> {
    let text = read(path).map_err(|e| err(src, format!("reading token file {path}: {e}")))?;
    let t = text.trim();
    if t.is_empty() {
        return Err(err(src, format!("token file {path} is empty")));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn no_files(p: &str) -> Result<String, String> {
        Err(format!("{p}: no such file"))
    }

    #[test]
    fn a_function_url_gives_its_region_and_iam_auth() {
        let s = Settings::from_parts(
            &Flags {
                url: Some("https://abc123.lambda-url.eu-west-2.on.aws/".into()),
                ..Flags::default()
            },
            &env(&[]),
            None,
            &no_files,
        )
        .unwrap();
        assert_eq!(s.url, "https://abc123.lambda-url.eu-west-2.on.aws");
        assert_eq!(
            s.auth,
            Auth::Iam {
                region: "eu-west-2".into(),
                aws_profile: None
            }
        );
    }

    #[test]
    fn a_url_that_is_not_a_function_url_without_a_token_or_region_is_an_error_naming_the_fix() {
        let e = Settings::from_parts(
            &Flags::default(),
            &env(&[(ENV_URL, "https://launcher.example.com")]),
            None,
            &no_files,
        )
        .unwrap_err();
        assert_eq!(e.source_name, ENV_URL);
        assert!(e.message.contains("not a Lambda Function URL"), "{e}");
        assert!(e.message.contains("--region"), "{e}");
    }

    #[test]
    fn a_token_selects_bearer_auth_and_never_shows_in_debug() {
        let s = Settings::from_parts(
            &Flags::default(),
            &env(&[(ENV_URL, "http://127.0.0.1:8080"), (ENV_TOKEN, "s3cret")]),
            None,
            &no_files,
        )
        .unwrap();
        assert_eq!(s.auth, Auth::Bearer(BearerToken::new("s3cret")));
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        let e = Settings::from_parts(
            &Flags {
                url: Some("http://launcher.example.com".into()),
                ..Flags::default()
            },
            &env(&[(ENV_TOKEN, "t")]),
            None,
            &no_files,
        )
        .unwrap_err();
        assert_eq!(e.source_name, "--url");
        assert!(e.message.contains("loopback"), "{e}");
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_profile_file() {
        let text = r#"
[default]
url = "https://p.lambda-url.us-east-1.on.aws"
owner = "file-owner"
[local]
url = "http://127.0.0.1:9999"
token_file = "/tok"
"#;
        let file = || {
            Some(ProfileFile {
                path: "/cfg.toml",
                text,
            })
        };
        let read = |p: &str| {
            if p == "/tok" {
                Ok("file-token\n".to_string())
            } else {
                Err("missing".to_string())
            }
        };
        let s = Settings::from_parts(&Flags::default(), &env(&[]), file(), &read).unwrap();
        assert_eq!(s.url, "https://p.lambda-url.us-east-1.on.aws");
        assert_eq!(s.owner.as_deref(), Some("file-owner"));
        let s = Settings::from_parts(
            &Flags::default(),
            &env(&[(ENV_PROFILE, "local")]),
            file(),
            &read,
        )
        .unwrap();
        assert_eq!(s.url, "http://127.0.0.1:9999");
        assert_eq!(s.auth, Auth::Bearer(BearerToken::new("file-token")));
        let s = Settings::from_parts(
            &Flags {
                url: Some("http://127.0.0.1:1".into()),
                profile: Some("local".into()),
                ..Flags::default()
            },
            &env(&[(ENV_URL, "http://127.0.0.1:2")]),
            file(),
            &read,
        )
        .unwrap();
        assert_eq!(s.url, "http://127.0.0.1:1");
        let e = Settings::from_parts(
            &Flags {
                profile: Some("prod".into()),
                ..Flags::default()
            },
            &env(&[]),
            file(),
            &read,
        )
        .unwrap_err();
        assert!(e.message.contains("default, local"), "{e}");
        let e = Settings::from_parts(
            &Flags::default(),
            &env(&[]),
            Some(ProfileFile {
                path: "/cfg.toml",
                text: "[default]\nurll = \"x\"\n",
            }),
            &read,
        )
        .unwrap_err();
        assert!(
            e.source_name.contains("/cfg.toml") && e.message.contains("urll"),
            "{e}"
        );
    }

    #[test]
    fn function_url_hosts_are_recognised_exactly() {
        assert_eq!(
            function_url_region("abc.lambda-url.us-east-1.on.aws").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            function_url_region("abc.lambda-url.us-east-1.on.aws.evil.com"),
            None
        );
        assert_eq!(function_url_region("lambda-url.us-east-1.on.aws"), None);
        assert_eq!(function_url_region("a.b.lambda-url.us-east-1.on.aws"), None);
        assert_eq!(function_url_region("example.com"), None);
    }
}
