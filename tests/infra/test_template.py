"""infra/cloudformation.yaml: lint-clean, least privilege, and in agreement with the code it runs."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from infra import build_lambda
from tests.infra.fixtures_cfn import (
    ROOT,
    TEMPLATE_PATH,
    as_list,
    load_template,
    one_resource,
    policy_statements,
    resources_of_type,
    sub_references,
    sub_text,
)
from worker.common import errors
from worker.common.errors import ConfigError, FatalError, TransientError
from worker.common.settings import Settings

# Variables AWS Batch sets in every container; the worker reads them, the template must not set them.
BATCH_SETS = ("AWS_BATCH_JOB_ID", "AWS_BATCH_JOB_ATTEMPT", "AWS_BATCH_JOB_ARRAY_INDEX",
              "AWS_BATCH_JOB_ARRAY_SIZE")
# Variables the submitter puts in each submission's container overrides.
SUBMITTER_SETS = ("RUN_ID", "SHOP_INDEX_OFFSET")
# Read by boto3 itself, not by our code.
BOTO_READS = ("AWS_DEFAULT_REGION",)
# Actions that have no resource-level permissions in IAM: "*" is the only resource AWS accepts.
NO_RESOURCE_LEVEL = {
    "ecr:GetAuthorizationToken": "a registry-wide login token",
    "batch:DescribeJobs": "Batch's read calls take no resource ARN",
    "batch:ListJobs": "Batch's read calls take no resource ARN",
    "ec2:DescribeNetworkInterfaces": "EC2 describe calls take no resource ARN",
    # Lambda's VPC attachment, as in AWS's own AWSLambdaVPCAccessExecutionRole.
    "ec2:CreateNetworkInterface": "Lambda VPC attachment",
    "ec2:DeleteNetworkInterface": "Lambda VPC attachment",
    "ec2:AssignPrivateIpAddresses": "Lambda VPC attachment",
    "ec2:UnassignPrivateIpAddresses": "Lambda VPC attachment",
}
SECRET_VALUE = "postgresql://catalog:s3cret@db.internal:5432/catalog"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def env_names_read_by(path: Path) -> set[str]:
    """Every variable a settings module reads: the names passed to its ``get``/``integer`` helpers."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("get", "integer")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.args[0].value)
        ):
            names.add(node.args[0].value)
    return names


def resolve(value: Any, outputs: dict[str, str], conditions: dict[str, bool] | None = None) -> str:
    """A template value as the container would see it, with stand-ins for the stack's names and
    the conditions' values (default: the parameters' defaults, no custom domain)."""
    conditions = {"HasCustomDomain": False, **(conditions or {})}
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return outputs[value["Ref"]]
    if "Fn::If" in value:
        name, when_true, when_false = value["Fn::If"]
        return resolve(when_true if conditions[name] else when_false, outputs, conditions)
    if "Fn::GetAtt" in value:
        return outputs[".".join(value["Fn::GetAtt"])]
    text = sub_text(value)
    assert text is not None, f"cannot resolve {value!r}"
    names = dict(outputs)
    if isinstance(value["Fn::Sub"], list):
        names.update({k: resolve(v, outputs, conditions) for k, v in value["Fn::Sub"][1].items()})
    for name in sub_references(text):
        text = text.replace("${" + name + "}", names[name])
    return text


STAND_INS = {
    "Bucket": "catalog-batch-bucket-1a2b3c",
    "Bucket.RegionalDomainName": "catalog-batch-bucket-1a2b3c.s3.ap-northeast-2.amazonaws.com",
    "Distribution.DomainName": "d111111abcdef8.cloudfront.net",
    "PublicDomainName": "feeds.example.com",
    "AWS::Region": "ap-northeast-2",
    "DatabaseSecretArn": "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:db-AbCdEf",
    "JobQueue": "arn:aws:batch:ap-northeast-2:123456789012:job-queue/catalog-batch-nightly",
    "JobDefinition": "arn:aws:batch:ap-northeast-2:123456789012:job-definition/catalog-batch-worker:1",
}


def container(template: dict[str, Any]) -> dict[str, Any]:
    _, job_definition = one_resource(template, "AWS::Batch::JobDefinition")
    props: dict[str, Any] = job_definition["Properties"]["ContainerProperties"]
    return props


# ------------------------------------------------------------------------------------- lint


def cfn_lint(path: Path) -> list[str]:
    from cfnlint.api import ManualArgs, lint_file

    # Informational checks too (I…): cfn-lint leaves them out unless asked.
    matches = lint_file(path, ManualArgs(include_checks=["I"]))
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]


def test_cfn_lint_reports_nothing() -> None:
    # Errors, warnings and informational findings alike; silence one only by its id, with a reason.
    assert cfn_lint(TEMPLATE_PATH) == []


def test_cfn_lint_would_catch_a_broken_template(tmp_path: Path) -> None:
    # The lint test above is only worth something if cfn-lint really reads our template.
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        TEMPLATE_PATH.read_text(encoding="utf-8").replace(
            "AllocationStrategy: SPOT_PRICE_CAPACITY_OPTIMIZED", "AllocationStrategy: CHEAPEST"
        ),
        encoding="utf-8",
    )
    assert any("cheapest" in finding.lower() for finding in cfn_lint(broken))


# ------------------------------------------------------------- the worker's exit-code contract


def batch_decides(
    strategy: list[dict[str, str]], *, exit_code: int | None, reason: str, status_reason: str
) -> str:
    """What Batch does with a failed attempt: the first entry whose patterns all match, else RETRY.

    A pattern is exact, or a prefix when it ends in ``*`` (AWS's EvaluateOnExit); a value Batch
    did not report (no exit code when the host vanished) is matched as an empty string.
    """
    observed = {
        "OnExitCode": "" if exit_code is None else str(exit_code),
        "OnReason": reason,
        "OnStatusReason": status_reason,
    }
    for entry in strategy:
        patterns = {k: v for k, v in entry.items() if k.startswith("On")}
        if all(fnmatch.fnmatchcase(observed[k], v) for k, v in patterns.items()):
            return entry["Action"].upper()
    return "RETRY"


def test_retry_strategy_retries_exactly_transient_exits_and_spot_reclaims(
    template: dict[str, Any],
) -> None:
    _, job_definition = one_resource(template, "AWS::Batch::JobDefinition")
    retry = job_definition["Properties"]["RetryStrategy"]
    strategy = retry["EvaluateOnExit"]
    container_exit = "Essential container in task exited"

    def on_exit(code: int) -> str:
        return batch_decides(strategy, exit_code=code, reason="", status_reason=container_exit)

    assert on_exit(TransientError.exit_code) == "RETRY"
    assert on_exit(errors.EXIT_TEMPFAIL) == "RETRY"
    assert on_exit(FatalError.exit_code) == "EXIT"
    assert on_exit(ConfigError.exit_code) == "EXIT"
    # Every other code the worker can exit with, and any code at all, is final.
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_") and isinstance(v, int)}
    for code in [*sorted(codes - {errors.EXIT_OK, errors.EXIT_TEMPFAIL}), 2, 137, 139, 255]:
        assert on_exit(code) == "EXIT", f"exit {code} would be retried"
    # A Spot reclaim: the host goes away, the container has no exit code.
    assert batch_decides(strategy, exit_code=None, reason="",
                         status_reason="Host EC2 (instance i-0123456789abcdef0) terminated.") == "RETRY"
    assert batch_decides(strategy, exit_code=None, reason="",
                         status_reason="Job attempt duration exceeded timeout") == "EXIT"
    assert batch_decides(strategy, exit_code=None, reason="CannotPullContainerError: not found",
                         status_reason="Task failed to start") == "EXIT"

    # The last entry catches everything (with no match Batch retries), and it is EXIT.
    last = strategy[-1]
    assert last["Action"] == "EXIT"
    assert [v for k, v in last.items() if k.startswith("On")] == ["*"]
    # RETRY names exactly the transient code and the Spot reclaim, nothing broader.
    retried_codes = {e["OnExitCode"] for e in strategy if e["Action"] == "RETRY" and "OnExitCode" in e}
    assert retried_codes == {str(errors.EXIT_TEMPFAIL)}
    assert len(strategy) <= 5  # Batch's limit
    attempts = template["Parameters"][retry["Attempts"]["Ref"]]
    assert 2 <= attempts["Default"] <= attempts["MaxValue"] <= 10


def test_the_contract_simulation_sees_a_broken_strategy() -> None:
    # The simulation above must notice the classic mistake: no final EXIT, so everything retries.
    strategy = [{"OnExitCode": "75", "Action": "RETRY"}]
    assert batch_decides(strategy, exit_code=65, reason="", status_reason="x") == "RETRY"


# ----------------------------------------------------------------- the worker's environment


def job_environment(
    template: dict[str, Any], *, with_secrets: bool = True, conditions: dict[str, bool] | None = None
) -> dict[str, str]:
    """The environment a worker container gets from the job definition (and Batch)."""
    props = container(template)
    env = {item["Name"]: resolve(item["Value"], STAND_INS, conditions)
           for item in props["Environment"]}
    if with_secrets:
        for secret in props["Secrets"]:
            assert secret["ValueFrom"] == {"Ref": "DatabaseSecretArn"}
            env[secret["Name"]] = SECRET_VALUE
    env.update({"AWS_BATCH_JOB_ID": "a1b2:3", "AWS_BATCH_JOB_ATTEMPT": "1",
                "AWS_BATCH_JOB_ARRAY_INDEX": "3", "AWS_BATCH_JOB_ARRAY_SIZE": "10",
                "RUN_ID": "2026-11-29-nightly"})
    return env


def test_job_definition_gives_the_worker_every_variable_it_requires(
    template: dict[str, Any],
) -> None:
    # Something is required (else this test proves nothing) …
    with pytest.raises(ConfigError):
        Settings.from_env({})
    # … and the job definition supplies it: the worker starts with exactly what Batch hands it.
    settings = Settings.from_env(job_environment(template))
    assert settings.database_url == SECRET_VALUE
    assert settings.output_url == f"s3://{STAND_INS['Bucket']}"
    assert settings.log_format == "json"
    assert settings.array_index == 3 and settings.run_id == "2026-11-29-nightly"
    # processed images are linked over https at the same address the platforms read feeds from:
    # the distribution's own name, or the custom domain when one is given
    feeds_base = template["Outputs"]["FeedsBaseUrl"]["Value"]
    for custom, host in ((False, STAND_INS["Distribution.DomainName"]),
                         (True, STAND_INS["PublicDomainName"])):
        conditions = {"HasCustomDomain": custom}
        settings = Settings.from_env(job_environment(template, conditions=conditions))
        assert settings.public_base_url == f"https://{host}"
        assert resolve(feeds_base, STAND_INS, conditions) == f"https://{host}/feeds/"
    # The database URL comes from Secrets Manager, never from the plain environment.
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_env(job_environment(template, with_secrets=False))


def test_job_definition_sets_only_variables_the_code_reads(template: dict[str, Any]) -> None:
    read = env_names_read_by(ROOT / "worker" / "common" / "settings.py")
    assert {"DATABASE_URL", "OUTPUT_URL", "AWS_BATCH_JOB_ARRAY_INDEX"} <= read  # the parser works
    props = container(template)
    names = [item["Name"] for item in props["Environment"]] + [s["Name"] for s in props["Secrets"]]
    unknown = set(names) - read - set(BOTO_READS)
    assert not unknown, f"the job definition sets variables no code reads: {sorted(unknown)}"
    assert not set(names) & set(BATCH_SETS + SUBMITTER_SETS), "Batch or the submitter sets these"
    assert len(names) == len(set(names))
    # The secret's variable is one the worker reads, and it is not also in plain text.
    assert {s["Name"] for s in props["Secrets"]} <= read
    assert not {s["Name"] for s in props["Secrets"]} & {i["Name"] for i in props["Environment"]}


def test_job_definition_is_the_one_image_with_the_task_as_command(template: dict[str, Any]) -> None:
    props = container(template)
    # The command is the task, overridden per array job; no default would run a task by accident.
    assert "Command" not in props
    assert sub_text(props["Image"]) == "${Repository.RepositoryUri}:${ImageTag}"
    requirements = {r["Type"]: r["Value"] for r in props["ResourceRequirements"]}
    assert set(requirements) == {"VCPU", "MEMORY"}
    assert props["LogConfiguration"]["LogDriver"] == "awslogs"
    assert props["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "JobLogGroup"}
    _, log_group = one_resource_named(template, "JobLogGroup")
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    _, job_definition = one_resource(template, "AWS::Batch::JobDefinition")
    assert job_definition["Properties"]["Timeout"]["AttemptDurationSeconds"]


def one_resource_named(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    return name, template["Resources"][name]


def test_output_url_points_at_the_stacks_bucket(template: dict[str, Any]) -> None:
    env = {i["Name"]: i["Value"] for i in container(template)["Environment"]}
    assert sub_text(env["OUTPUT_URL"]) == "s3://${Bucket}"
    assert sub_text(template["Outputs"]["OutputUrl"]["Value"]) == "s3://${Bucket}"


# ------------------------------------------------------------------------ compute and queue


def test_spot_first_on_demand_second(template: dict[str, Any]) -> None:
    environments = resources_of_type(template, "AWS::Batch::ComputeEnvironment")
    by_type = {r["Properties"]["ComputeResources"]["Type"]: name for name, r in environments.items()}
    assert set(by_type) == {"SPOT", "EC2"}
    spot = environments[by_type["SPOT"]]["Properties"]["ComputeResources"]
    assert spot["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    for environment in environments.values():
        assert environment["Properties"]["Type"] == "MANAGED"
        assert environment["Properties"]["ComputeResources"]["MinvCpus"] == 0
    _, queue = one_resource(template, "AWS::Batch::JobQueue")
    order = sorted(queue["Properties"]["ComputeEnvironmentOrder"], key=lambda o: o["Order"])
    assert [o["ComputeEnvironment"]["Ref"] for o in order] == [by_type["SPOT"], by_type["EC2"]]


def test_parameters_the_issue_asks_for(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["ScheduleExpression"]["Default"] == "cron(0 18 * * ? *)"  # 03:00 KST
    assert parameters["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert parameters["VpcId"]["Type"] == "AWS::EC2::VPC::Id"
    assert parameters["DatabaseSecurityGroupId"]["Type"] == "AWS::EC2::SecurityGroup::Id"
    for name in ("ImageTag", "DatabaseSecretArn", "MaxVcpus", "InstanceTypes"):
        assert name in parameters
    assert set(template["Outputs"]) >= {"JobQueueArn", "JobDefinitionArn", "BucketName",
                                         "SubmitterFunctionName", "RepositoryUri"}


def test_repository_scans_on_push_and_keeps_the_last_images(template: dict[str, Any]) -> None:
    import json

    _, repository = one_resource(template, "AWS::ECR::Repository")
    props = repository["Properties"]
    assert props["ImageScanningConfiguration"]["ScanOnPush"] is True
    text = sub_text(props["LifecyclePolicy"]["LifecyclePolicyText"])
    assert text is not None
    policy = json.loads(text.replace("${KeepImages}", "30"))
    (rule,) = policy["rules"]
    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["selection"]["countNumber"] == 30 and rule["action"]["type"] == "expire"


# ----------------------------------------------------------------------------- the bucket


def test_bucket_is_encrypted_versioned_and_private(template: dict[str, Any]) -> None:
    _, bucket = one_resource(template, "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any("NoncurrentVersionExpiration" in r for r in rules)
    # Every Block Public Access setting on: the stack deploys where an organisation enforces them.
    block = props["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    assert props["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"


def test_only_this_distribution_reads_and_only_feeds_and_images(template: dict[str, Any]) -> None:
    (policy,) = resources_of_type(template, "AWS::S3::BucketPolicy").values()
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
              if s["Effect"] == "Allow"]
    # No anonymous grant at all (BlockPublicPolicy would refuse it and roll the stack back).
    assert all(s["Principal"] != "*" and "AWS" not in s["Principal"] for s in allows)
    (read,) = allows
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert as_list(read["Action"]) == ["s3:GetObject"]
    assert {sub_text(r) for r in as_list(read["Resource"])} == {
        "${Bucket.Arn}/feeds/*", "${Bucket.Arn}/images/*"}
    source = sub_text(read["Condition"]["StringEquals"]["AWS:SourceArn"])
    assert source is not None and source.endswith(":distribution/${Distribution}")


def test_the_distribution_reads_the_bucket_through_origin_access_control(
    template: dict[str, Any],
) -> None:
    control_name, control = one_resource(template, "AWS::CloudFront::OriginAccessControl")
    config = control["Properties"]["OriginAccessControlConfig"]
    assert config["OriginAccessControlOriginType"] == "s3"
    assert config["SigningBehavior"] == "always" and config["SigningProtocol"] == "sigv4"
    _, distribution = one_resource(template, "AWS::CloudFront::Distribution")
    props = distribution["Properties"]["DistributionConfig"]
    (origin,) = props["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["Bucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [control_name, "Id"]}
    # No legacy origin access identity beside it.
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    behaviours = [props["DefaultCacheBehavior"], *props["CacheBehaviors"]]
    assert {b.get("PathPattern") for b in behaviours} == {None, "feeds/*", "images/*"}
    for behaviour in behaviours:
        assert behaviour["TargetOriginId"] == origin["Id"]
        assert behaviour["ViewerProtocolPolicy"] == "https-only"
        assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    # A custom domain comes with its certificate; without one, CloudFront's own.
    assert props["Aliases"]["Fn::If"][0] == "HasCustomDomain"
    certificate = props["ViewerCertificate"]["Fn::If"]
    assert certificate[1]["AcmCertificateArn"] == {"Ref": "PublicCertificateArn"}
    assert certificate[2] == {"CloudFrontDefaultCertificate": True}


# ------------------------------------------------------------------------------------ IAM


def test_no_policy_statement_allows_wildcard_actions_or_resources(
    template: dict[str, Any],
) -> None:
    problems = []
    statements = list(policy_statements(template))
    assert len(statements) >= 10  # the walk finds the roles' inline policies
    for where, statement in statements:
        if statement["Effect"] == "Deny":
            continue  # a broad Deny narrows; it grants nothing
        actions = as_list(statement["Action"])
        problems += [f"{where}: wildcard action {a!r}" for a in actions if "*" in a]
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                broad = [a for a in actions if a not in NO_RESOURCE_LEVEL]
                if broad:
                    problems.append(f"{where}: Resource '*' for {broad}, which can be narrowed")
                continue
            problems += [f"{where}: {p}" for p in resource_problems(
                resource, template, conditioned="Condition" in statement)]
    assert not problems, "\n".join(problems)


def resource_problems(
    resource: Any, template: dict[str, Any], *, conditioned: bool = False
) -> list[str]:
    """Why a resource is too broad: a wildcard in the ARN's service, region or account, or a
    resource part that starts with one; references to the stack's own resources are narrow."""
    if isinstance(resource, str):
        return [f"literal resource {resource!r}: use a reference to this stack's resources"]
    if "Ref" in resource or "Fn::GetAtt" in resource:
        return []
    text = sub_text(resource)
    if text is None:
        return [f"cannot judge {resource!r}"]
    if text.startswith("${") and text.split("}", 1)[0][2:].split(".")[0] in template["Resources"]:
        rest = text.split("}", 1)[1]  # under one of the stack's own resources, e.g. a bucket
        return [] if re.fullmatch(r"/[A-Za-z0-9_-]+/.*", rest) else [f"{text!r} is the whole resource"]
    arn = re.sub(r"\$\{[^}]+\}", "X", text).split(":", 5)
    if len(arn) < 6 or arn[0] != "arn":
        return [f"{text!r} is not an ARN"]
    problems = [f"{text!r}: wildcard in the ARN's {part}"
                for part, value in zip(("partition", "service", "region", "account"), arn[1:5],
                                       strict=True) if "*" in value]
    # "job/*" is every resource of its kind: acceptable only under a condition that narrows it
    # (jobs have random ids, so batch:TagResource on new jobs is narrowed by the tag keys).
    if arn[5].startswith("*") or (re.fullmatch(r"[a-z-]+/\*", arn[5]) and not conditioned):
        problems.append(f"{text!r}: every resource of its kind")
    return problems


def test_the_wildcard_check_catches_broad_grants(template: dict[str, Any]) -> None:
    assert resource_problems({"Fn::Sub": "arn:${AWS::Partition}:s3:::*"}, template)
    assert resource_problems({"Fn::Sub": "arn:aws:batch:*:${AWS::AccountId}:job-queue/x"}, template)
    assert resource_problems({"Fn::Sub": "${Bucket.Arn}/*"}, template)
    assert resource_problems("arn:aws:s3:::some-bucket/*", template)
    assert resource_problems({"Fn::Sub": "arn:aws:batch:${AWS::Region}:${AWS::AccountId}:job/*"},
                             template)
    assert not resource_problems({"Fn::Sub": "${Bucket.Arn}/feeds/*"}, template)


def test_job_role_reaches_only_its_prefixes(template: dict[str, Any]) -> None:
    granted = [s for where, s in policy_statements(template) if where.startswith("JobRole/")]
    services = {a.split(":")[0] for s in granted for a in as_list(s["Action"])}
    # DATABASE_URL is injected by ECS with the execution role; the worker never reads the secret.
    assert services == {"s3"}
    for statement in granted:
        for resource in as_list(statement["Resource"]):
            text = sub_text(resource)
            if text is not None:
                assert text in ("${Bucket.Arn}/feeds/*", "${Bucket.Arn}/images/*")
            else:
                assert resource == {"Fn::GetAtt": ["Bucket", "Arn"]}
        if statement["Action"] == "s3:ListBucket":
            # Bucket-level: needed so that a missing key is 404 (the store's exists/get_bytes).
            assert statement["Resource"] == {"Fn::GetAtt": ["Bucket", "Arn"]}


def test_submitter_may_tag_its_jobs_with_exactly_the_submitters_tag_keys(
    template: dict[str, Any],
) -> None:
    from submitter.batch import submit_job_payload
    from submitter.plan import Chunk, PlannedJob

    statements = [s for where, s in policy_statements(template) if where.startswith("SubmitterRole/")]
    (tagging,) = [s for s in statements if "batch:TagResource" in as_list(s["Action"])]
    keys = tagging["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
    # The tags a real SubmitJob request carries: anything else would be refused by this policy.
    job = PlannedJob(key="collect/0", task="collect", chunk=Chunk(0, 0, 3),
                     name="catalog-collect-2026-11-29", array_size=3, depends_on=(),
                     environment=(("RUN_ID", "2026-11-29"),))
    payload = submit_job_payload(job, job_queue="q", job_definition="d", job_ids={})
    assert sorted(payload["tags"]) == sorted(keys)


def test_submitter_may_submit_only_to_this_queue_with_this_definition(
    template: dict[str, Any],
) -> None:
    statements = [s for where, s in policy_statements(template) if where.startswith("SubmitterRole/")]
    (submit,) = [s for s in statements if "batch:SubmitJob" in as_list(s["Action"])]
    assert as_list(submit["Action"]) == ["batch:SubmitJob"]
    _, definition = one_resource(template, "AWS::Batch::JobDefinition")
    name = sub_text(definition["Properties"]["JobDefinitionName"])
    resources = as_list(submit["Resource"])
    assert {"Ref": "JobQueue"} in resources
    for resource in resources:
        text = sub_text(resource)
        if text is not None:
            assert re.fullmatch(r"arn:\$\{AWS::Partition\}:batch:\$\{AWS::Region\}:"
                                r"\$\{AWS::AccountId\}:job-definition/" + re.escape(name or "?")
                                + r"(:\*)?", text), text


# --------------------------------------------------------------------- the submitter Lambda


def lambda_function(template: dict[str, Any]) -> dict[str, Any]:
    _, function = one_resource(template, "AWS::Lambda::Function")
    props: dict[str, Any] = function["Properties"]
    return props


def test_lambda_handler_path_exists_and_imports(template: dict[str, Any]) -> None:
    module_name, _, attribute = lambda_function(template)["Handler"].rpartition(".")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute))


def test_lambda_environment_is_what_the_submitter_reads(template: dict[str, Any]) -> None:
    from submitter.config import SubmitterConfig

    variables = lambda_function(template)["Environment"]["Variables"]
    assert variables["JOB_QUEUE"] == {"Ref": "JobQueue"}
    assert variables["JOB_DEFINITION"] == {"Ref": "JobDefinition"}
    assert variables["DATABASE_SECRET_ARN"] == {"Ref": "DatabaseSecretArn"}
    read = env_names_read_by(ROOT / "submitter" / "config.py")
    unknown = set(variables) - read
    assert not unknown, f"the Lambda's environment has variables the submitter ignores: {unknown}"
    config = SubmitterConfig.from_env({k: resolve(v, STAND_INS) for k, v in variables.items()})
    assert config.require_batch() == (STAND_INS["JobQueue"], STAND_INS["JobDefinition"])
    assert config.database_secret_arn == STAND_INS["DatabaseSecretArn"]


def test_lambda_runtime_matches_the_project_and_the_zip_builder(template: dict[str, Any]) -> None:
    runtime = lambda_function(template)["Runtime"]
    match = re.fullmatch(r"python3\.(\d+)", runtime)
    assert match, runtime
    with (ROOT / "pyproject.toml").open("rb") as f:
        requires = tomllib.load(f)["project"]["requires-python"]
    minimum = int(re.fullmatch(r">=\s*3\.(\d+)", requires).group(1))  # type: ignore[union-attr]
    assert int(match.group(1)) >= minimum
    defaults = build_lambda.main.__code__.co_consts
    assert f"3.{match.group(1)}" in defaults, "build_lambda.py's default --python-version differs"
    architecture = lambda_function(template)["Architectures"][0]
    assert {"x86_64": "x86_64", "arm64": "aarch64"}[architecture] in " ".join(
        c for c in defaults if isinstance(c, str)
    )


def test_schedule_invokes_the_lambda_with_permission(template: dict[str, Any]) -> None:
    function_name, _ = one_resource(template, "AWS::Lambda::Function")
    rule_name, rule = "NightlySchedule", template["Resources"]["NightlySchedule"]
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    # The night stays off until an image exists and the schema is migrated (docs/infra.md).
    assert rule["Properties"]["State"] == {"Ref": "ScheduleState"}
    assert template["Parameters"]["ScheduleState"]["Default"] == "DISABLED"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_name, "Arn"]}
    _, permission = one_resource(template, "AWS::Lambda::Permission")
    props = permission["Properties"]
    assert props["Principal"] == "events.amazonaws.com"
    assert props["Action"] == "lambda:InvokeFunction"
    assert props["SourceArn"] == {"Fn::GetAtt": [rule_name, "Arn"]}
