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
MOTO_CANNOT_CREATE = {"AWS::S3::BucketPolicy", "AWS::CloudWatch::Alarm", "AWS::Scheduler::Schedule"}

pytestmark = pytest.mark.slow  # one moto stack for the module: some seconds


@dataclass
class Stack:
    outputs: dict[str, str]
    secret_arn: str
    subnets: list[str]
    security_group: str
    unsupported: set[str]

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)


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
    security_group = ec2.create_security_group(
        GroupName="catalog-batch", Description="egress only", VpcId=vpc
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
        "SecurityGroupIds": security_group,
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
    unsupported = {
        match.group(1) for w in caught
        if (match := re.match(r"Tried to parse (\S+) but it's not supported", str(w.message)))
    }
    others = [str(w.message) for w in caught if not str(w.message).startswith("Tried to parse")]
    assert not others, others
    (description,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    assert description["StackStatus"] == "CREATE_COMPLETE", description.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in description["Outputs"]}
    return Stack(outputs, secret_arn, subnets, security_group, unsupported)


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
        assert r["securityGroupIds"] == [stack.security_group]
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


def test_schedule_targets_the_submitter(stack: Stack) -> None:
    events = stack.client("events")
    (rule,) = events.list_rules()["Rules"]
    assert rule["ScheduleExpression"] == "cron(0 18 * * ? *)"
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    function = stack.client("lambda").get_function_configuration(
        FunctionName=stack.outputs["SubmitterFunctionName"]
    )
    assert target["Arn"] == function["FunctionArn"]


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
