-- MicroVM bypass hunt: the detector's classification rules as Athena (Trino) SQL.
-- Placeholders (CloudFormation Fn::Sub style): CloudTrailTable, LauncherRoleArn,
-- LauncherSessionNames (comma-separated; empty = session names are not checked).
WITH params AS (
  SELECT
    '${LauncherRoleArn}' AS launcher_arn,
    regexp_extract('${LauncherRoleArn}', '^arn:[^:]+:iam::([0-9]+):role/', 1) AS launcher_account,
    regexp_extract('${LauncherRoleArn}', ':role/((?:[^/]+/)*)[^/]+$', 1) AS launcher_path,
    regexp_extract('${LauncherRoleArn}', '/([^/]+)$', 1) AS launcher_name,
    filter(split('${LauncherSessionNames}', ','), s -> s <> '') AS launcher_sessions
),
governed AS (
  SELECT
    t.eventid,
    regexp_replace(t.eventname, '[0-9]{8}(v[0-9]+)?$', '') AS event_name,
    t.eventtime,
    t.errorcode,
    t.useridentity.arn AS principal_arn,
    t.useridentity.accountid AS account_id,
    t.awsregion AS region,
    t.useridentity.sessioncontext.sessionissuer.arn AS issuer_arn,
    t.requestparameters,
    t.responseelements,
    coalesce(json_extract_scalar(t.requestparameters, '$.microvmIdentifier'),
             json_extract_scalar(t.responseelements, '$.microvmId')) AS microvm_id,
    json_extract_scalar(t.requestparameters, '$.runHookPayload') AS payload,
    json_extract_scalar(t.requestparameters, '$.clientToken') AS client_token,
    row_number() OVER (PARTITION BY t.eventid ORDER BY t.eventtime) AS copy_no
  FROM ${CloudTrailTable} t
  WHERE t.eventsource IN ('lambda.amazonaws.com', 'lambda-microvms.amazonaws.com')
    AND regexp_like(t.eventname,
      '^(RunMicrovm|CreateMicrovmAuthToken|CreateMicrovmShellAuthToken|SuspendMicrovm|ResumeMicrovm|TerminateMicrovm)([0-9]{8}(v[0-9]+)?)?$')
),
caller AS (
  SELECT g.*,
    -- caller role: the session issuer when present, else account + name from the assumed-role ARN
    CASE
      WHEN g.issuer_arn IS NOT NULL THEN
        regexp_extract(g.issuer_arn, '^arn:[^:]+:iam::([0-9]+):role/', 1) = p.launcher_account
        AND regexp_extract(g.issuer_arn, '/([^/]+)$', 1) = p.launcher_name
        AND (regexp_extract(g.issuer_arn, ':role/((?:[^/]+/)*)[^/]+$', 1) = ''
             OR p.launcher_path = ''
             OR regexp_extract(g.issuer_arn, ':role/((?:[^/]+/)*)[^/]+$', 1) = p.launcher_path)
      WHEN regexp_like(g.principal_arn, '^arn:[^:]+:sts::[0-9]+:assumed-role/[^/]+/') THEN
        regexp_extract(g.principal_arn, '^arn:[^:]+:sts::([0-9]+):', 1) = p.launcher_account
        AND regexp_extract(g.principal_arn, ':assumed-role/([^/]+)/', 1) = p.launcher_name
      ELSE false
    END AS is_launcher,
    regexp_extract(g.principal_arn, ':assumed-role/[^/]+/(.+)$', 1) AS session_name,
    cardinality(p.launcher_sessions) > 0 AS sessions_configured,
    p.launcher_sessions,
    g.payload IS NOT NULL AND g.payload <> 'HIDDEN_DUE_TO_SECURITY_REASONS' AS payload_visible,
    g.client_token IS NOT NULL AND g.client_token <> 'HIDDEN_DUE_TO_SECURITY_REASONS' AS token_visible,
    -- the payload's contro1_request_id when the payload is a JSON object and the field a non-empty string
    CASE
      WHEN try(json_format(json_parse(g.payload))) LIKE '{%'
       AND try(json_format(json_extract(json_parse(g.payload), '$.contro1_request_id'))) LIKE '"%'
      THEN nullif(try(json_extract_scalar(json_parse(g.payload), '$.contro1_request_id')), '')
    END AS payload_request_id
  FROM governed g CROSS JOIN params p
  WHERE g.copy_no = 1
),
classified AS (
  SELECT c.*,
    CASE
      WHEN NOT c.is_launcher THEN 'non-launcher-principal'
      WHEN c.sessions_configured
           AND (c.session_name IS NULL OR NOT contains(c.launcher_sessions, c.session_name))
        THEN 'launcher-session-mismatch'
      WHEN c.event_name = 'RunMicrovm' AND c.payload_visible AND c.payload_request_id IS NULL
        THEN 'missing-contro1-request-id'
      WHEN c.event_name = 'RunMicrovm' AND c.payload_visible AND c.token_visible
           AND c.payload_request_id <> c.client_token
        THEN 'contro1-request-id-mismatch'
    END AS rule
  FROM caller c
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
  coalesce(payload_request_id, CASE WHEN token_visible THEN client_token END) AS contro1_request_id
FROM classified
WHERE rule IS NOT NULL
ORDER BY event_time
