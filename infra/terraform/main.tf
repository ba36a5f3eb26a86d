# Shared facts: account, AMIs, and the names other files (and infra/ray/cluster.yaml) rely on.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# Two named zones, not "the first two the API lists": a zone AWS adds later must not shift the
# subnets (and replace every VM).
data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "zone-name"
    values = ["${var.region}a", "${var.region}b"]
  }
}

# Debian 12 ships Python 3.11, the version the project requires: the server installs from the lock
# with the system Python.
data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"] # Debian's official AWS account

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

# NVIDIA driver and CUDA preinstalled; Ubuntu 22.04 has python3.11 in its archive.
data "aws_ami" "gpu" {
  most_recent = true
  owners      = ["amazon"]

  filter {
    name   = "name"
    values = ["Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # The server gets a fixed private address, so the workers' launch template (and the Ray
  # nodes) do not change when the server VM is replaced.
  server_private_ip = cidrhost(aws_subnet.public[0].cidr_block, 10)

  mlflow_port  = 5000
  prefect_port = 4200

  # Where things live in the bucket: DVC's remote and MLflow's proxied artifacts.
  dvc_remote_url       = "s3://${aws_s3_bucket.data.bucket}/dvc"
  mlflow_artifacts_url = "s3://${aws_s3_bucket.data.bucket}/mlflow"

  # Ray tags every node it launches with ray-cluster-name = cluster_name (infra/ray/cluster.yaml):
  # the Ray head's IAM policy only lets it stop or terminate instances carrying that tag.
  ray_cluster_name = var.name
}
