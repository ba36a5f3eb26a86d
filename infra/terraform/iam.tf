# Credentials: IAM roles through instance profiles only. No access key exists anywhere: boto3,
# DVC and MLflow on the VMs get short-lived credentials from the instance metadata service
# (IMDSv2, see metadata_options on every instance and launch template).
#
#   server   read/write mlflow/ (MLflow proxies artifacts: clients need no S3 access for them)
#   worker   GPU workers and Ray workers: read the bucket, write dvc/ (the DVC remote)
#   ray_head the worker's rights, plus launching and stopping the Ray cluster's own nodes

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

locals {
  bucket_arn = aws_s3_bucket.data.arn
  ec2_arn    = "arn:${local.partition}:ec2:${var.region}:${local.account_id}"
}

# --- Server: MLflow's artifact store ---------------------------------------------------------

data "aws_iam_policy_document" "server" {
  statement {
    sid       = "ListMlflowPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["mlflow/*", "mlflow"]
    }
  }

  statement {
    sid       = "ReadWriteMlflowArtifacts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket_arn}/mlflow/*"]
  }

  statement {
    sid       = "UseTheBucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "server" {
  name               = "${var.name}-server"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "server" {
  name   = "mlflow-artifacts"
  role   = aws_iam_role.server.id
  policy = data.aws_iam_policy_document.server.json
}

resource "aws_iam_instance_profile" "server" {
  name = "${var.name}-server"
  role = aws_iam_role.server.name
}

# --- Workers (Prefect GPU workers, Ray workers): the DVC remote --------------------------------

data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "ListBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.bucket_arn]
  }

  statement {
    sid       = "ReadObjects"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/*"]
  }

  statement {
    sid       = "WriteDvcRemote"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket_arn}/dvc/*"]
  }

  statement {
    sid       = "UseTheBucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "worker" {
  name               = "${var.name}-worker"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "worker" {
  name   = "dvc-remote"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

resource "aws_iam_instance_profile" "worker" {
  name = "${var.name}-worker"
  role = aws_iam_role.worker.name
}

# --- Ray head: the worker's rights plus the autoscaler's, limited to its own cluster ----------

data "aws_iam_policy_document" "ray_head" {
  #checkov:skip=CKV_AWS_356:only ec2:Describe* has Resource "*": EC2's Describe actions support no resource-level permissions; every other statement names its resources or conditions
  source_policy_documents = [data.aws_iam_policy_document.worker.json]

  statement {
    sid       = "Describe"
    actions   = ["ec2:Describe*"] # the autoscaler reads instances, types, subnets, templates
    resources = ["*"]             # Describe calls cannot be limited to resources
  }

  # Every instance the head launches must carry the cluster's tag, which the statements below
  # require before it may stop or terminate anything.
  statement {
    sid       = "LaunchTaggedInstances"
    actions   = ["ec2:RunInstances"]
    resources = ["${local.ec2_arn}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/ray-cluster-name"
      values   = [local.ray_cluster_name]
    }
  }

  statement {
    sid     = "LaunchFromTheWorkerTemplate"
    actions = ["ec2:RunInstances"]
    resources = concat(
      [
        aws_launch_template.ray_worker.arn,
        aws_security_group.ray.arn,
        "${local.ec2_arn}:volume/*",
        "${local.ec2_arn}:network-interface/*",
        "${local.ec2_arn}:key-pair/*",
        "${local.ec2_arn}:spot-instances-request/*", # the cluster's GPU workers are Spot
        "arn:${local.partition}:ec2:${var.region}::image/*",
      ],
      aws_subnet.public[*].arn,
    )
  }

  statement {
    sid       = "TagAtLaunch"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2_arn}:instance/*", "${local.ec2_arn}:volume/*"]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }

  statement {
    sid       = "ManageOwnNodes"
    actions   = ["ec2:CreateTags", "ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"]
    resources = ["${local.ec2_arn}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/ray-cluster-name"
      values   = [local.ray_cluster_name]
    }
  }

  statement {
    sid       = "PassTheWorkerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.worker.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ray_head" {
  name               = "${var.name}-ray-head"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "ray_head" {
  name   = "ray-autoscaler"
  role   = aws_iam_role.ray_head.id
  policy = data.aws_iam_policy_document.ray_head.json
}

resource "aws_iam_instance_profile" "ray_head" {
  name = "${var.name}-ray-head"
  role = aws_iam_role.ray_head.name
}
