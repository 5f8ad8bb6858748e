"""The template's operational parts, read from the template itself: database networking, the
connection budget, memory per vCPU, the launch template, the init process, the alarms, and that
every IAM grant is used by some code path or AWS service.

moto's CloudFormation creates the security groups, the launch template, the rule and the topic
(tests/infra/test_stack_moto.py reads them back); these tests cover the rest by their properties.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.fixtures_cfn import (
    ROOT,
    as_list,
    load_template,
    one_resource,
    policy_statements,
    resources_of_type,
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def default(template: dict[str, Any], name: str) -> Any:
    return template["Parameters"][name]["Default"]


# ------------------------------------------------------------------------------ network


def test_the_database_admits_exactly_the_workers_and_the_submitter(template: dict[str, Any]) -> None:
    ingress = resources_of_type(template, "AWS::EC2::SecurityGroupIngress")
    sources = set()
    for rule in ingress.values():
        props = rule["Properties"]
        assert props["GroupId"] == {"Ref": "DatabaseSecurityGroupId"}
        assert props["IpProtocol"] == "tcp"
        assert props["FromPort"] == props["ToPort"] == {"Ref": "DatabasePort"}
        assert "CidrIp" not in props and "CidrIpv6" not in props
        sources.add(props["SourceSecurityGroupId"]["Fn::GetAtt"][0])
    assert sources == {"WorkerSecurityGroup", "SubmitterSecurityGroup"}
    assert default(template, "DatabasePort") == 5432
    assert template["Parameters"]["DatabaseSecurityGroupId"]["Type"] == "AWS::EC2::SecurityGroup::Id"
    # The groups the rules name are the ones the instances and the Lambda actually wear.
    for environment in resources_of_type(template, "AWS::Batch::ComputeEnvironment").values():
        assert environment["Properties"]["ComputeResources"]["SecurityGroupIds"] == [
            {"Fn::GetAtt": ["WorkerSecurityGroup", "GroupId"]}]
    _, function = one_resource(template, "AWS::Lambda::Function")
    assert function["Properties"]["VpcConfig"]["SecurityGroupIds"] == [
        {"Fn::GetAtt": ["SubmitterSecurityGroup", "GroupId"]}]
    assert function["Properties"]["VpcConfig"]["SubnetIds"] == {"Ref": "SubnetIds"}
    for name in ("WorkerSecurityGroup", "SubmitterSecurityGroup"):
        group = template["Resources"][name]["Properties"]
        assert group["VpcId"] == {"Ref": "VpcId"}
        assert "SecurityGroupIngress" not in group  # nothing may connect to them


# -------------------------------------------------------------------- connection budget


def test_the_connection_budget_holds_children_and_sizes_the_compute(template: dict[str, Any]) -> None:
    name, resource = one_resource(template, "AWS::Batch::ConsumableResource")
    props = resource["Properties"]
    assert props["ResourceType"] == "REPLENISHABLE"  # returned when a job ends
    assert props["TotalQuantity"] == {"Ref": "DatabaseConnectionBudget"}
    _, definition = one_resource(template, "AWS::Batch::JobDefinition")
    (need,) = definition["Properties"]["ConsumableResourceProperties"]["ConsumableResourceList"]
    # One connection per child (issue 14): one unit per job, whatever its vCPUs.
    assert need == {"ConsumableResource": {"Ref": name}, "Quantity": 1}
    # The compute environments' defaults are the budget's arithmetic, as the parameter says:
    # no more vCPUs than the children the budget lets run at once.
    budget, job_vcpus = default(template, "DatabaseConnectionBudget"), default(template, "JobVcpus")
    spot, on_demand = default(template, "MaxVcpus"), default(template, "OnDemandMaxVcpus")
    assert spot + on_demand == budget * job_vcpus
    description = " ".join(template["Parameters"]["DatabaseConnectionBudget"]["Description"].split())
    assert "(MaxVcpus + OnDemandMaxVcpus) = DatabaseConnectionBudget x JobVcpus" in description
    assert f"{spot} + {on_demand} = {budget} x {job_vcpus}" in " ".join(
        template["Parameters"]["MaxVcpus"]["Description"].split())


# ------------------------------------------------------------------------ memory per vCPU

# GiB per vCPU of each family the default list may choose (AWS's instance type pages).
GIB_PER_VCPU = {"c": 2, "m": 4, "r": 8}
# What ECS registers of an instance's memory: AWS Batch's own example (m4.large, 8 GiB installed,
# 7985 MiB registered), less the 32 MiB the Batch AMI reserves for the agent.
REGISTERED_FRACTION = 7985 / 8192
AGENT_RESERVED_MIB = 32
SIZES_VCPUS = (2, 4, 8, 16, 32, 48, 64, 96)  # .large … .24xlarge


def children_per_instance(vcpus: int, gib_per_vcpu: int, job_vcpus: int, job_mib: int) -> int:
    """How many children Batch places on one instance: the scarcer of vCPUs and memory."""
    registered = math.floor(vcpus * gib_per_vcpu * 1024 * REGISTERED_FRACTION) - AGENT_RESERVED_MIB
    return min(vcpus // job_vcpus, registered // job_mib)


def test_memory_per_vcpu_fills_every_instance_family_without_stranding_a_vcpu(
    template: dict[str, Any],
) -> None:
    job_vcpus, job_mib = default(template, "JobVcpus"), default(template, "JobMemoryMiB")
    families = default(template, "InstanceTypes").split(",")
    assert families
    for family in families:
        gib = GIB_PER_VCPU[family[0]]
        for vcpus in SIZES_VCPUS:
            assert children_per_instance(vcpus, gib, job_vcpus, job_mib) == vcpus // job_vcpus, (
                f"{family} with {vcpus} vCPUs strands a vCPU at {job_mib} MiB per child")
    # The old 2048 MiB did strand one on every c-family host: the check above can tell.
    assert children_per_instance(2, 2, 1, 2048) == 1
    assert children_per_instance(16, 2, 1, 2048) == 15


# -------------------------------------------------------------------- launch template, init


def test_instances_require_imdsv2_and_get_the_root_volume_parameter(template: dict[str, Any]) -> None:
    name, launch_template = one_resource(template, "AWS::EC2::LaunchTemplate")
    data = launch_template["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    # One hop: the containers (a hop further) cannot reach the instance's metadata and role.
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    (root,) = data["BlockDeviceMappings"]
    assert root["DeviceName"] == "/dev/xvda"  # the ECS AL2023 AMI's root device
    assert root["Ebs"]["VolumeSize"] == {"Ref": "RootVolumeGiB"}
    assert root["Ebs"]["Encrypted"] is True and root["Ebs"]["VolumeType"] == "gp3"
    for environment in resources_of_type(template, "AWS::Batch::ComputeEnvironment").values():
        reference = environment["Properties"]["ComputeResources"]["LaunchTemplate"]
        assert reference["LaunchTemplateId"] == {"Ref": name}
        # A new version of the template updates the environments (a fixed "$Default" would not).
        assert reference["Version"] == {"Fn::GetAtt": [name, "LatestVersionNumber"]}


def test_the_job_runs_under_an_init_process(template: dict[str, Any]) -> None:
    _, definition = one_resource(template, "AWS::Batch::JobDefinition")
    container = definition["Properties"]["ContainerProperties"]
    # PID 1 without a handler drops SIGTERM: the init forwards Batch's SIGTERM to the worker.
    assert container["LinuxParameters"]["InitProcessEnabled"] is True


# ------------------------------------------------------------------------------ alarms


def test_failed_jobs_of_this_queue_go_to_the_alarm_topic(template: dict[str, Any]) -> None:
    rule = template["Resources"]["JobFailedRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.batch"]
    assert pattern["detail-type"] == ["Batch Job State Change"]
    assert pattern["detail"]["status"] == ["FAILED"]
    assert pattern["detail"]["jobQueue"] == [{"Ref": "JobQueue"}]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "AlarmTopic"}
    assert rule["State"] == "ENABLED"


def test_the_submitters_failures_and_errors_go_to_the_alarm_topic(template: dict[str, Any]) -> None:
    function_name, _ = one_resource(template, "AWS::Lambda::Function")
    _, invoke = one_resource(template, "AWS::Lambda::EventInvokeConfig")
    assert invoke["Properties"]["FunctionName"] == {"Ref": function_name}
    assert invoke["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Ref": "AlarmTopic"}
    alarm_name, alarm = "SubmitterErrorsAlarm", template["Resources"]["SubmitterErrorsAlarm"]
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == (
        "AWS/Lambda", "Errors", "Sum")
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_name}}]
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    # Who may publish: the rule and the alarm by their ARNs; the Lambda through its role.
    _, topic_policy = one_resource(template, "AWS::SNS::TopicPolicy")
    sources = {
        s["Principal"]["Service"]: s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0]
        for s in topic_policy["Properties"]["PolicyDocument"]["Statement"]
    }
    assert sources == {"events.amazonaws.com": "JobFailedRule",
                       "cloudwatch.amazonaws.com": alarm_name}
    submitter = [s for where, s in policy_statements(template) if where.startswith("SubmitterRole/")]
    assert any(as_list(s["Action"]) == ["sns:Publish"] and s["Resource"] == {"Ref": "AlarmTopic"}
               for s in submitter)
    _, subscription = one_resource(template, "AWS::SNS::Subscription")
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


# ----------------------------------------------------------------------- no unused grants

# Why each granted action is needed: ("code", call) — the boto3 call some code path of ours makes
# (searched for in worker/ and submitter/) — or ("service", phrase) — the AWS service acting with
# the role, named in docs/infra.md. A grant with no entry here, or whose reason is gone, fails.
ACTION_USES: dict[str, tuple[str, str]] = {
    # job role: the worker's S3 store
    "s3:GetObject": ("code", "get_object"),
    "s3:PutObject": ("code", "upload_file"),
    "s3:AbortMultipartUpload": ("code", "upload_file"),  # s3transfer aborts a failed upload
    "s3:ListBucket": ("code", "head_object"),  # a missing key answers 404, not 403
    # execution role: ECS starting the container
    "ecr:GetAuthorizationToken": ("service", "ECS pulls the image"),
    "ecr:BatchCheckLayerAvailability": ("service", "ECS pulls the image"),
    "ecr:BatchGetImage": ("service", "ECS pulls the image"),
    "ecr:GetDownloadUrlForLayer": ("service", "ECS pulls the image"),
    "logs:CreateLogStream": ("service", "log streams"),
    "logs:PutLogEvents": ("service", "log streams"),
    # submitter role
    "batch:SubmitJob": ("code", "submit_job"),
    "batch:TagResource": ("code", "tags"),  # SubmitJob with tags is authorised as TagResource too
    "batch:DescribeJobs": ("code", "describe_jobs"),
    "batch:ListJobs": ("code", "list_jobs"),
    "secretsmanager:GetSecretValue": ("code", "get_secret_value"),
    "sns:Publish": ("service", "failure destination"),
    "ec2:CreateNetworkInterface": ("service", "network interfaces in the VPC"),
    "ec2:DescribeNetworkInterfaces": ("service", "network interfaces in the VPC"),
    "ec2:DeleteNetworkInterface": ("service", "network interfaces in the VPC"),
    "ec2:AssignPrivateIpAddresses": ("service", "network interfaces in the VPC"),
    "ec2:UnassignPrivateIpAddresses": ("service", "network interfaces in the VPC"),
    # the report schedule's role
    "lambda:InvokeFunction": ("service", "EventBridge Scheduler invoke the submitter"),
}
# Service-side grants where the service acting is also named: the execution role's secret read.
SERVICE_READS = {("ExecutionRole", "secretsmanager:GetSecretValue"): "injects DATABASE_URL"}
DOCS = ROOT / "docs" / "infra.md"


def code_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8")
                     for folder in ("worker", "submitter") for p in sorted((ROOT / folder).rglob("*.py")))


def code_calls(text: str, call: str) -> bool:
    """Whether the code makes the boto3 call: ``.call(``, or ``"call"`` given to a dispatcher
    (BatchApi._call), or a payload key ``"call":``."""
    return bool(re.search(rf"\.{call}\(|[\"']{call}[\"']", text))


def granted_actions(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(role, action) → where, for every Allow of the stack's roles (not the bucket/topic policies)."""
    granted = {}
    for where, statement in policy_statements(template):
        role = where.split("/")[0]
        if statement["Effect"] != "Allow" or template["Resources"][role]["Type"] != "AWS::IAM::Role":
            continue
        for action in as_list(statement["Action"]):
            granted[(role, action)] = where
    return granted


def test_every_granted_action_is_used_by_our_code_or_a_documented_service(
    template: dict[str, Any],
) -> None:
    code, docs = code_text(), " ".join(DOCS.read_text(encoding="utf-8").split())
    problems = []
    for (role, action), where in sorted(granted_actions(template).items()):
        if (role, action) in SERVICE_READS:
            if SERVICE_READS[(role, action)] not in docs:
                problems.append(f"{where}: {action}: docs/infra.md no longer says why")
            continue
        if action not in ACTION_USES:
            problems.append(f"{where}: {action} is granted, but nothing here says what uses it")
            continue
        kind, evidence = ACTION_USES[action]
        if kind == "code" and not code_calls(code, evidence):
            problems.append(f"{where}: {action} is granted, but no code calls {evidence}")
        if kind == "service" and evidence not in docs:
            problems.append(f"{where}: {action}: docs/infra.md does not name {evidence!r}")
    assert not problems, "\n".join(problems)


def test_the_unused_grant_check_can_fail(template: dict[str, Any], tmp_path: Path) -> None:
    # The issue's own case: a Secrets Manager read on the job role that no worker code makes.
    assert not code_calls("client.put_object(Bucket=b)", "delete_object")
    assert code_calls('self._call("list_jobs", **kwargs)', "list_jobs")
    granted = granted_actions(template)
    assert ("JobRole", "secretsmanager:GetSecretValue") not in granted
    assert ("JobRole", "s3:DeleteObject") not in granted  # the store never deletes
    assert ("ExecutionRole", "secretsmanager:GetSecretValue") in granted
