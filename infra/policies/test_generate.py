"""Tests of generate.py's limits and exemptions (run with the infra venv: cfn-lint parses the
template): python -m unittest infra/policies/test_generate.py

Limits: a customer managed policy (the deny policies, the boundary) holds 6,144 characters not
counting whitespace; an SCP 5,120 characters as stored; a target takes at most 5 SCPs, one of
them FullAWSAccess (IAM and Organizations quotas pages:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html,
https://docs.aws.amazon.com/organizations/latest/userguide/orgs_reference_limits.html).
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "iam"))

import generate  # noqa: E402
from evaluator import Request, evaluate  # noqa: E402

TEMPLATE = generate.load_template(HERE.parent / "sam" / "template.yaml")


def images(n: int) -> str:
    return ",".join(f"arn:aws:lambda:us-east-1:111122223333:microvm-image:agent-sandbox-{i:02d}" for i in range(n))


def run(**overrides) -> dict[str, str]:
    return generate.artefacts(TEMPLATE, {**generate.EXAMPLE, **overrides}, {**generate.EXAMPLE_SCP, **overrides})


class SizeLimits(unittest.TestCase):
    def test_every_example_artefact_is_within_its_limit(self):
        for name, text in run().items():
            if name.startswith("scp-"):
                self.assertLessEqual(len(text.strip()), generate.SCP_MAX_CHARS, name)
            elif name.startswith("deny-"):
                self.assertLessEqual(len(re.sub(r"\s", "", text)), generate.MANAGED_POLICY_MAX_CHARS, name)

    def test_seven_allowed_images_still_fit_every_artefact(self):
        files = run(allowed_image_arns=images(7))
        for name, text in files.items():
            if name.startswith("deny-"):
                self.assertLessEqual(len(re.sub(r"\s", "", text)), generate.MANAGED_POLICY_MAX_CHARS, name)

    def test_too_many_images_is_an_error_naming_the_artefact_and_what_to_drop(self):
        with self.assertRaises(generate.GenerateError) as e:
            run(allowed_image_arns=images(30))
        msg = str(e.exception)
        self.assertRegex(msg, r"^(deny-[a-z-]+\.json|the SCP needs|scp-deny-direct-microvm-access)")
        self.assertIn("drop allowed images (30 given", msg)

    def test_the_scp_never_needs_more_files_than_a_target_takes(self):
        for n in (1, 6, 12):
            try:
                files = run(allowed_image_arns=images(n))
            except generate.GenerateError as e:
                self.assertIn("drop allowed images", str(e))
                continue
            scps = [k for k in files if k.startswith("scp-")]
            self.assertLessEqual(len(scps), generate.SCP_MAX_FILES)
            for k in scps:
                self.assertLessEqual(len(files[k].strip()), generate.SCP_MAX_CHARS, k)

    def test_managed_policy_size_ignores_whitespace(self):
        self.assertEqual(generate.managed_policy_size({"a": "b c"}), len('{"a":"bc"}'))


class Exemptions(unittest.TestCase):
    def test_a_claimable_wildcard_exemption_is_refused(self):
        for opt in ("deployment_role_arn", "break_glass_role_arn", "pipeline_role_arn"):
            with self.assertRaises(generate.GenerateError) as e:
                run(**{opt: "arn:aws:iam::*:role/stacksets-exec-*"})
            self.assertIn("exact ARN", str(e.exception))

    def test_an_any_account_exact_role_is_accepted(self):
        run(deployment_role_arn="arn:aws:iam::*:role/stacksets-exec-0123456789abcdef0123456789abcdef")

    def test_the_sweep_role_is_exempt_from_the_remediation_deny_only_when_named(self):
        def scp_decision(sweep_name: str) -> bool:
            files = generate.artefacts(TEMPLATE, generate.EXAMPLE, {**generate.EXAMPLE_SCP, "sweep_role_name": sweep_name})
            scps = [("FullAWSAccess", {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}})]
            scps += [(k, json.loads(v)) for k, v in files.items() if k.startswith("scp-")]
            req = Request("arn:aws:iam::444455556666:role/microvm-gov-sweep", "lambda:TerminateMicrovm",
                          "arn:aws:lambda:us-east-1:444455556666:microvm-image:rogue")
            admin = {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
            return evaluate(req, identity=[admin], scps=scps).allowed

        self.assertTrue(scp_decision("microvm-gov-sweep"))
        self.assertFalse(scp_decision(""))

    def test_no_artefact_names_an_empty_role(self):
        for name, text in run(sweep_role_name="").items():
            self.assertNotIn(':role/"', text, name)


class LauncherOwnCalls(unittest.TestCase):
    """The launcher's token calls authorise against the allowed image: no deny may match them."""

    def test_the_launchers_token_calls_pass_the_scp_and_the_boundary(self):
        files = run()
        launcher = "arn:aws:iam::111122223333:role/microvm-gov/launcher/microvm-gov-LauncherRole-X"
        image = generate.EXAMPLE["allowed_image_arns"]
        admin = {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
        scps = [("FullAWSAccess", admin)] + [(k, json.loads(v)) for k, v in files.items() if k.startswith("scp-")]
        bnd = json.loads(files["deny-direct-microvm-access-boundary.json"])
        for action in ("lambda:CreateMicrovmAuthToken", "lambda:CreateMicrovmShellAuthToken", "lambda:RunMicrovm"):
            req = Request(launcher, action, image)
            self.assertTrue(evaluate(req, identity=[admin], scps=scps).allowed, action)
            self.assertTrue(evaluate(req, identity=[admin], boundary=bnd).allowed, action)


if __name__ == "__main__":
    unittest.main()
