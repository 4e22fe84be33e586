//! The MicroVMs API over the real SDK client. Every call records the
//! `x-amzn-RequestId` of each attempt the SDK makes (an interceptor added to
//! that one call), because CloudTrail logs every attempt and the ledger must
//! hold all of them.

use aws_sdk_lambdamicrovms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambdamicrovms::operation::RequestId;
use aws_sdk_lambdamicrovms::types::{PortRange, PortSpecification};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use launcher_core::ports::{
    BoxFut, LifecycleOutput, MicrovmApi, MicrovmError, RunCall, RunOutput, Secret, TokenOutput,
};
use launcher_core::request::{Lifecycle, NetworkEgress, PortSpec, Ports};
use std::sync::{Arc, Mutex};

/// Collects the request id of every attempt of one SDK call.
#[derive(Debug, Clone, Default)]
pub struct AttemptIds(Arc<Mutex<Vec<String>>>);

impl AttemptIds {
    /// The ids seen so far, in order.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl Intercept for AttemptIds {
    fn name(&self) -> &'static str {
        "AttemptIds"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(id) = context
            .response()
            .and_then(|r| r.headers().get("x-amzn-requestid"))
            .filter(|id| !id.is_empty())
        {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(id.to_string());
        }
        Ok(())
    }
}

/// Network connectors used for RunMicrovm.
#[derive(Debug, Clone, Default)]
pub struct Connectors {
    /// For `network_egress = "vpc"`.
    pub vpc_egress_arn: Option<String>,
    /// For `network_egress = "private"`.
    pub private_egress_arn: Option<String>,
}

/// The MicroVMs API over the real SDK client.
#[derive(Debug, Clone)]
pub struct SdkMicrovms {
    client: aws_sdk_lambdamicrovms::Client,
    region: String,
    connectors: Connectors,
}

fn aws_connector(region: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:aws:network-connector:aws-network-connector:{name}")
}

fn map_err<E, R>(operation: &'static str, e: &SdkError<E, R>, attempts: Vec<String>) -> MicrovmError
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + 'static,
    R: std::fmt::Debug,
    SdkError<E, R>: RequestId,
{
    let aws_request_id = e.request_id().map(str::to_string);
    match e {
        SdkError::ServiceError(se) => MicrovmError::Rejected {
            operation,
            code: se.err().code().unwrap_or("Unknown").to_string(),
            message: se.err().message().unwrap_or("").to_string(),
            aws_request_id,
            attempt_request_ids: attempts,
        },
        _ => MicrovmError::Unavailable {
            operation,
            message: aws_sdk_lambdamicrovms::error::DisplayErrorContext(e).to_string(),
            aws_request_id,
            attempt_request_ids: attempts,
        },
    }
}

fn config_error(operation: &'static str, message: &str) -> MicrovmError {
    MicrovmError::Rejected {
        operation,
        code: "LauncherConfiguration".into(),
        message: message.into(),
        aws_request_id: None,
        attempt_request_ids: Vec::new(),
    }
}

fn ports_spec(ports: &Ports) -> Vec<PortSpecification> {
    match ports {
        Ports::All(_) => vec![PortSpecification::AllPorts],
        Ports::Listed(list) => list
            .iter()
            .filter_map(|p| match *p {
                PortSpec::Port(p) => Some(PortSpecification::Port(i32::from(p))),
                PortSpec::Range { start, end } => PortRange::builder()
                    .start_port(i32::from(start))
                    .end_port(i32::from(end))
                    .build()
                    .ok()
                    .map(PortSpecification::Range),
            })
            .collect(),
    }
}

fn token_value(map: &std::collections::HashMap<String, String>) -> Option<Secret> {
    map.get("X-aws-proxy-auth")
        .or_else(|| map.values().next())
        .map(|v| Secret::new(v.clone()))
}

impl SdkMicrovms {
    pub fn new(
        client: aws_sdk_lambdamicrovms::Client,
        region: impl Into<String>,
        connectors: Connectors,
    ) -> Self {
        SdkMicrovms {
            client,
            region: region.into(),
            connectors,
        }
    }
}

impl MicrovmApi for SdkMicrovms {
    fn run<'a>(&'a self, call: &'a RunCall) -> BoxFut<'a, Result<RunOutput, MicrovmError>> {
        Box::pin(async move {
            const OP: &str = "RunMicrovm";
            let egress = match call.network_egress {
                NetworkEgress::None => None,
                NetworkEgress::Internet => Some(aws_connector(&self.region, "INTERNET_EGRESS")),
                NetworkEgress::Vpc => Some(self.connectors.vpc_egress_arn.clone().ok_or_else(|| {
                    config_error(
                        OP,
                        "no VPC egress connector configured (MICROVM_VPC_EGRESS_CONNECTOR_ARN)",
                    )
                })?),
                NetworkEgress::Private => {
                    Some(self.connectors.private_egress_arn.clone().ok_or_else(|| {
                        config_error(
                            OP,
                            "no private egress connector configured (MICROVM_PRIVATE_EGRESS_CONNECTOR_ARN)",
                        )
                    })?)
                }
            };
            let mut req = self
                .client
                .run_microvm()
                .client_token(&call.client_token)
                .image_identifier(&call.image_arn)
                .set_image_version(call.image_version.clone())
                .execution_role_arn(&call.execution_role_arn)
                .maximum_duration_in_seconds(
                    i32::try_from(call.max_duration_seconds).unwrap_or(i32::MAX),
                )
                .run_hook_payload(&call.run_hook_payload)
                .ingress_network_connectors(aws_connector(&self.region, "HTTP_INGRESS"));
            if call.shell_access {
                req = req.ingress_network_connectors(aws_connector(&self.region, "SHELL_INGRESS"));
            }
            if let Some(e) = egress {
                req = req.egress_network_connectors(e);
            }
            let ids = AttemptIds::default();
            let out = req
                .customize()
                .interceptor(ids.clone())
                .send()
                .await
                .map_err(|e| map_err(OP, &e, ids.take()))?;
            Ok(RunOutput {
                microvm_id: out.microvm_id().to_string(),
                state: out.state().as_str().to_string(),
                endpoint: Some(out.endpoint().to_string()).filter(|e| !e.is_empty()),
                aws_request_id: out.request_id().map(str::to_string),
                attempt_request_ids: ids.take(),
            })
        })
    }

    fn auth_token<'a>(
        &'a self,
        microvm_id: &'a str,
        ports: &'a Ports,
        expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>> {
        Box::pin(async move {
            const OP: &str = "CreateMicrovmAuthToken";
            let ids = AttemptIds::default();
            let out = self
                .client
                .create_microvm_auth_token()
                .microvm_identifier(microvm_id)
                .expiration_in_minutes(i32::try_from(expiration_minutes).unwrap_or(i32::MAX))
                .set_allowed_ports(Some(ports_spec(ports)))
                .customize()
                .interceptor(ids.clone())
                .send()
                .await
                .map_err(|e| map_err(OP, &e, ids.take()))?;
            token_output(OP, out.request_id(), out.auth_token(), ids.take())
        })
    }

    fn shell_token<'a>(
        &'a self,
        microvm_id: &'a str,
        expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>> {
        Box::pin(async move {
            const OP: &str = "CreateMicrovmShellAuthToken";
            let ids = AttemptIds::default();
            let out = self
                .client
                .create_microvm_shell_auth_token()
                .microvm_identifier(microvm_id)
                .expiration_in_minutes(i32::try_from(expiration_minutes).unwrap_or(i32::MAX))
                .customize()
                .interceptor(ids.clone())
                .send()
                .await
                .map_err(|e| map_err(OP, &e, ids.take()))?;
            token_output(OP, out.request_id(), out.auth_token(), ids.take())
        })
    }

    fn lifecycle<'a>(
        &'a self,
        microvm_id: &'a str,
        op: Lifecycle,
    ) -> BoxFut<'a, Result<LifecycleOutput, MicrovmError>> {
        Box::pin(async move {
            let ids = AttemptIds::default();
            let aws_request_id = match op {
                Lifecycle::Suspend => self
                    .client
                    .suspend_microvm()
                    .microvm_identifier(microvm_id)
                    .customize()
                    .interceptor(ids.clone())
                    .send()
                    .await
                    .map_err(|e| map_err("SuspendMicrovm", &e, ids.take()))?
                    .request_id()
                    .map(str::to_string),
                Lifecycle::Resume => self
                    .client
                    .resume_microvm()
                    .microvm_identifier(microvm_id)
                    .customize()
                    .interceptor(ids.clone())
                    .send()
                    .await
                    .map_err(|e| map_err("ResumeMicrovm", &e, ids.take()))?
                    .request_id()
                    .map(str::to_string),
                Lifecycle::Terminate => self
                    .client
                    .terminate_microvm()
                    .microvm_identifier(microvm_id)
                    .customize()
                    .interceptor(ids.clone())
                    .send()
                    .await
                    .map_err(|e| map_err("TerminateMicrovm", &e, ids.take()))?
                    .request_id()
                    .map(str::to_string),
            };
            Ok(LifecycleOutput {
                state: None,
                aws_request_id,
                attempt_request_ids: ids.take(),
            })
        })
    }

    fn exists<'a>(&'a self, microvm_id: &'a str) -> BoxFut<'a, Result<bool, MicrovmError>> {
        Box::pin(async move {
            match self
                .client
                .get_microvm()
                .microvm_identifier(microvm_id)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) => {
                    let e = map_err("GetMicrovm", &e, Vec::new());
                    if e.is_not_found() { Ok(false) } else { Err(e) }
                }
            }
        })
    }

    fn started_since<'a>(
        &'a self,
        image_arn: &'a str,
        since: i64,
    ) -> BoxFut<'a, Result<Vec<String>, MicrovmError>> {
        Box::pin(async move {
            use aws_sdk_lambdamicrovms::types::MicrovmState;
            let mut ids = Vec::new();
            let mut next: Option<String> = None;
            // Bounded: an account with more pages than this is not read to the end.
            for _ in 0..100 {
                let out = self
                    .client
                    .list_microvms()
                    .image_identifier(image_arn)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| map_err("ListMicrovms", &e, Vec::new()))?;
                ids.extend(
                    out.items()
                        .iter()
                        .filter(|vm| {
                            vm.started_at().secs() >= since
                                && !matches!(
                                    vm.state(),
                                    MicrovmState::Terminated | MicrovmState::Terminating
                                )
                        })
                        .map(|vm| vm.microvm_id().to_string()),
                );
                match out.next_token() {
                    Some(t) if !t.is_empty() => next = Some(t.to_string()),
                    _ => return Ok(ids),
                }
            }
            Err(MicrovmError::Unavailable {
                operation: "ListMicrovms",
                message: "more than 100 pages of MicroVMs of one image".into(),
                aws_request_id: None,
                attempt_request_ids: Vec::new(),
            })
        })
    }
}

fn token_output(
    operation: &'static str,
    request_id: Option<&str>,
    auth_token: &std::collections::HashMap<String, String>,
    attempt_request_ids: Vec<String>,
) -> Result<TokenOutput, MicrovmError> {
    let aws_request_id = request_id.map(str::to_string);
    match token_value(auth_token) {
        Some(token) => Ok(TokenOutput {
            token,
            aws_request_id,
            attempt_request_ids,
        }),
        None => Err(MicrovmError::Rejected {
            operation,
            code: "EmptyToken".into(),
            message: "the answer carried no token".into(),
            aws_request_id,
            attempt_request_ids,
        }),
    }
}
