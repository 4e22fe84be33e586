-- MicroVM bypass hunt: the detector's bypass rules as Athena (Trino) SQL, over the CloudTrail
-- table of infra/athena/cloudtrail-table.sql or cloudtrail-table-organization.sql.
-- Placeholders (CloudFormation Fn::Sub style): CloudTrailTable; LauncherRoleArn (its account
-- may be *: the launcher role of each account, in that account only); LauncherSessionNames
-- (comma-separated, blanks trimmed; empty = session names are not checked); HuntDays (the
-- partition filter: only the last HuntDays days of partitions are read, never the whole trail).
-- One row per governed call (first copy of each eventID), first matching rule, the detector's
-- severity. infra/tests/athena_duckdb.py runs it on DuckDB against `detector scan`.
-- Rules: non-launcher-principal, launcher-session-mismatch, missing-contro1-request-id, contro1-request-id-mismatch, launcher-call-without-request-id
-- Omitted (rules `detector scan` reports that this query cannot, and why):
--   account-outside-organization: needs the organization's account list (ORGANIZATION_ACCOUNTS), which the query is not given; an organization trail's table holds only the organization's accounts
--   launcher-function-changed: tamper rule; needs the launcher functions (LAUNCHER_FUNCTIONS) and the function name or ARN resolved from each Lambda API's own request fields
--   detector-function-changed: tamper rule; needs DETECTOR_FUNCTIONS, as above
--   launcher-role-passed-to-function: tamper rule; needs the function configuration's role ARN compared with the launcher role across CreateFunction/UpdateFunctionConfiguration shapes
--   launcher-role-assumed: tamper rule; an sts:AssumeRole of the launcher role by anyone but Lambda, exempting the deployment roles (DEPLOYMENT_ROLE_ARNS)
--   launcher-role-changed: tamper rule; IAM changes naming the launcher role, exempting DEPLOYMENT_ROLE_ARNS
--   ledger-written-outside-launcher: tamper rule; needs the ledger table (LEDGER_TABLE) and DynamoDB data events, which a MicroVM hunt does not select
--   protected-resource-changed: tamper rule; needs PROTECTED_RESOURCES and which of every service's calls mutate
--   trail-stopped: tamper rule; needs TRAIL_NAMES and DEPLOYMENT_ROLE_ARNS, and is raised in seconds by the detector, not by a historical hunt
--   trail-deleted: tamper rule; as trail-stopped
--   trail-updated: tamper rule; as trail-stopped
--   trail-selectors-changed: tamper rule; needs evaluating whether the new event selectors still log every governed call, which the detector does in code
--   governance-stack-changed: tamper rule; needs the governance stacks and the pipeline principal (GOVERNANCE_STACKS, PIPELINE_PRINCIPAL_ARNS), matched by stack name or ARN
--   exempt-role-changed: tamper rule; needs DEPLOYMENT_ROLE_ARNS, PIPELINE_PRINCIPAL_ARNS and BREAK_GLASS_ROLE_ARNS
--   break-glass-session: tamper rule; needs BREAK_GLASS_ROLE_ARNS and the STS and sign-in events, which a MicroVM hunt does not select
--   execution-role-changed: tamper rule; needs EXECUTION_ROLE_ARNS
--   prevention-policy-changed: tamper rule; needs PREVENTION_POLICY_ARNS and SCP_IDS
--   contro1-secret-written: tamper rule; needs CONTRO1_SECRETS, matched by name, full ARN and ARN without its random suffix
--   alert-topic-changed: tamper rule; needs ALERT_TOPIC_ARN, which covers its subscriptions' ARNs
--   detector-log-group-changed: tamper rule; needs DETECTOR_LOG_GROUPS, DETECTOR_ROLE_ARNS and CloudWatch Logs data events
--   trail-object-written: tamper rule; needs TRAIL_BUCKETS and S3 data events, which a MicroVM hunt does not select
--   account-left-organization: tamper rule; organization events, raised in seconds by the detector, not by a MicroVM hunt
-- Beyond `detector scan`: launcher-credentials-outside-launcher needs each launcher call's
-- requestID looked up in the launcher's DynamoDB ledger (the detector Lambda does; Athena cannot
-- read the ledger), so every launcher call this query leaves out is only "not a bypass by the rules above".
WITH params AS (
  SELECT
    regexp_extract('${LauncherRoleArn}', '^arn:([^:]+):iam:[^:]*:([^:]+):role/((?:.*/)?)([^/]+)$', 1) AS launcher_partition,
    regexp_extract('${LauncherRoleArn}', '^arn:([^:]+):iam:[^:]*:([^:]+):role/((?:.*/)?)([^/]+)$', 2) AS launcher_account,
    '/' || regexp_extract('${LauncherRoleArn}', '^arn:([^:]+):iam:[^:]*:([^:]+):role/((?:.*/)?)([^/]+)$', 3) AS launcher_path,
    regexp_extract('${LauncherRoleArn}', '^arn:([^:]+):iam:[^:]*:([^:]+):role/((?:.*/)?)([^/]+)$', 4) AS launcher_name,
    filter(transform(split('${LauncherSessionNames}', ','), s -> trim(s)), s -> s <> '') AS launcher_sessions
),
governed AS (
  SELECT
    t.eventid,
    regexp_replace(t.eventname, '[0-9]{8}(v[0-9]+)?$', '') AS event_name,
    t.eventtime,
    t.errorcode,
    t.requestid,
    t.useridentity.arn AS principal_arn,
    -- the account the call was made in: the recipient account, else the caller's
    coalesce(t.recipientaccountid, t.useridentity.accountid) AS account_id,
    t.awsregion AS region,
    t.useridentity.sessioncontext.sessionissuer.arn AS issuer_arn,
    coalesce(nullif(json_extract_scalar(t.requestparameters, '$.microvmIdentifier'), 'HIDDEN_DUE_TO_SECURITY_REASONS'),
             nullif(json_extract_scalar(t.responseelements, '$.microvmId'), 'HIDDEN_DUE_TO_SECURITY_REASONS')) AS microvm_id,
    -- runHookPayload as logged: a JSON string (the API's type) or an inline JSON value
    json_extract(t.requestparameters, '$.runHookPayload') AS payload_json,
    json_extract_scalar(t.requestparameters, '$.runHookPayload') AS payload_scalar,
    CASE WHEN json_format(json_extract(t.requestparameters, '$.clientToken')) LIKE '"%'
      THEN json_extract_scalar(t.requestparameters, '$.clientToken') END AS client_token,
    row_number() OVER (PARTITION BY t.eventid ORDER BY t.eventtime) AS copy_no
  FROM ${CloudTrailTable} t
  WHERE t.partition_date >= date_format(date_add('day', -${HuntDays}, current_date), '%Y/%m/%d')
    AND t.eventsource IN ('lambda.amazonaws.com', 'lambda-microvms.amazonaws.com')
    AND regexp_like(t.eventname,
      '^(RunMicrovm|CreateMicrovmAuthToken|CreateMicrovmShellAuthToken|SuspendMicrovm|ResumeMicrovm|TerminateMicrovm)([0-9]{8}(v[0-9]+)?)?$')
),
caller AS (
  SELECT g.*,
    -- the caller's role: the session issuer when there is one (a role ARN, with its path),
    -- else the assumed-role ARN (account and name; its path is unknown)
    CASE WHEN g.issuer_arn IS NOT NULL
      THEN regexp_extract(g.issuer_arn, '^arn:([^:]+):iam:[^:]*:([^:]+):role/((?:.*/)?)([^/]+)$', 1)
      ELSE regexp_extract(g.principal_arn, '^arn:([^:]+):sts:[^:]*:([^:]+):assumed-role/([^/]+)/(.+)$', 1)
    END AS role_partition,
    CASE WHEN g.issuer_arn IS NOT NULL
      THEN regexp_extract(g.issuer_arn, '^arn:([^:]+):iam:[^:]*:([^:]+):role/((?:.*/)?)([^/]+)$', 2)
      ELSE regexp_extract(g.principal_arn, '^arn:([^:]+):sts:[^:]*:([^:]+):assumed-role/([^/]+)/(.+)$', 2)
    END AS role_account,
    CASE WHEN g.issuer_arn IS NOT NULL
      THEN '/' || regexp_extract(g.issuer_arn, '^arn:([^:]+):iam:[^:]*:([^:]+):role/((?:.*/)?)([^/]+)$', 3)
    END AS role_path,
    CASE WHEN g.issuer_arn IS NOT NULL
      THEN regexp_extract(g.issuer_arn, '^arn:([^:]+):iam:[^:]*:([^:]+):role/((?:.*/)?)([^/]+)$', 4)
      ELSE regexp_extract(g.principal_arn, '^arn:([^:]+):sts:[^:]*:([^:]+):assumed-role/([^/]+)/(.+)$', 3)
    END AS role_name,
    regexp_extract(g.principal_arn, ':assumed-role/[^/]*/(?:.*/)?([^/]+)$', 1) AS session_name,
    CASE
      WHEN g.payload_json IS NULL OR json_format(g.payload_json) = 'null' THEN 'absent'
      WHEN json_format(g.payload_json) LIKE '"%' THEN 'string'
      ELSE 'inline'
    END AS payload_kind
  FROM governed g
  WHERE g.copy_no = 1
),
payload AS (
  SELECT c.*,
    c.payload_kind = 'inline'
      OR (c.payload_kind = 'string' AND c.payload_scalar <> 'HIDDEN_DUE_TO_SECURITY_REASONS') AS payload_visible,
    -- the document: the string's content parsed (NULL when it is not JSON), or the inline value
    CASE c.payload_kind
      WHEN 'string' THEN try(json_parse(c.payload_scalar))
      WHEN 'inline' THEN c.payload_json
    END AS payload_doc
  FROM caller c
),
checked AS (
  SELECT p.*,
    coalesce(
      p.role_partition = prm.launcher_partition
      AND p.role_name = prm.launcher_name
      AND (prm.launcher_account = '*' OR p.role_account = prm.launcher_account)
      AND (p.account_id IS NULL OR p.account_id = p.role_account)
      AND (p.role_path IS NULL OR p.role_path = prm.launcher_path),
      false) AS is_launcher,
    cardinality(prm.launcher_sessions) > 0
      AND (p.session_name IS NULL OR NOT contains(prm.launcher_sessions, p.session_name)) AS session_mismatch,
    -- contro1_request_id: only from a JSON object whose field is a non-empty string
    CASE
      WHEN json_format(p.payload_doc) LIKE '{%'
       AND json_format(json_extract(p.payload_doc, '$.contro1_request_id')) LIKE '"%'
      THEN nullif(json_extract_scalar(p.payload_doc, '$.contro1_request_id'), '')
    END AS payload_request_id
  FROM payload p CROSS JOIN params prm
),
classified AS (
  SELECT c.*,
    CASE
      WHEN NOT c.is_launcher THEN 'non-launcher-principal'
      WHEN c.session_mismatch THEN 'launcher-session-mismatch'
      WHEN c.event_name = 'RunMicrovm' AND c.payload_visible AND c.payload_request_id IS NULL
        THEN 'missing-contro1-request-id'
      WHEN c.event_name = 'RunMicrovm' AND c.payload_request_id IS NOT NULL
           AND c.client_token IS NOT NULL AND c.client_token <> 'HIDDEN_DUE_TO_SECURITY_REASONS'
           AND c.payload_request_id <> c.client_token
        THEN 'contro1-request-id-mismatch'
      WHEN coalesce(c.requestid, '') = '' THEN 'launcher-call-without-request-id'
    END AS rule
  FROM checked c
)
SELECT
  'aws.microvm.bypass.detected' AS event,
  CASE
    WHEN errorcode IS NULL AND event_name = 'CreateMicrovmShellAuthToken' THEN 'critical'
    WHEN errorcode IS NULL AND event_name IN ('RunMicrovm', 'CreateMicrovmAuthToken') THEN 'high'
    WHEN errorcode IS NULL THEN 'medium'
    WHEN event_name = 'CreateMicrovmShellAuthToken' THEN 'medium'
    ELSE 'low'
  END AS severity,
  rule,
  eventid AS event_id,
  event_name,
  eventtime AS event_time,
  CASE WHEN errorcode IS NULL THEN 'succeeded' ELSE 'failed' END AS outcome,
  principal_arn,
  account_id,
  region,
  microvm_id,
  payload_request_id AS contro1_request_id_claimed
FROM classified
WHERE rule IS NOT NULL
ORDER BY event_time
