"""The Terraform of infra/terraform, checked offline: python-hcl2 parses it, the asserts read it.

`terraform validate` needs the AWS provider, which `terraform init` downloads: it is not run here
(infra/README.md). `terraform fmt` needs no provider and runs when terraform is installed.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.infra.readers import (
    TERRAFORM_DIR,
    all_resources,
    data_sources,
    locals_,
    one,
    outputs,
    resources,
    variables,
    walk,
)

EXPECTED_FILES = {
    "versions.tf", "variables.tf", "main.tf", "network.tf", "s3.tf", "iam.tf", "server.tf",
    "gpu_workers.tf", "ray.tf", "outputs.tf",
}  # fmt: skip


def test_every_expected_file_is_there_and_parses() -> None:
    assert {p.name for p in TERRAFORM_DIR.glob("*.tf")} == EXPECTED_FILES
    kinds = {rtype for rtype, _, _ in all_resources()}
    assert {"aws_s3_bucket", "aws_instance", "aws_launch_template", "aws_autoscaling_group",
            "aws_iam_instance_profile", "aws_security_group"} <= kinds  # fmt: skip


def type_of(variable: dict) -> str:
    """The type constraint as written (python-hcl2 wraps compound ones in ${...})."""
    return str(variable.get("type", "")).removeprefix("${").removesuffix("}")


def test_every_variable_is_typed_and_described() -> None:
    assert len(variables()) >= 10
    for name, body in variables().items():
        assert type_of(body).split("(")[0] in {
            "string",
            "number",
            "bool",
            "list",
            "set",
            "map",
            "object",
        }, f"variable {name} has no type"
        assert body.get("description"), f"variable {name} has no description"


def test_gpu_fleet_variables_exist_with_sensible_types() -> None:
    v = variables()
    assert type_of(v["gpu_instance_type"]) == "string"
    assert type_of(v["gpu_worker_count"]) == "number"
    assert "validation" in v["gpu_worker_count"]
    assert type_of(v["gpu_use_spot"]) == "bool"
    assert v["gpu_use_spot"]["default"] is False  # spot is opt-in


def test_the_pinned_commit_is_a_full_hash_and_has_no_default() -> None:
    v = variables()
    for name in ("git_url", "git_commit", "bucket_name", "allowed_cidrs"):
        assert "default" not in v[name], f"{name} must be chosen, not defaulted"
    condition = one(v["git_commit"]["validation"])["condition"]
    assert "[0-9a-f]{40}" in condition


def test_allowed_cidrs_refuse_the_whole_internet() -> None:
    conditions = [rule["condition"] for rule in variables()["allowed_cidrs"]["validation"]]
    assert any('"/0"' in c and "!endswith" in c for c in conditions), conditions
    assert type_of(variables()["allowed_cidrs"]) == "list(string)"


def test_bucket_is_private_encrypted_versioned_and_tls_only() -> None:
    (bucket_name,) = resources("aws_s3_bucket")
    ref = f"${{aws_s3_bucket.{bucket_name}.id}}"

    block = resources("aws_s3_bucket_public_access_block")[bucket_name]
    assert block["bucket"] == ref
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                 "restrict_public_buckets"):  # fmt: skip
        assert block[flag] is True, flag

    sse = resources("aws_s3_bucket_server_side_encryption_configuration")[bucket_name]
    assert sse["bucket"] == ref
    rule = one(sse["rule"])
    default = one(rule["apply_server_side_encryption_by_default"])
    assert default["sse_algorithm"] == "aws:kms"
    assert default["kms_master_key_id"].startswith("${aws_kms_key.")
    assert rule["bucket_key_enabled"] is True
    for key in resources("aws_kms_key").values():
        assert key["enable_key_rotation"] is True

    versioning = resources("aws_s3_bucket_versioning")[bucket_name]
    assert one(versioning["versioning_configuration"])["status"] == "Enabled"
    ownership = resources("aws_s3_bucket_ownership_controls")[bucket_name]
    assert one(ownership["rule"])["object_ownership"] == "BucketOwnerEnforced"
    policy = resources("aws_s3_bucket_policy")[bucket_name]["policy"]
    assert "aws:SecureTransport" in policy and "Deny" in policy


def test_imdsv2_on_every_instance_and_launch_template() -> None:
    machines = {
        **{f"aws_instance.{n}": b for n, b in resources("aws_instance").items()},
        **{f"aws_launch_template.{n}": b for n, b in resources("aws_launch_template").items()},
    }
    assert len(machines) >= 4
    for name, body in machines.items():
        assert "metadata_options" in body, f"{name}: no metadata_options"
        options = one(body["metadata_options"])
        assert options["http_tokens"] == "required", name
        assert options["http_endpoint"] == "enabled", name
        assert options["http_put_response_hop_limit"] == 1, name


def test_every_disk_is_encrypted() -> None:
    for name, body in resources("aws_instance").items():
        assert one(body["root_block_device"])["encrypted"] is True, name
    for name, body in resources("aws_launch_template").items():
        for mapping in body["block_device_mappings"]:
            assert one(mapping["ebs"])["encrypted"] is True, name
    for name, body in resources("aws_ebs_volume").items():
        assert body["encrypted"] is True, name


def test_the_open_internet_appears_only_where_documented() -> None:
    # 0.0.0.0/0 is the default route and the HTTP(S) egress; it is never a source of traffic.
    found = {
        f"{rtype}.{name}:{'.'.join(path)}"
        for rtype, name, body in all_resources()
        for path, leaf in walk(body)
        if isinstance(leaf, str) and ("0.0.0.0/0" in leaf or "::/0" in leaf)
    }
    assert found == {
        "aws_route_table.public:route.0.cidr_block",
        "aws_vpc_security_group_egress_rule.web:cidr_ipv4",
    }


def test_ingress_comes_only_from_allowed_cidrs_or_project_groups() -> None:
    assert not resources("aws_security_group_rule"), "use aws_vpc_security_group_*_rule"
    for name, body in resources("aws_security_group").items():
        assert "ingress" not in body and "egress" not in body, f"{name}: inline rules"
    local = locals_()
    for name, rule in resources("aws_vpc_security_group_ingress_rule").items():
        assert "cidr_ipv6" not in rule and "prefix_list_id" not in rule, name
        if "cidr_ipv4" in rule:
            # for_each over a local built from var.allowed_cidrs, and nothing else
            assert rule["cidr_ipv4"] == "${each.value.cidr}", name
            source = rule["for_each"].removeprefix("${local.").removesuffix("}")
            assert "var.allowed_cidrs" in str(local[source]), name
        else:
            assert rule["referenced_security_group_id"].startswith(
                ("${aws_security_group.", "${local.machine_groups[")
            ), name


def test_server_ports_and_ssh_are_the_only_ports_people_reach() -> None:
    local = locals_()
    assert (local["mlflow_port"], local["prefect_port"]) == (5000, 4200)
    people = {n: r for n, r in resources("aws_vpc_security_group_ingress_rule").items()
              if "cidr_ipv4" in r}  # fmt: skip
    assert set(people) == {"server_from_allowed_cidrs", "ssh_from_allowed_cidrs"}
    assert people["ssh_from_allowed_cidrs"]["from_port"] == 22
    # SSH only exists when a key pair is configured.
    assert "var.ssh_key_name == null ? {}" in local["ssh_ingress"]


def test_credentials_come_from_instance_profiles_only() -> None:
    kinds = {rtype for rtype, _, _ in all_resources()}
    assert not kinds & {"aws_iam_access_key", "aws_iam_user", "aws_iam_user_policy"}
    for name, body in resources("aws_instance").items():
        assert body["iam_instance_profile"].startswith("${aws_iam_instance_profile."), name
    for name, body in resources("aws_launch_template").items():
        assert one(body["iam_instance_profile"])["arn"].startswith("${aws_iam_instance_profile."), (
            name
        )


def test_workers_may_only_use_the_bucket() -> None:
    policy = data_sources("aws_iam_policy_document")["worker"]
    for statement in policy["statement"]:
        for action in statement["actions"]:
            assert action.startswith(("s3:", "kms:")), action
        for resource in statement["resources"]:
            assert "bucket_arn" in resource or "aws_kms_key." in resource, resource
        if any(a.startswith("kms:") for a in statement["actions"]):
            assert one(statement["condition"])["variable"] == "kms:ViaService"


def test_gpu_workers_count_type_and_optional_spot() -> None:
    group = resources("aws_autoscaling_group")["gpu_workers"]
    for key in ("min_size", "max_size", "desired_capacity"):
        assert group[key] == "${var.gpu_worker_count}", key
    policy = one(group["mixed_instances_policy"])
    distribution = one(policy["instances_distribution"])
    assert "var.gpu_use_spot" in distribution["on_demand_percentage_above_base_capacity"]
    override = one(one(policy["launch_template"])["override"])
    assert override["instance_type"] == "${var.gpu_instance_type}"
    template = resources("aws_launch_template")["gpu_worker"]
    assert "gpu-worker.sh.tftpl" in template["user_data"]
    assert "instance_refresh" in group  # a new commit rolls the workers


def test_ray_launch_templates_carry_no_user_data() -> None:
    # Ray copies a launch template's data into RunInstances and boto3 would base64-encode the
    # already encoded user data again: the setup lives in infra/ray/cluster.yaml instead.
    for name in ("ray_head", "ray_worker"):
        assert "user_data" not in resources("aws_launch_template")[name], name


def test_outputs_give_laptops_and_ray_what_they_need() -> None:
    out = outputs()
    assert {"mlflow_tracking_uri", "prefect_api_url", "dvc_remote_url", "ray_cluster_env"} <= set(
        out
    )
    assert all(body.get("description") for body in out.values())


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_is_clean() -> None:
    proc = subprocess.run(["terraform", "fmt", "-check", "-diff", "-recursive", str(TERRAFORM_DIR)],
                          check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
