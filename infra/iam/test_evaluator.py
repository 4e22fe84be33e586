"""Tests of the IAM policy evaluator against the behaviour AWS documents.

Sources (the cases are written here from what these pages state; none is copied):
- Policy evaluation logic, and its pages on requests within one account and across accounts:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-basics.html
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html
- IAM JSON policy elements: Condition operators (missing keys, IfExists, Null):
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
- Multivalued context key examples (ForAllValues/ForAnyValue with aws:TagKeys):
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition_examples-multi-valued-context-keys.html
- Permissions boundaries (intersection with identity policies):
  https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html

Run: python3 -m unittest infra/iam/test_evaluator.py (no network).
"""

from __future__ import annotations

import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from evaluator import (  # noqa: E402
    PolicyError,
    Request,
    action_matches,
    condition_matches,
    evaluate,
    principal_matches,
    resource_matches,
    statement_applies,
)

A = "111122223333"
B = "444455556666"
ROLE = f"arn:aws:iam::{A}:role/app"
SESSION = f"arn:aws:sts::{A}:assumed-role/app/s1"
BUCKET_OBJ = "arn:aws:s3:::amzn-s3-demo-bucket/logs/a.txt"
ALLOW_ALL = {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}


def allow(action, resource="*", **extra):
    return {"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow", "Action": action, "Resource": resource, **extra}]}


def deny(action, resource="*", **extra):
    return {"Version": "2012-10-17", "Statement": [{"Sid": "D", "Effect": "Deny", "Action": action, "Resource": resource, **extra}]}


class MatchingRules(unittest.TestCase):
    def test_actions_match_case_insensitively_with_star_and_question_mark(self):
        self.assertTrue(action_matches("s3:Get*", "s3:getobject"))
        self.assertTrue(action_matches("S3:GETOBJECT", "s3:GetObject"))
        self.assertTrue(action_matches("iam:?etRole", "iam:GetRole"))
        self.assertFalse(action_matches("iam:?etRole", "iam:UpdateRole"))
        self.assertTrue(action_matches("*", "lambda:RunMicrovm"))
        self.assertFalse(action_matches("s3:Get*", "s3:PutObject"))

    def test_resource_arns_are_case_sensitive(self):
        self.assertTrue(resource_matches("arn:aws:s3:::amzn-s3-demo-bucket/*", BUCKET_OBJ))
        self.assertFalse(resource_matches("arn:aws:s3:::AMZN-S3-DEMO-BUCKET/*", BUCKET_OBJ))
        self.assertTrue(resource_matches("arn:aws:iam::*:role/x?", "arn:aws:iam::1:role/x1"))

    def test_a_resource_wildcard_crosses_colons_and_slashes(self):
        self.assertTrue(resource_matches("arn:aws:logs:*", "arn:aws:logs:us-east-1:1:log-group:/aws/x:*"))

    def test_a_policy_variable_is_the_requests_value_and_a_missing_one_matches_nothing(self):
        ctx = {"aws:username": "carlossalazar"}
        self.assertTrue(resource_matches("arn:aws:s3:::b/home/${aws:username}/*", "arn:aws:s3:::b/home/carlossalazar/x", ctx))
        self.assertFalse(resource_matches("arn:aws:s3:::b/home/${aws:username}/*", "arn:aws:s3:::b/home/other/x", ctx))
        self.assertFalse(resource_matches("arn:aws:s3:::b/home/${aws:username}/*", "arn:aws:s3:::b/home/x/y", {}))
        self.assertTrue(resource_matches("arn:aws:s3:::b/${aws:username, 'anon'}/*", "arn:aws:s3:::b/anon/y", {}))

    def test_a_star_from_a_variable_is_literal(self):
        self.assertTrue(resource_matches("arn:aws:s3:::b/${*}", "arn:aws:s3:::b/*"))
        self.assertFalse(resource_matches("arn:aws:s3:::b/${*}", "arn:aws:s3:::b/anything"))
        self.assertFalse(resource_matches("arn:aws:s3:::b/${aws:username}", "arn:aws:s3:::b/anything", {"aws:username": "*"}))

    def test_statement_and_elements_may_be_a_single_object_or_string(self):
        policy = {"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": BUCKET_OBJ}}
        self.assertTrue(evaluate(Request(ROLE, "s3:GetObject", BUCKET_OBJ), identity=[policy]).allowed)

    def test_not_action_in_an_allow_grants_everything_else(self):
        p = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
        self.assertTrue(evaluate(Request(ROLE, "s3:PutObject", BUCKET_OBJ), identity=[p]).allowed)
        d = evaluate(Request(ROLE, "iam:CreateUser", "arn:aws:iam::1:user/x"), identity=[p])
        self.assertEqual(d.decision, "implicit-deny")

    def test_not_action_in_a_deny_denies_everything_else(self):
        p = {"Statement": [{"Sid": "OnlyS3", "Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}]}
        d = evaluate(Request(ROLE, "ec2:RunInstances", "*"), identity=[ALLOW_ALL, p])
        self.assertEqual(d.decision, "explicit-deny")
        self.assertIn("OnlyS3", d.reason)
        self.assertTrue(evaluate(Request(ROLE, "s3:GetObject", BUCKET_OBJ), identity=[ALLOW_ALL, p]).allowed)

    def test_not_resource_excludes_the_named_resources(self):
        p = {"Statement": [{"Sid": "NR", "Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::amzn-s3-demo-bucket/*"}]}
        self.assertTrue(evaluate(Request(ROLE, "s3:GetObject", BUCKET_OBJ), identity=[ALLOW_ALL, p]).allowed)
        self.assertFalse(evaluate(Request(ROLE, "s3:GetObject", "arn:aws:s3:::other/x"), identity=[ALLOW_ALL, p]).allowed)

    def test_an_effect_other_than_allow_or_deny_is_an_error(self):
        with self.assertRaises(PolicyError):
            evaluate(Request(ROLE, "s3:GetObject", "*"), identity=[{"Statement": {"Effect": "allow", "Action": "*", "Resource": "*"}}])


class Principals(unittest.TestCase):
    def test_star_names_every_aws_principal_but_not_a_service(self):
        self.assertTrue(principal_matches("*", Request(ROLE, "x:Y", "*")))
        self.assertTrue(principal_matches({"AWS": "*"}, Request(ROLE, "x:Y", "*")))
        self.assertFalse(principal_matches({"AWS": "*"}, Request("lambda.amazonaws.com", "x:Y", "*")))

    def test_an_account_names_every_principal_of_that_account(self):
        self.assertTrue(principal_matches({"AWS": A}, Request(SESSION, "x:Y", "*")))
        self.assertTrue(principal_matches({"AWS": f"arn:aws:iam::{A}:root"}, Request(ROLE, "x:Y", "*")))
        self.assertFalse(principal_matches({"AWS": B}, Request(ROLE, "x:Y", "*")))

    def test_a_role_arn_names_the_role_and_its_sessions_even_with_a_path(self):
        self.assertTrue(principal_matches({"AWS": ROLE}, Request(SESSION, "x:Y", "*")))
        self.assertTrue(principal_matches({"AWS": f"arn:aws:iam::{A}:role/team/app"}, Request(SESSION, "x:Y", "*")))
        self.assertFalse(principal_matches({"AWS": f"arn:aws:iam::{A}:role/other"}, Request(SESSION, "x:Y", "*")))

    def test_a_service_principal_is_named_by_service(self):
        req = Request("cloudtrail.amazonaws.com", "s3:PutObject", BUCKET_OBJ)
        self.assertTrue(principal_matches({"Service": "cloudtrail.amazonaws.com"}, req))
        self.assertFalse(principal_matches({"Service": "sns.amazonaws.com"}, req))

    def test_not_principal_in_a_deny_spares_only_the_named_principal(self):
        rp = {"Statement": [
            {"Sid": "Everyone", "Effect": "Allow", "Principal": {"AWS": A}, "Action": "s3:GetObject", "Resource": "*"},
            {"Sid": "OnlyApp", "Effect": "Deny", "NotPrincipal": {"AWS": ROLE}, "Action": "s3:GetObject", "Resource": "*"},
        ]}
        self.assertTrue(evaluate(Request(SESSION, "s3:GetObject", BUCKET_OBJ, resource_account=A), resource_policy=rp).allowed)
        other = f"arn:aws:iam::{A}:role/other"
        d = evaluate(Request(other, "s3:GetObject", BUCKET_OBJ, resource_account=A), identity=[ALLOW_ALL], resource_policy=rp)
        self.assertEqual(d.decision, "explicit-deny")


class ConditionOperators(unittest.TestCase):
    def test_a_missing_key_fails_a_positive_operator_and_satisfies_a_negated_one(self):
        self.assertFalse(condition_matches({"StringEquals": {"aws:RequestTag/team": "a"}}, {}))
        self.assertTrue(condition_matches({"StringNotEquals": {"aws:RequestTag/team": "a"}}, {}))
        self.assertTrue(condition_matches({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/x"}}, {}))
        self.assertFalse(condition_matches({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/x"}}, {}))

    def test_if_exists_holds_when_the_key_is_missing_and_checks_it_when_present(self):
        c = {"StringEqualsIfExists": {"ec2:InstanceType": ["t2.micro", "t2.small"]}}
        self.assertTrue(condition_matches(c, {}))
        self.assertTrue(condition_matches(c, {"ec2:InstanceType": "t2.small"}))
        self.assertFalse(condition_matches(c, {"ec2:InstanceType": "m5.large"}))

    def test_null_true_means_absent_and_false_means_present(self):
        self.assertTrue(condition_matches({"Null": {"aws:TokenIssueTime": "true"}}, {}))
        self.assertFalse(condition_matches({"Null": {"aws:TokenIssueTime": "true"}}, {"aws:TokenIssueTime": "2024-01-01T00:00:00Z"}))
        self.assertTrue(condition_matches({"Null": {"aws:TokenIssueTime": "false"}}, {"aws:TokenIssueTime": "2024-01-01T00:00:00Z"}))

    def test_keys_are_case_insensitive_values_are_case_sensitive_unless_ignore_case(self):
        self.assertTrue(condition_matches({"StringEquals": {"AWS:PrincipalTag/Team": "Red"}}, {"aws:principaltag/team": "Red"}))
        self.assertFalse(condition_matches({"StringEquals": {"aws:PrincipalTag/Team": "red"}}, {"aws:PrincipalTag/Team": "Red"}))
        self.assertTrue(condition_matches({"StringEqualsIgnoreCase": {"aws:PrincipalTag/Team": "red"}}, {"aws:PrincipalTag/Team": "Red"}))

    def test_several_values_for_a_key_are_or_several_keys_and_operators_are_and(self):
        c = {"StringEquals": {"k1": ["a", "b"], "k2": "c"}, "Bool": {"aws:SecureTransport": "true"}}
        self.assertTrue(condition_matches(c, {"k1": "b", "k2": "c", "aws:SecureTransport": "true"}))
        self.assertFalse(condition_matches(c, {"k1": "b", "k2": "x", "aws:SecureTransport": "true"}))
        self.assertFalse(condition_matches(c, {"k1": "b", "k2": "c", "aws:SecureTransport": "false"}))

    def test_a_negated_operator_with_several_values_requires_none_to_match(self):
        c = {"StringNotEquals": {"k": ["a", "b"]}}
        self.assertFalse(condition_matches(c, {"k": "a"}))
        self.assertTrue(condition_matches(c, {"k": "z"}))

    def test_string_like_uses_wildcards(self):
        self.assertTrue(condition_matches({"StringLike": {"s3:prefix": ["home/*", "x?"]}}, {"s3:prefix": "home/a/b"}))
        self.assertTrue(condition_matches({"StringLike": {"s3:prefix": "x?"}}, {"s3:prefix": "x1"}))
        self.assertFalse(condition_matches({"StringLike": {"s3:prefix": "x?"}}, {"s3:prefix": "x12"}))

    def test_arn_like_matches_each_part_separately(self):
        c = {"ArnLike": {"aws:SourceArn": "arn:aws:lambda:*:111122223333:function:launcher*"}}
        self.assertTrue(condition_matches(c, {"aws:SourceArn": "arn:aws:lambda:us-east-1:111122223333:function:launcher-x"}))
        self.assertFalse(condition_matches(c, {"aws:SourceArn": "arn:aws:lambda:us-east-1:444455556666:function:launcher"}))
        self.assertFalse(condition_matches(c, {"aws:SourceArn": "arn:aws:lambda:us-east-1:111122223333:function:other"}))

    def test_numeric_date_bool_and_ip_operators(self):
        self.assertTrue(condition_matches({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}))
        self.assertFalse(condition_matches({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}))
        self.assertTrue(condition_matches({"NumericGreaterThan": {"aws:MultiFactorAuthAge": "3600"}}, {"aws:MultiFactorAuthAge": "3601"}))
        self.assertTrue(condition_matches({"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}, {"aws:CurrentTime": "2024-06-01T12:00:00Z"}))
        self.assertFalse(condition_matches({"DateGreaterThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}, {"aws:CurrentTime": "2024-06-01T12:00:00Z"}))
        self.assertTrue(condition_matches({"DateGreaterThan": {"aws:EpochTime": "1700000000"}}, {"aws:EpochTime": "1700000001"}))
        self.assertTrue(condition_matches({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "false"}))
        self.assertTrue(condition_matches({"Bool": {"aws:SecureTransport": False}}, {"aws:SecureTransport": "false"}))
        self.assertTrue(condition_matches({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "203.0.113.7"}))
        self.assertFalse(condition_matches({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "198.51.100.7"}))
        self.assertTrue(condition_matches({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "198.51.100.7"}))
        self.assertTrue(condition_matches({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, {"aws:SourceIp": "2001:db8::1"}))

    def test_condition_values_may_use_policy_variables(self):
        c = {"StringEquals": {"aws:ResourceAccount": "${aws:PrincipalAccount}"}}
        self.assertTrue(condition_matches(c, {"aws:ResourceAccount": A, "aws:PrincipalAccount": A}))
        self.assertFalse(condition_matches(c, {"aws:ResourceAccount": B, "aws:PrincipalAccount": A}))

    def test_an_unknown_operator_is_an_error_not_a_silent_false(self):
        with self.assertRaises(PolicyError):
            condition_matches({"StringEqualz": {"k": "v"}}, {"k": "v"})
        with self.assertRaises(PolicyError):
            condition_matches({"ForSomeValues:StringEquals": {"k": "v"}}, {"k": "v"})


class SetOperators(unittest.TestCase):
    """The multivalued-key page's deny examples on aws:TagKeys."""

    DENY_ALL_VALUES = {"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}
    DENY_ANY_VALUE = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["webserver", "DB"]}}

    def test_for_all_values_holds_only_when_every_request_value_satisfies_it(self):
        self.assertFalse(condition_matches(self.DENY_ALL_VALUES, {"aws:TagKeys": ["key1:legal"]}))
        self.assertFalse(condition_matches(self.DENY_ALL_VALUES, {"aws:TagKeys": ["key1:hr", "key2:audit"]}))
        self.assertTrue(condition_matches(self.DENY_ALL_VALUES, {"aws:TagKeys": ["key2:audit", "key3:x"]}))

    def test_for_all_values_holds_when_the_key_is_absent(self):
        self.assertTrue(condition_matches(self.DENY_ALL_VALUES, {}))
        self.assertTrue(condition_matches({"ForAllValues:StringEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": []}))

    def test_for_any_value_holds_when_one_request_value_matches_and_not_when_absent(self):
        self.assertTrue(condition_matches(self.DENY_ANY_VALUE, {"aws:TagKeys": ["webserver", "other"]}))
        self.assertFalse(condition_matches(self.DENY_ANY_VALUE, {"aws:TagKeys": ["other"]}))
        self.assertFalse(condition_matches(self.DENY_ANY_VALUE, {}))

    def test_null_false_beside_for_all_values_closes_the_absent_key_gap(self):
        c = {**self.DENY_ALL_VALUES, "Null": {"aws:TagKeys": "false"}}
        self.assertFalse(condition_matches(c, {}))
        self.assertTrue(condition_matches(c, {"aws:TagKeys": ["key2"]}))


class EvaluationLogic(unittest.TestCase):
    def test_default_is_implicit_deny(self):
        d = evaluate(Request(ROLE, "s3:GetObject", BUCKET_OBJ))
        self.assertEqual((d.allowed, d.decision), (False, "implicit-deny"))

    def test_an_explicit_deny_in_any_policy_overrides_every_allow(self):
        req = Request(SESSION, "s3:PutObject", BUCKET_OBJ, resource_account=A)
        rp_deny = {"Statement": [{"Sid": "NoPut", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "*"}]}
        for kwargs in (
            {"identity": [ALLOW_ALL, deny("s3:Put*")]},
            {"identity": [ALLOW_ALL], "resource_policy": rp_deny},
            {"identity": [ALLOW_ALL], "boundary": {"Statement": [ALLOW_ALL["Statement"], deny("s3:*")["Statement"][0]]}},
            {"identity": [ALLOW_ALL], "scps": [ALLOW_ALL, deny("s3:PutObject")]},
            {"identity": [ALLOW_ALL], "session_policies": [deny("*")]},
        ):
            d = evaluate(req, **kwargs)
            self.assertEqual(d.decision, "explicit-deny", kwargs)

    def test_within_one_account_an_identity_or_a_resource_allow_is_enough(self):
        # The evaluation page: within an account, either policy type allowing is enough.
        req = Request(SESSION, "s3:GetObject", BUCKET_OBJ, resource_account=A)
        rp = {"Statement": [{"Sid": "R", "Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*"}]}
        self.assertTrue(evaluate(req, identity=[allow("s3:GetObject")]).allowed)
        d = evaluate(req, resource_policy=rp)
        self.assertTrue(d.allowed)
        self.assertIn("statement R", d.reason)

    def test_across_accounts_both_the_identity_and_the_resource_policy_must_allow(self):
        caller = f"arn:aws:sts::{B}:assumed-role/app/s"
        req = Request(caller, "s3:GetObject", BUCKET_OBJ, resource_account=A)
        rp = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": B}, "Action": "s3:GetObject", "Resource": "*"}]}
        self.assertFalse(evaluate(req, identity=[allow("s3:GetObject")]).allowed)
        self.assertFalse(evaluate(req, resource_policy=rp).allowed)
        self.assertTrue(evaluate(req, identity=[allow("s3:GetObject")], resource_policy=rp).allowed)

    def test_a_boundary_limits_identity_permissions_to_the_intersection(self):
        req_s3 = Request(ROLE, "s3:GetObject", BUCKET_OBJ)
        req_iam = Request(ROLE, "iam:CreateUser", f"arn:aws:iam::{A}:user/x")
        b = allow(["s3:*", "cloudwatch:*"])
        self.assertTrue(evaluate(req_s3, identity=[ALLOW_ALL], boundary=b).allowed)
        d = evaluate(req_iam, identity=[ALLOW_ALL], boundary=b)
        self.assertEqual(d.decision, "implicit-deny")
        self.assertIn("boundary", d.reason)
        # A boundary alone grants nothing.
        self.assertFalse(evaluate(req_s3, boundary=b).allowed)

    def test_a_resource_policy_naming_the_session_is_not_limited_by_the_boundary(self):
        b = allow("cloudwatch:*")
        named_session = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": SESSION}, "Action": "s3:GetObject", "Resource": "*"}]}
        named_role = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "s3:GetObject", "Resource": "*"}]}
        req = Request(SESSION, "s3:GetObject", BUCKET_OBJ, resource_account=A)
        self.assertTrue(evaluate(req, boundary=b, resource_policy=named_session).allowed)
        self.assertFalse(evaluate(req, boundary=b, resource_policy=named_role).allowed)

    def test_scps_must_allow_at_every_level_and_grant_nothing_themselves(self):
        req = Request(ROLE, "s3:GetObject", BUCKET_OBJ)
        self.assertFalse(evaluate(req, scps=[ALLOW_ALL]).allowed)  # no identity allow
        self.assertTrue(evaluate(req, identity=[ALLOW_ALL], scps=[ALLOW_ALL]).allowed)
        d = evaluate(req, identity=[ALLOW_ALL], scps=[[ALLOW_ALL], [allow("ec2:*")]])
        self.assertEqual(d.decision, "implicit-deny")
        self.assertIn("SCP", d.reason)
        # An SCP limits what a resource policy grants too.
        rp = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": A}, "Action": "s3:GetObject", "Resource": "*"}]}
        self.assertFalse(evaluate(req, resource_policy=rp, scps=[allow("ec2:*")]).allowed)

    def test_session_policies_are_an_intersection(self):
        req = Request(SESSION, "s3:GetObject", BUCKET_OBJ)
        self.assertFalse(evaluate(req, identity=[ALLOW_ALL], session_policies=[allow("ec2:*")]).allowed)
        self.assertTrue(evaluate(req, identity=[ALLOW_ALL], session_policies=[allow("s3:Get*")]).allowed)

    def test_a_service_principal_is_decided_by_the_resource_policy_alone(self):
        rp = {"Statement": [{"Sid": "Trail", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:PutObject", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*"}]}
        req = Request("cloudtrail.amazonaws.com", "s3:PutObject", BUCKET_OBJ)
        self.assertTrue(evaluate(req, resource_policy=rp, scps=[deny("*")]).allowed)
        self.assertFalse(evaluate(Request("sns.amazonaws.com", "s3:PutObject", BUCKET_OBJ), resource_policy=rp).allowed)

    def test_the_reason_names_the_policy_and_the_statement(self):
        d = evaluate(Request(ROLE, "s3:GetObject", BUCKET_OBJ), identity=[("AdministratorAccess", ALLOW_ALL), ("guard", deny("s3:*"))])
        self.assertEqual(d.decision, "explicit-deny")
        self.assertIn("guard statement D", d.reason)

    def test_statement_applies_checks_principal_and_condition(self):
        st = {"Effect": "Deny", "Action": "*", "Resource": "*", "Principal": "*", "Condition": {"ArnNotEquals": {"aws:PrincipalArn": ROLE}}}
        self.assertFalse(statement_applies(st, Request(SESSION, "s3:GetObject", "*")))
        self.assertTrue(statement_applies(st, Request(f"arn:aws:iam::{A}:role/intruder", "s3:GetObject", "*")))

    def test_principal_arn_of_a_session_is_its_role(self):
        st = {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalArn": ROLE, "aws:PrincipalAccount": A}}}
        self.assertTrue(statement_applies(st, Request(SESSION, "s3:GetObject", "*")))


if __name__ == "__main__":
    unittest.main()
