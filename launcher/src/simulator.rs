//! `SIMULATE_AWS=true`: an in-process stand-in for the MicroVMs API so the
//! launcher can be evaluated without an AWS account.
//!
//! It is reachable only through [`crate::settings::Backend::Simulated`],
//! which `Settings::from_env` produces only when `SIMULATE_AWS=true` — and,
//! inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set), only with the additional
//! `LAUNCHER_ALLOW_SIMULATION_IN_LAMBDA=true`. Without the flag the value is
//! never constructed, so no code path can call it.

use launcher_core::ports::{
    BoxFut, LifecycleOutput, MicrovmApi, MicrovmError, RunCall, RunOutput, Secret, TokenOutput,
};
use launcher_core::request::{Lifecycle, Ports};
use std::collections::HashMap;
use std::sync::Mutex;

/// One simulated MicroVM.
#[derive(Debug, Clone)]
struct Vm {
    state: &'static str,
    client_token: String,
    image_arn: String,
    /// Epoch seconds.
    started_at: i64,
}

/// The simulator.
#[derive(Debug, Default)]
pub struct SimulatedMicrovms {
    vms: Mutex<HashMap<String, Vm>>,
}

fn rid() -> String {
    format!("sim-{}", uuid::Uuid::new_v4())
}

impl SimulatedMicrovms {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_vm<T>(
        &self,
        operation: &'static str,
        id: &str,
        f: impl FnOnce(&mut Vm) -> Result<T, MicrovmError>,
    ) -> Result<T, MicrovmError> {
        let mut vms = self
            .vms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let vm = vms.get_mut(id).ok_or_else(|| {
            let r = rid();
            MicrovmError::Rejected {
                operation,
                code: "ResourceNotFoundException".into(),
                message: format!("MicroVM {id} not found"),
                aws_request_id: Some(r.clone()),
                attempt_request_ids: vec![r],
            }
        })?;
        f(vm)
    }
}

impl MicrovmApi for SimulatedMicrovms {
    fn run<'a>(&'a self, call: &'a RunCall) -> BoxFut<'a, Result<RunOutput, MicrovmError>> {
        Box::pin(async move {
            let mut vms = self
                .vms
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // clientToken idempotency, as the real API.
            if let Some((id, vm)) = vms
                .iter()
                .find(|(_, v)| v.client_token == call.client_token)
            {
                let r = rid();
                return Ok(RunOutput {
                    microvm_id: id.clone(),
                    state: vm.state.to_string(),
                    endpoint: Some(format!("https://{id}.sim.invalid")),
                    aws_request_id: Some(r.clone()),
                    attempt_request_ids: vec![r],
                });
            }
            let id = format!("microvm-{}", uuid::Uuid::new_v4().simple());
            vms.insert(
                id.clone(),
                Vm {
                    state: "RUNNING",
                    client_token: call.client_token.clone(),
                    image_arn: call.image_arn.clone(),
                    started_at: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                },
            );
            let r = rid();
            Ok(RunOutput {
                microvm_id: id.clone(),
                state: "RUNNING".into(),
                endpoint: Some(format!("https://{id}.sim.invalid")),
                aws_request_id: Some(r.clone()),
                attempt_request_ids: vec![r],
            })
        })
    }

    fn auth_token<'a>(
        &'a self,
        microvm_id: &'a str,
        _ports: &'a Ports,
        _expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>> {
        Box::pin(async move {
            self.with_vm("CreateMicrovmAuthToken", microvm_id, |_| {
                let r = rid();
                Ok(TokenOutput {
                    token: Secret::new(format!("simtok-{}", uuid::Uuid::new_v4().simple())),
                    aws_request_id: Some(r.clone()),
                    attempt_request_ids: vec![r],
                })
            })
        })
    }

    fn shell_token<'a>(
        &'a self,
        microvm_id: &'a str,
        _expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>> {
        Box::pin(async move {
            self.with_vm("CreateMicrovmShellAuthToken", microvm_id, |_| {
                let r = rid();
                Ok(TokenOutput {
                    token: Secret::new(format!("simshell-{}", uuid::Uuid::new_v4().simple())),
                    aws_request_id: Some(r.clone()),
                    attempt_request_ids: vec![r],
                })
            })
        })
    }

    fn lifecycle<'a>(
        &'a self,
        microvm_id: &'a str,
        op: Lifecycle,
    ) -> BoxFut<'a, Result<LifecycleOutput, MicrovmError>> {
        Box::pin(async move {
            self.with_vm("Lifecycle", microvm_id, |vm| {
                vm.state = match op {
                    Lifecycle::Suspend => "SUSPENDED",
                    Lifecycle::Resume => "RUNNING",
                    Lifecycle::Terminate => "TERMINATED",
                };
                let r = rid();
                Ok(LifecycleOutput {
                    state: Some(vm.state.to_string()),
                    aws_request_id: Some(r.clone()),
                    attempt_request_ids: vec![r],
                })
            })
        })
    }

    fn exists<'a>(&'a self, microvm_id: &'a str) -> BoxFut<'a, Result<bool, MicrovmError>> {
        Box::pin(async move {
            Ok(self
                .vms
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains_key(microvm_id))
        })
    }

    fn started_since<'a>(
        &'a self,
        image_arn: &'a str,
        since: i64,
    ) -> BoxFut<'a, Result<Vec<String>, MicrovmError>> {
        Box::pin(async move {
            Ok(self
                .vms
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .filter(|(_, v)| {
                    v.image_arn == image_arn && v.started_at >= since && v.state != "TERMINATED"
                })
                .map(|(id, _)| id.clone())
                .collect())
        })
    }
}
