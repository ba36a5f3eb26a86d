# The server VM: PostgreSQL (on the VM, data on its own encrypted volume), the MLflow server
# (backend in PostgreSQL, artifacts proxied to s3://bucket/mlflow) and the Prefect server
# (PostgreSQL). Why PostgreSQL on the VM and not RDS: infra/README.md ("Where PostgreSQL lives").

resource "aws_eip" "server" {
  domain = "vpc"
  tags   = { Name = "${var.name}-server" }
}

# Outlives the VM: replacing the server (new commit, new AMI) keeps every run, model version and
# flow run. Snapshotted daily (aws_dlm_lifecycle_policy below).
resource "aws_ebs_volume" "pgdata" {
  availability_zone = aws_subnet.public[0].availability_zone
  size              = var.server_data_volume_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = aws_kms_key.data.arn

  tags = {
    Name     = "${var.name}-pgdata"
    Snapshot = "${var.name}-pgdata"
  }
}

resource "aws_instance" "server" {
  ami                    = data.aws_ami.debian.id
  instance_type          = var.server_instance_type
  subnet_id              = aws_subnet.public[0].id
  private_ip             = local.server_private_ip
  vpc_security_group_ids = [aws_security_group.server.id]
  iam_instance_profile   = aws_iam_instance_profile.server.name
  key_name               = var.ssh_key_name
  ebs_optimized          = true
  monitoring             = true

  # A new commit is a new VM (cloud-init runs the start-up script once per instance); the data
  # volume and the elastic IP move over.
  user_data_replace_on_change = true
  user_data = templatefile("${path.module}/../templates/server.sh.tftpl", {
    git_url              = var.git_url
    git_commit           = var.git_commit
    data_volume_id       = aws_ebs_volume.pgdata.id
    public_address       = aws_eip.server.public_ip
    mlflow_port          = local.mlflow_port
    prefect_port         = local.prefect_port
    mlflow_artifacts_url = local.mlflow_artifacts_url
    region               = var.region
  })

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 30
    encrypted   = true
    kms_key_id  = aws_kms_key.data.arn
  }

  lifecycle {
    # A newer AMI must not replace the server behind your back: `terraform apply -replace`.
    ignore_changes = [ami]
  }

  tags = { Name = "${var.name}-server" }
}

resource "aws_volume_attachment" "pgdata" {
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.pgdata.id
  instance_id = aws_instance.server.id
  # PostgreSQL shuts down cleanly (systemd stops it) before the volume moves to a new VM.
  stop_instance_before_detaching = true
}

resource "aws_eip_association" "server" {
  instance_id   = aws_instance.server.id
  allocation_id = aws_eip.server.id
}

# --- Daily snapshots of the PostgreSQL volume, 7 kept ----------------------------------------

data "aws_iam_policy_document" "dlm_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["dlm.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "dlm" {
  name               = "${var.name}-dlm"
  assume_role_policy = data.aws_iam_policy_document.dlm_assume.json
}

resource "aws_iam_role_policy_attachment" "dlm" {
  role       = aws_iam_role.dlm.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
}

resource "aws_dlm_lifecycle_policy" "pgdata" {
  description        = "${var.name}: daily snapshots of the PostgreSQL volume"
  execution_role_arn = aws_iam_role.dlm.arn
  state              = "ENABLED"

  policy_details {
    resource_types = ["VOLUME"]
    target_tags    = { Snapshot = "${var.name}-pgdata" }

    schedule {
      name      = "daily, 7 kept"
      copy_tags = true

      create_rule {
        interval      = 24
        interval_unit = "HOURS"
        times         = ["03:30"]
      }

      retain_rule {
        count = 7
      }
    }
  }
}
