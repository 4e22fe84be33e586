//! Governance functions deployed into moto's Lambda control plane, the way
//! the SAM/CDK stack deploys them (a published version, an alias `live`, a
//! Function URL, reserved concurrency), with the integrity baseline the
//! stack records for them in SSM. moto serves `GetFunction`, `ListAliases`,
//! `GetFunctionUrlConfig`, `GetPolicy`, `ListEventSourceMappings` and
//! `GetFunctionConcurrency`, so the detector's integrity check runs against
//! the real SDK calls. moto keeps one Function URL per function whatever the
//! qualifier, so these functions carry a single unqualified URL.

use aws_config::SdkConfig;
use aws_sdk_lambda::types::{FunctionCode, FunctionUrlAuthType, Runtime};
use serde_json::json;

/// A function as deployed.
#[derive(Debug, Clone)]
pub struct DeployedFunction {
    pub name: String,
    pub arn: String,
    /// Published version number.
    pub version: String,
    pub role_arn: String,
    pub reserved_concurrency: i32,
}

/// A zip archive holding one stored file (a Lambda deployment package).
pub fn zip_with(name: &str, content: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(content);
    let crc = crc.sum();
    let (n, len) = (name.len() as u16, content.len() as u32);
    let mut z = Vec::new();
    // local file header
    z.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    z.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&n.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(content);
    let central = z.len() as u32;
    // central directory header
    z.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    z.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&n.to_le_bytes());
    z.extend_from_slice(&[0; 12]);
    z.extend_from_slice(&0u32.to_le_bytes());
    z.extend_from_slice(name.as_bytes());
    let central_len = z.len() as u32 - central;
    // end of central directory
    z.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    z.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    z.extend_from_slice(&central_len.to_le_bytes());
    z.extend_from_slice(&central.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z
}

/// An IAM role trusted by Lambda, created through moto's IAM query API (moto
/// needs the role to exist before CreateFunction names it). Returns its ARN.
pub async fn iam_role(endpoint: &str, name: &str, path: &str) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    .to_string();
    let resp = reqwest::Client::new()
        .post(endpoint)
        // moto routes by the credential scope's service; it checks no signature.
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            [
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("Path", path),
                ("AssumeRolePolicyDocument", trust.as_str()),
            ]
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&"),
        )
        .send()
        .await
        .expect("moto IAM CreateRole");
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "moto IAM CreateRole {name}: {status} {body}"
    );
    let arn = body
        .split("<Arn>")
        .nth(1)
        .and_then(|s| s.split("</Arn>").next())
        .unwrap_or_else(|| panic!("no <Arn> in moto's CreateRole answer: {body}"));
    arn.to_string()
}

/// Deploy `name` running as `role_arn`: code, a published version, alias
/// `live` on it, an AWS_IAM Function URL, reserved concurrency.
pub async fn deploy_function(
    sdk: &SdkConfig,
    name: &str,
    role_arn: &str,
    code: &[u8],
    reserved_concurrency: i32,
) -> DeployedFunction {
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let created = lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .role(role_arn)
        .handler("bootstrap")
        .code(
            FunctionCode::builder()
                .zip_file(zip_with("bootstrap", code).into())
                .build(),
        )
        .publish(true)
        .send()
        .await
        .expect("moto Lambda CreateFunction");
    let arn = created.function_arn().unwrap_or_default().to_string();
    let version = created.version().unwrap_or("1").to_string();
    lambda
        .create_alias()
        .function_name(name)
        .name("live")
        .function_version(&version)
        .send()
        .await
        .expect("moto Lambda CreateAlias");
    lambda
        .create_function_url_config()
        .function_name(name)
        .auth_type(FunctionUrlAuthType::AwsIam)
        .send()
        .await
        .expect("moto Lambda CreateFunctionUrlConfig");
    lambda
        .put_function_concurrency()
        .function_name(name)
        .reserved_concurrent_executions(reserved_concurrency)
        .send()
        .await
        .expect("moto Lambda PutFunctionConcurrency");
    DeployedFunction {
        name: name.to_string(),
        arn: arn.trim_end_matches(&format!(":{version}")).to_string(),
        version,
        role_arn: role_arn.to_string(),
        reserved_concurrency,
    }
}

/// The baseline entry the stack would record for `f`.
pub fn baseline_entry(f: &DeployedFunction, kind: &str) -> serde_json::Value {
    json!({
        "kind": kind,
        "function_arn": f.arn,
        "version_arn": format!("{}:{}", f.arn, f.version),
        "execution_role_arn": f.role_arn,
        "aliases": {"live": f.version},
        "url_auth_types": {"$LATEST": "AWS_IAM"},
        "reserved_concurrency": f.reserved_concurrency,
        "event_source_arns": [],
        "permissions": [],
    })
}

/// Write the baseline of `functions` (kind, function) to SSM `parameter`.
pub async fn write_baseline(
    sdk: &SdkConfig,
    parameter: &str,
    functions: &[(&str, &DeployedFunction)],
) {
    let value = json!({
        "schema": 1,
        "functions": functions.iter().map(|(k, f)| baseline_entry(f, k)).collect::<Vec<_>>(),
    });
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(parameter)
        .value(value.to_string())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .expect("moto SSM PutParameter");
}

/// Replace the function's code (what an attacker with
/// lambda:UpdateFunctionCode does); returns the new code SHA-256.
pub async fn replace_code(sdk: &SdkConfig, name: &str, code: &[u8]) -> String {
    aws_sdk_lambda::Client::new(sdk)
        .update_function_code()
        .function_name(name)
        .zip_file(zip_with("bootstrap", code).into())
        .send()
        .await
        .expect("moto Lambda UpdateFunctionCode")
        .code_sha256()
        .unwrap_or_default()
        .to_string()
}
