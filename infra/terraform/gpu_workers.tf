# GPU workers: an Auto Scaling group of var.gpu_worker_count VMs, each running
# `prefect worker start --pool gpu` under systemd at var.git_commit. The group keeps the count
# (replaces a reclaimed Spot VM), and a new commit or AMI rolls the VMs (instance_refresh).

resource "aws_launch_template" "gpu_worker" {
  name                   = "${var.name}-gpu-worker"
  description            = "Prefect GPU worker at the pinned commit"
  image_id               = data.aws_ami.gpu.id
  instance_type          = var.gpu_instance_type
  key_name               = var.ssh_key_name
  vpc_security_group_ids = [aws_security_group.gpu_worker.id]
  ebs_optimized          = true
  update_default_version = true

  user_data = base64encode(templatefile("${path.module}/../templates/gpu-worker.sh.tftpl", {
    git_url      = var.git_url
    git_commit   = var.git_commit
    server_host  = local.server_private_ip
    mlflow_port  = local.mlflow_port
    prefect_port = local.prefect_port
    region       = var.region
  }))

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
      encrypted             = true # the account's EBS key: Auto Scaling may use it without a key-policy grant
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-gpu-worker" }
  }

  tag_specifications {
    resource_type = "volume"
    tags          = { Name = "${var.name}-gpu-worker" }
  }
}

resource "aws_autoscaling_group" "gpu_workers" {
  name                      = "${var.name}-gpu-workers"
  min_size                  = var.gpu_worker_count
  max_size                  = var.gpu_worker_count
  desired_capacity          = var.gpu_worker_count
  vpc_zone_identifier       = aws_subnet.public[*].id
  health_check_type         = "EC2"
  health_check_grace_period = 900 # installing the project at the commit takes minutes
  capacity_rebalance        = var.gpu_use_spot

  mixed_instances_policy {
    instances_distribution {
      on_demand_base_capacity                  = 0
      on_demand_percentage_above_base_capacity = var.gpu_use_spot ? 0 : 100
      spot_allocation_strategy                 = "price-capacity-optimized"
    }

    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.gpu_worker.id
        version            = aws_launch_template.gpu_worker.latest_version
      }

      override {
        instance_type = var.gpu_instance_type
      }
    }
  }

  # A new launch template version (commit, AMI, instance type) starts a refresh: the new VM comes
  # up before the old one goes (systemd stops its worker with SIGINT, see the unit).
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 200
    }
  }

  tag {
    key                 = "Name"
    value               = "${var.name}-gpu-worker"
    propagate_at_launch = true
  }
}
