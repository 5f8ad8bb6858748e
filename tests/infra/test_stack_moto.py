"""The template deployed into moto's CloudFormation, and a night submitted against its outputs.

One stack per module (moto's CloudFormation is not fast). What the stack needs from outside is made
first, as an operator would: a VPC with two subnets and a security group, the database secret, AWS
Batch's service-linked role, and the submitter's zip in an artifact bucket (built by
infra/build_lambda.py, code only: tests stay offline).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import psycopg
import psycopg.conninfo
import pytest
import structlog
from moto import mock_aws
from structlog.testing import capture_logs

from infra import build_lambda
from submitter.batch import BatchApi, make_client
from submitter.config import SubmitterConfig, resolve_database_url
from submitter.plan import plan_run
from submitter.submit import submit_plan
from tests.fixtures_shops import make_shop
from tests.infra.fixtures_cfn import TEMPLATE_PATH, load_template
from worker.common.settings import TASKS, Settings

REGION = "ap-northeast-2"
STACK = "catalog-test"
IMAGE_TAG = "2026.11.29-abc1234"
# CloudFormation types moto cannot create; the template's tests check them instead.
MOTO_CANNOT_CREATE = {
    "AWS::S3::BucketPolicy", "AWS::CloudFront::Distribution", "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudFront::CachePolicy", "AWS::Batch::ConsumableResource", "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy", "AWS::Lambda::EventInvokeConfig", "AWS::CloudWatch::Alarm",
    "AWS::Scheduler::Schedule",
}
# moto cannot give the distribution's DomainName, so the stack is deployed with a custom domain.
PUBLIC_DOMAIN = "feeds.example.com"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"

pytestmark = pytest.mark.slow  # one moto stack for the module: some seconds


@dataclass
class Stack:
    outputs: dict[str, str]
    secret_arn: str
    subnets: list[str]
    database_security_group: str
    vpc: str
    unsupported: set[str]

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def security_group(self, role: str) -> str:
        """The id of the stack's own security group for ``workers`` or ``submitter``."""
        (group,) = self.client("ec2").describe_security_groups(
            Filters=[{"Name": "tag:Name", "Values": [f"{STACK}-{role}"]}]
        )["SecurityGroups"]
        assert group["VpcId"] == self.vpc
        return str(group["GroupId"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.delenv("AWS_PROFILE", raising=False)
        # use_docker False: moto's Batch moves jobs through their states without running them.
        with mock_aws(config={"batch": {"use_docker": False}}):
            yield deploy(tmp_path_factory.mktemp("stack"))


def deploy(scratch: Path) -> Stack:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24",
                          AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for i, zone in enumerate("ac")
    ]
    database_security_group = ec2.create_security_group(
        GroupName="catalog-db", Description="the catalog database", VpcId=vpc
    )["GroupId"]
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="catalog-batch/database", SecretString="postgresql://placeholder@db.internal/catalog"
    )["ARN"]
    service_role = boto3.client("iam", region_name=REGION).create_service_linked_role(
        AWSServiceName="batch.amazonaws.com"
    )["Role"]["Arn"]

    zip_path, _ = build_lambda.build(scratch / "submitter.zip", with_dependencies=False)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="catalog-artifacts",
                     CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.upload_file(str(zip_path), "catalog-artifacts", "submitter-test.zip")

    parameters = {
        "SubnetIds": ",".join(subnets),
        "VpcId": vpc,
        "DatabaseSecurityGroupId": database_security_group,
        "PublicDomainName": PUBLIC_DOMAIN,
        "PublicCertificateArn": CERTIFICATE,
        "AlarmEmail": "night-watch@example.com",
        "ImageTag": IMAGE_TAG,
        "DatabaseSecretArn": secret_arn,
        "BatchServiceRoleArn": service_role,
        "SubmitterCodeBucket": "catalog-artifacts",
        "SubmitterCodeKey": "submitter-test.zip",
        # The default itself, passed explicitly: moto does not split a list parameter's default.
        "InstanceTypes": load_template()["Parameters"]["InstanceTypes"]["Default"],
    }
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cloudformation.create_stack(
            StackName=STACK,
            TemplateBody=TEMPLATE_PATH.read_text(encoding="utf-8"),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM"],
        )
        # The outputs are resolved when read, and some name resources moto does not create.
        (description,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    unsupported = {
        match.group(1) for w in caught
        if (match := re.match(r"Tried to parse (\S+) but it's not supported", str(w.message)))
    }
    others = [str(w.message) for w in caught if not str(w.message).startswith("Tried to parse")]
    assert not others, others
    assert description["StackStatus"] == "CREATE_COMPLETE", description.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in description["Outputs"]}
    return Stack(outputs, secret_arn, subnets, database_security_group, vpc, unsupported)


def test_moto_created_everything_but_what_it_cannot(stack: Stack) -> None:
    assert stack.unsupported <= MOTO_CANNOT_CREATE
    template_types = {r["Type"] for r in load_template()["Resources"].values()}
    assert template_types >= MOTO_CANNOT_CREATE  # still there, still checked by the template tests
    assert set(stack.outputs) >= {"JobQueueArn", "JobDefinitionArn", "BucketName", "OutputUrl",
                                   "SubmitterFunctionName", "RepositoryUri"}


def test_batch_queue_orders_spot_before_on_demand(stack: Stack) -> None:
    batch = stack.client("batch")
    (queue,) = batch.describe_job_queues(jobQueues=[stack.outputs["JobQueueArn"]])["jobQueues"]
    assert queue["state"] == "ENABLED"
    order = sorted(queue["computeEnvironmentOrder"], key=lambda o: o["order"])
    environments = {
        e["computeEnvironmentArn"]: e
        for e in batch.describe_compute_environments(
            computeEnvironments=[o["computeEnvironment"] for o in order]
        )["computeEnvironments"]
    }
    resources = [environments[o["computeEnvironment"]]["computeResources"] for o in order]
    assert [r["type"] for r in resources] == ["SPOT", "EC2"]
    assert resources[0]["allocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    for r in resources:
        assert int(r["minvCpus"]) == 0
        assert sorted(r["subnets"]) == sorted(stack.subnets)
        assert r["securityGroupIds"] == [stack.security_group("workers")]
        assert ":instance-profile/" in r["instanceRole"]


def test_job_definition_runs_the_tagged_image_with_the_workers_contract(stack: Stack) -> None:
    batch = stack.client("batch")
    (definition,) = batch.describe_job_definitions(
        jobDefinitions=[stack.outputs["JobDefinitionArn"]]
    )["jobDefinitions"]
    container = definition["containerProperties"]
    assert container["image"] == f"{stack.outputs['RepositoryUri']}:{IMAGE_TAG}"
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment["OUTPUT_URL"] == stack.outputs["OutputUrl"]
    assert container["secrets"] == [{"name": "DATABASE_URL", "valueFrom": stack.secret_arn}]
    # What the worker sees in the container parses, and writes into the stack's bucket.
    settings = Settings.from_env({**environment, "DATABASE_URL": "postgresql://u@db/catalog"})
    assert settings.output_url == f"s3://{stack.outputs['BucketName']}"
    strategy = definition["retryStrategy"]["evaluateOnExit"]
    assert {k: v.upper() for k, v in strategy[-1].items()} == {"onReason": "*", "action": "EXIT"}
    roles = {container["jobRoleArn"], container["executionRoleArn"]}
    iam = stack.client("iam")
    for arn in roles:
        trust = iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert len(roles) == 2  # the job's own rights are not the agent's


def test_bucket_repository_and_logs_as_declared(stack: Stack) -> None:
    s3 = stack.client("s3")
    bucket = stack.outputs["BucketName"]
    # moto's CloudFormation applies a bucket's encryption only; versioning, the public access
    # block and the lifecycle are checked in the template's tests.
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    ecr = stack.client("ecr")
    (repository,) = ecr.describe_repositories()["repositories"]
    assert repository["repositoryUri"] == stack.outputs["RepositoryUri"]
    # Scan on push and the lifecycle rule moto's CloudFormation drops: the template tests check them.
    assert repository["imageTagMutability"] == "IMMUTABLE"
    logs = stack.client("logs")
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups()["logGroups"]}
    assert groups[f"/aws/batch/{STACK}"]["retentionInDays"] == 30
    assert groups[f"/aws/lambda/{STACK}-submitter"]["retentionInDays"] == 30


def rules_by_kind(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stack's (schedule rule, event-pattern rule)."""
    rules = stack.client("events").list_rules()["Rules"]
    (schedule,) = [r for r in rules if "ScheduleExpression" in r]
    (pattern,) = [r for r in rules if "EventPattern" in r]
    return schedule, pattern


def test_schedule_targets_the_submitter_and_starts_disabled(stack: Stack) -> None:
    events = stack.client("events")
    rule, _ = rules_by_kind(stack)
    assert rule["ScheduleExpression"] == "cron(0 18 * * ? *)"
    # No night starts before an image is pushed and the database migrated (docs/infra.md).
    assert rule["State"] == "DISABLED"
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    function = stack.client("lambda").get_function_configuration(
        FunctionName=stack.outputs["SubmitterFunctionName"]
    )
    assert target["Arn"] == function["FunctionArn"]


def test_database_admits_the_workers_and_the_submitter_on_its_port(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    workers, submitter = stack.security_group("workers"), stack.security_group("submitter")
    (database,) = ec2.describe_security_groups(GroupIds=[stack.database_security_group])[
        "SecurityGroups"]
    sources = {
        pair["GroupId"]
        for permission in database["IpPermissions"]
        if permission["IpProtocol"] == "tcp" and permission["FromPort"] == 5432
        and permission["ToPort"] == 5432
        for pair in permission["UserIdGroupPairs"]
    }
    assert sources == {workers, submitter}
    # Nothing else reaches the database through the stack: no CIDR ranges were opened.
    assert not [r for p in database["IpPermissions"] for r in p.get("IpRanges", [])]
    # The Lambda is in the VPC's subnets with its own group.
    vpc_config = stack.client("lambda").get_function_configuration(
        FunctionName=stack.outputs["SubmitterFunctionName"]
    )["VpcConfig"]
    assert vpc_config["SecurityGroupIds"] == [submitter]
    assert sorted(vpc_config["SubnetIds"]) == sorted(stack.subnets)


def batch_event(queue: str, status: str = "FAILED", **detail: Any) -> str:
    """A "Batch Job State Change" event as EventBridge delivers it."""
    return json.dumps({
        "version": "0", "id": "c8f9c4b5-0000-0000-0000-000000000000",
        "detail-type": "Batch Job State Change", "source": "aws.batch",
        "account": "123456789012", "time": "2026-11-30T19:12:00Z", "region": REGION,
        "resources": [f"arn:aws:batch:{REGION}:123456789012:job/4c3e-1"],
        "detail": {"jobName": "catalog-collect-2026-11-30", "jobId": "4c3e-1",
                   "jobQueue": queue, "status": status,
                   "statusReason": "Essential container in task exited", **detail},
    })


def test_a_failed_job_of_this_queue_alarms_the_topic(stack: Stack) -> None:
    events = stack.client("events")
    _, rule = rules_by_kind(stack)
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    topic = stack.outputs["AlarmTopicArn"]
    assert target["Arn"] == topic
    assert topic in stack.client("sns").list_topics()["Topics"][0].values()
    assert "<reason>" in target["InputTransformer"]["InputTemplate"]
    # moto's EventBridge matcher (what its PutEvents applies to rules) judges the pattern as
    # the stack holds it; moto cannot deliver to an SNS target, so PutEvents is not used.
    from moto.events.models import EventPattern

    pattern = EventPattern.load(rule["EventPattern"])
    queue = stack.outputs["JobQueueArn"]

    def matches(event: str) -> bool:
        return bool(pattern.matches_event(json.loads(event)))

    assert matches(batch_event(queue, arrayProperties={"size": 3}))  # the night's array job
    assert matches(batch_event(queue))  # a one-off job: migrate
    assert not matches(batch_event(queue, "SUCCEEDED"))
    assert not matches(batch_event(queue, "RUNNABLE"))
    # Another stack's queue, and each child of a failed array (its parent alarms once for all).
    assert not matches(batch_event(queue.replace("catalog-test", "other")))
    assert not matches(batch_event(queue, arrayProperties={"index": 2, "size": 3}))


def test_instances_require_imdsv2_with_one_hop(stack: Stack) -> None:
    ec2 = stack.client("ec2")
    (template,) = ec2.describe_launch_templates()["LaunchTemplates"]
    (version,) = ec2.describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"])["LaunchTemplateVersions"]
    data = version["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert int(data["MetadataOptions"]["HttpPutResponseHopLimit"]) == 1
    (root,) = data["BlockDeviceMappings"]
    assert int(root["Ebs"]["VolumeSize"]) == 100 and root["Ebs"]["Encrypted"] in (True, "true")
    batch = stack.client("batch")
    environments = batch.describe_compute_environments()["computeEnvironments"]
    assert len(environments) == 2
    for environment in environments:
        assert environment["computeResources"]["launchTemplate"]["launchTemplateId"] == (
            template["LaunchTemplateId"])


def lambda_environment(stack: Stack) -> dict[str, str]:
    function = stack.client("lambda").get_function_configuration(
        FunctionName=stack.outputs["SubmitterFunctionName"]
    )
    variables: dict[str, str] = function["Environment"]["Variables"]
    return variables


def as_uri(conninfo: str) -> str:
    """A libpq URI for a connection string (the secret holds a URI: the worker takes no other)."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = quote(str(params.get("user", "")), safe="")
    password = f":{quote(str(params['password']), safe='')}" if params.get("password") else ""
    host = quote(str(params.get("host", "")), safe="")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{password}@{host}{port}/{quote(str(params['dbname']), safe='')}"


def put_database_secret(stack: Stack, database_url: str) -> str:
    """Point the stack's database secret at this test's database; the URI stored."""
    uri = as_uri(database_url)
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=stack.secret_arn, SecretString=uri
    )
    return uri


def test_the_submitter_submits_a_night_against_the_stack(stack: Stack, database_url: str) -> None:
    # The secret holds this test's database: the submitter finds it exactly as in the Lambda.
    uri = put_database_secret(stack, database_url)
    config = SubmitterConfig.from_env(lambda_environment(stack))
    job_queue, job_definition = config.require_batch()
    assert (job_queue, job_definition) == (stack.outputs["JobQueueArn"],
                                           stack.outputs["JobDefinitionArn"])
    url = resolve_database_url(config)
    assert url == uri
    with psycopg.connect(url) as conn:
        for shop in ("shop-a", "shop-b", "shop-c"):
            make_shop(conn, id=shop, name=shop.upper())
        conn.commit()
        plan = plan_run(conn, dt.date(2026, 11, 29))
        with capture_logs() as events:
            result = submit_plan(conn, plan, BatchApi(make_client(region_name=REGION)),
                                 job_queue=job_queue, job_definition=job_definition)
    assert set(result.submitted) == {"collect/0", "feed/0", "images/0"}
    logged = {e["job_id"] for e in events if e["event"] == "submit.job"}
    assert logged == set(result.submitted.values())

    batch = stack.client("batch")
    jobs = {j["jobId"]: j for j in batch.describe_jobs(jobs=list(result.submitted.values()))["jobs"]}
    by_task = {jobs[job_id]["container"]["command"][0]: jobs[job_id]
               for job_id in result.submitted.values()}
    assert set(by_task) == set(TASKS)
    for task, job in by_task.items():
        # The image's ENTRYPOINT is `python -m worker`: the override must be the task alone.
        assert job["container"]["command"] == [task]
        assert job["jobQueue"] == job_queue
        assert job["jobDefinition"] == job_definition
        assert job["arrayProperties"]["size"] == 3
    collect_id = by_task["collect"]["jobId"]
    for task in ("feed", "images"):
        assert by_task[task]["dependsOn"] == [{"jobId": collect_id, "type": "N_TO_N"}]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put structlog and the root logger back as they were: the handler's cold start configures
    them onto this test's captured stdout, which is closed once the test ends."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_the_scheduled_lambda_submits_a_night(
    stack: Stack, database_url: str, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
) -> None:
    # The handler the stack names, with the environment the stack gave it, fired by the schedule.
    from submitter import lambda_handler
    from submitter.lambda_handler import handler

    # The handler caches its configuration per container: start cold, leave nothing behind.
    lambda_handler.reset()
    request.addfinalizer(lambda_handler.reset)

    put_database_secret(stack, database_url)
    for name, value in lambda_environment(stack).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with psycopg.connect(database_url) as conn:
        make_shop(conn, id="shop-x")
        make_shop(conn, id="shop-y")
        conn.commit()
    event = {"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": "2026-11-30T18:00:00Z", "region": REGION,
             "resources": [], "detail": {}}
    summary = handler(event, None)
    assert summary["shop_count"] == 2
    # A cold start configures JSON logs on stdout, one event per line, as CloudWatch gets them.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    done = [e for e in lines if e.get("event") == "submitter.done"]
    assert [e["run_id"] for e in done] == [summary["run_id"]]
    submitted = list(summary["submitted"].values())
    assert len(submitted) == 3
    jobs = stack.client("batch").describe_jobs(jobs=submitted)["jobs"]
    assert {j["jobQueue"] for j in jobs} == {stack.outputs["JobQueueArn"]}
    # EventBridge delivers at least once: the same event again submits nothing.
    with capture_logs():
        again = handler(event, None)
    assert again["submitted"] == {} and again["run_id"] == summary["run_id"]


# The CLI configures structlog onto this test's captured stderr: put it back after.
@pytest.mark.usefixtures("restore_logging")
def test_migrate_on_batch_runs_the_migrate_task_on_the_stacks_queue_and_waits(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from submitter import cli

    monkeypatch.setenv("JOB_QUEUE", stack.outputs["JobQueueArn"])
    monkeypatch.setenv("JOB_DEFINITION", stack.outputs["JobDefinitionArn"])
    # The operator's shell: no DATABASE_URL, the database is private; the job has it.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code = cli.main(["migrate", "--on-batch", "--poll", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    job_id = re.search(r"migrate job (\S+) SUCCEEDED", out).group(1)  # type: ignore[union-attr]
    (job,) = stack.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    # One plain job of the worker image: `python -m worker migrate`, with the definition's secret.
    assert job["container"]["command"] == ["migrate"]
    assert job["jobQueue"] == stack.outputs["JobQueueArn"]
    assert job["jobDefinition"] == stack.outputs["JobDefinitionArn"]
    assert "arrayProperties" not in job or not job["arrayProperties"].get("size")
    assert job["jobName"].startswith("catalog-migrate-")
    # No shop and no run: the job definition's environment (and its secret) is all it gets.
    environment = {e["name"] for e in job["container"].get("environment", [])}
    assert not environment & {"RUN_ID", "SHOP_ID", "SHOP_IDS", "SHOP_INDEX_OFFSET"}


# The CLI configures structlog onto this test's captured stderr: put it back after.
@pytest.mark.usefixtures("restore_logging")
def test_a_failed_migrate_job_fails_the_command_with_its_reason(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from submitter import cli

    # moto's Batch without Docker fails every job when told so.
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    code = cli.main(["migrate", "--on-batch", "--poll", "0",
                     "--job-queue", stack.outputs["JobQueueArn"],
                     "--job-definition", stack.outputs["JobDefinitionArn"]])
    err = capsys.readouterr().err
    assert code == 65
    assert "FAILED" in err and "Do not switch ImageTag" in err


# The CLI configures structlog onto this test's captured stderr: put it back after.
@pytest.mark.usefixtures("restore_logging")
def test_migrate_on_batch_needs_the_queue_and_definition(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from submitter import cli

    monkeypatch.delenv("JOB_QUEUE", raising=False)
    monkeypatch.delenv("JOB_DEFINITION", raising=False)
    assert cli.main(["migrate", "--on-batch"]) == 65
    assert "JOB_QUEUE and JOB_DEFINITION not set" in capsys.readouterr().err


# The CLI configures structlog onto this test's captured stderr: put it back after.
@pytest.mark.usefixtures("restore_logging")
def test_migrate_on_batch_can_run_a_release_image_before_the_stack_points_at_it(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from submitter import cli

    monkeypatch.setenv("JOB_QUEUE", stack.outputs["JobQueueArn"])
    monkeypatch.setenv("JOB_DEFINITION", stack.outputs["JobDefinitionArn"])
    code = cli.main(["migrate", "--on-batch", "--image-tag", "2026.12.01-def5678", "--poll", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    revision = re.search(r"registered (\S+) for image tag", out).group(1)  # type: ignore[union-attr]
    job_id = re.search(r"migrate job (\S+) SUCCEEDED", out).group(1)  # type: ignore[union-attr]
    batch = stack.client("batch")
    (job,) = batch.describe_jobs(jobs=[job_id])["jobs"]
    assert job["jobDefinition"] == revision != stack.outputs["JobDefinitionArn"]
    assert job["container"]["command"] == ["migrate"]
    definitions = {d["jobDefinitionArn"]: d for d in batch.describe_job_definitions(
        jobDefinitions=[revision, stack.outputs["JobDefinitionArn"]])["jobDefinitions"]}
    # The release's image, everything else as the stack's definition; used once, then retired.
    ours, stacks = definitions[revision], definitions[stack.outputs["JobDefinitionArn"]]
    assert ours["containerProperties"]["image"] == (
        f"{stack.outputs['RepositoryUri']}:2026.12.01-def5678")
    assert stacks["containerProperties"]["image"] == f"{stack.outputs['RepositoryUri']}:{IMAGE_TAG}"
    for key in ("secrets", "jobRoleArn", "executionRoleArn", "environment"):
        assert ours["containerProperties"][key] == stacks["containerProperties"][key], key
    assert ours["retryStrategy"] == stacks["retryStrategy"]
    assert ours["status"] == "INACTIVE" and stacks["status"] == "ACTIVE"


# The CLI configures structlog onto this test's captured stderr: put it back after.
@pytest.mark.usefixtures("restore_logging")
def test_image_tag_without_on_batch_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from submitter import cli

    assert cli.main(["migrate", "--image-tag", "x"]) == 65
    assert "--image-tag" in capsys.readouterr().err
