# Launch templates for the Ray cluster of infra/ray/cluster.yaml (`ray up` launches the VMs, not
# Terraform). Everything that makes a VM safe lives here, where the tests and checkov check it:
# IMDSv2, encrypted volumes, the security group, the instance profile. The cluster YAML only names
# the templates, the instance types and the node counts.
#
# No user_data on purpose: Ray copies a template's data into its RunInstances call, and boto3
# would base64-encode the already encoded user data a second time. Ray's setup_commands install
# the project instead (infra/ray/cluster.yaml).

data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

resource "aws_launch_template" "ray_head" {
  name                   = "${var.name}-ray-head"
  description            = "Ray head (no GPU): autoscaler, Ray Client server"
  image_id               = data.aws_ami.ubuntu.id
  key_name               = var.ssh_key_name
  vpc_security_group_ids = [aws_security_group.ray.id]
  ebs_optimized          = true
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.ray_head.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = data.aws_ami.ubuntu.root_device_name

    ebs {
      volume_size           = 100
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-ray-head" }
  }
}

resource "aws_launch_template" "ray_worker" {
  name                   = "${var.name}-ray-worker"
  description            = "Ray GPU worker"
  image_id               = data.aws_ami.gpu.id
  key_name               = var.ssh_key_name
  vpc_security_group_ids = [aws_security_group.ray.id]
  ebs_optimized          = true
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.worker.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = data.aws_ami.gpu.root_device_name

    ebs {
      volume_size           = var.gpu_root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-ray-worker" }
  }
}
