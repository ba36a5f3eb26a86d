"""infra/ray/cluster.yaml: Ray's own validation (what `ray up` checks before it calls AWS), and
agreement with the Terraform that made its launch templates, network and servers."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.infra.readers import RAY_CLUSTER, REPO_ROOT, one, outputs, resources, variables
from tests.infra.test_startup_scripts import shellcheck_binary


def cluster() -> dict[str, Any]:
    return yaml.safe_load(RAY_CLUSTER.read_text())


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """`ray up`'s offline steps: fill in Ray's defaults, then the JSON-schema and sanity checks."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_rays_own_validation() -> None:
    prepared = ray_validate(cluster())
    assert prepared["head_node_type"] == "head"
    assert prepared["available_node_types"]["head"]["max_workers"] == 0


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c["available_node_types"]["gpu_worker"].update(max_wrkers=2),  # typo
        lambda c: c["available_node_types"]["gpu_worker"].pop("resources"),
        lambda c: c.update(head_node_type="nowhere"),
        lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=9),  # > max_workers
    ],
    ids=["typo", "no-resources", "unknown-head", "min-over-max"],
)
def test_rays_validation_rejects_a_broken_cluster(break_it: Any) -> None:
    config = cluster()
    break_it(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):  # as `ray up` raises
        ray_validate(config)


def test_head_has_no_gpu_and_workers_scale_from_zero() -> None:
    nodes = cluster()["available_node_types"]
    assert nodes["head"]["resources"] == {"CPU": 0}
    worker = nodes["gpu_worker"]
    assert worker["min_workers"] == 0 and worker["max_workers"] >= 1
    assert worker["resources"]["GPU"] >= 1
    assert worker["node_config"]["InstanceMarketOptions"] == {"MarketType": "spot"}


def test_cluster_uses_terraforms_names_region_and_launch_templates() -> None:
    config = cluster()
    name = variables()["name"]["default"]
    assert config["cluster_name"] == name  # the head's IAM policy keys on this tag value
    assert config["provider"]["region"] == variables()["region"]["default"]
    templates = resources("aws_launch_template")
    for node_type, template in (("head", "ray_head"), ("gpu_worker", "ray_worker")):
        node_config = config["available_node_types"][node_type]["node_config"]
        expected = templates[template]["name"].replace("${var.name}", name)
        assert node_config["LaunchTemplate"]["LaunchTemplateName"] == expected
        # IMDSv2, disks, groups, profile: from the template, never overridden here
        assert set(node_config) <= {"InstanceType", "LaunchTemplate", "InstanceMarketOptions"}
    assert (
        config["available_node_types"]["gpu_worker"]["node_config"]["InstanceType"]
        == (variables()["gpu_instance_type"]["default"])
    )


def test_ray_head_may_launch_what_the_cluster_asks_for() -> None:
    from tests.infra.readers import data_sources

    policy = data_sources("aws_iam_policy_document")["ray_head"]
    launch = [s for s in policy["statement"] if s["actions"] == ["ec2:RunInstances"]]
    # a list of ARNs, or one concat(...) expression
    resources_ = " ".join(
        s["resources"] if isinstance(s["resources"], str) else " ".join(s["resources"])
        for s in launch
    )
    assert "aws_launch_template.ray_worker.arn" in resources_
    spot = any("InstanceMarketOptions" in node["node_config"]
               for node in cluster()["available_node_types"].values())  # fmt: skip
    assert not spot or "spot-instances-request/*" in resources_
    (tagged,) = [s for s in launch if "condition" in s]
    assert one(tagged["condition"])["variable"] == "aws:RequestTag/ray-cluster-name"


def test_cluster_env_comes_from_terraform_and_stays_out_of_git() -> None:
    ((remote, local),) = cluster()["file_mounts"].items()
    assert local == "infra/ray/cluster.env" and remote.endswith("synthmed-cluster.env")
    ignored = subprocess.run(["git", "check-ignore", "-q", local], cwd=REPO_ROOT, check=False)
    assert ignored.returncode == 0, "infra/ray/cluster.env is generated: it must be git-ignored"
    produced = set(re.findall(r"\b([A-Z_]+)\s*=", outputs()["ray_cluster_env"]["value"]))
    commands = "\n".join(cluster()["setup_commands"])
    for key in ("SYNTHMED_GIT_URL", "SYNTHMED_GIT_COMMIT"):
        assert key in produced and f'"${key}"' in commands
    assert 'checkout --quiet --detach "$SYNTHMED_GIT_COMMIT"' in commands


def all_commands() -> list[tuple[str, str]]:
    config = cluster()
    keys = ("initialization_commands", "setup_commands", "head_start_ray_commands",
            "worker_start_ray_commands")  # fmt: skip
    return [(f"{key}[{i}]", command) for key in keys for i, command in enumerate(config[key])]


@pytest.mark.parametrize("where,command", all_commands(), ids=[w for w, _ in all_commands()])
def test_cluster_commands_pass_shellcheck(where: str, command: str, tmp_path: Path) -> None:
    # Ray runs each command with bash on the node; RAY_HEAD_IP is set by Ray for workers.
    script = tmp_path / "command.sh"
    script.write_text(f"#!/bin/bash\nRAY_HEAD_IP=${{RAY_HEAD_IP:?}}\n{command}\n")
    proc = subprocess.run(
        [shellcheck_binary(), "--shell=bash", "--exclude=SC1090,SC1091", str(script)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, where + "\n" + proc.stdout
