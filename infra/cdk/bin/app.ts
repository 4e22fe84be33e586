#!/usr/bin/env node
/**
 * CDK entry point for the MicroVM governance stack (same resources as infra/sam/template.yaml).
 *
 * Offline by construction: the stack is environment-agnostic (no account/region lookups),
 * everything it needs is a CloudFormation parameter, and `-c skipBundling=true` stops
 * cargo-lambda-cdk from compiling the Rust functions during synth (CI validates the template,
 * `scripts/infra-check.sh` builds the functions separately with INFRA_BUILD=1).
 */
import { App } from 'aws-cdk-lib';
import { GovernanceStack } from '../lib/governance-stack';
import { ForwardingStack } from '../lib/org/forwarding-stack';
import { MemberStack } from '../lib/org/member-stack';
import { SecurityStack } from '../lib/org/security-stack';

const app = new App();

const skip = app.node.tryGetContext('skipBundling');
if (skip === true || skip === 'true') {
  // Stack.bundlingRequired reads this key: an empty list means "bundle no stack", so asset
  // staging skips the `cargo lambda build` and records a placeholder asset instead.
  app.node.setContext('aws:cdk:bundling-stacks', []);
}

new GovernanceStack(app, 'MicrovmGovernance', {
  stackName: app.node.tryGetContext('stackName') ?? 'microvm-governance',
  description:
    'MicroVM governance: launcher (Function URL, AWS_IAM) and bypass detector, tables, alerting, bypass prevention.',
});

// An organization (infra/org/*.yaml, infra/README.md "An organization"): StackSet-ready, no
// account ids or names that collide across accounts.
new MemberStack(app, 'MicrovmGovernanceMember', {
  stackName: 'microvm-governance-member',
  description: 'MicroVM governance, workload account: the launcher, its ledger, and the read-only sweep role.',
});
new SecurityStack(app, 'MicrovmGovernanceSecurity', {
  stackName: 'microvm-governance-security',
  description: 'MicroVM governance, security account: the detector over the organization trail and every account and region.',
});
new ForwardingStack(app, 'MicrovmGovernanceForwarding', {
  stackName: 'microvm-governance-forwarding',
  description: 'MicroVM governance, every swept region: API-call events forwarded to the security account.',
});
