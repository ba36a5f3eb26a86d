# What laptops, the Ray cluster and params.yaml need after `terraform apply`.

output "server_public_ip" {
  description = "Elastic IP of the server VM (MLflow, Prefect)."
  value       = aws_eip.server.public_ip
}

output "mlflow_tracking_uri" {
  description = "MLFLOW_TRACKING_URI for laptops (from var.allowed_cidrs)."
  value       = "http://${aws_eip.server.public_ip}:${local.mlflow_port}"
}

output "prefect_api_url" {
  description = "PREFECT_API_URL for laptops (from var.allowed_cidrs): `prefect deploy` and the UI."
  value       = "http://${aws_eip.server.public_ip}:${local.prefect_port}/api"
}

output "dvc_remote_url" {
  description = "Put this in params.yaml as versioning.remote_url (and commit it)."
  value       = local.dvc_remote_url
}

output "bucket" {
  description = "The private, encrypted bucket."
  value       = aws_s3_bucket.data.bucket
}

output "gpu_workers_group" {
  description = "Auto Scaling group of the Prefect GPU workers."
  value       = aws_autoscaling_group.gpu_workers.name
}

output "ray_cluster_env" {
  description = "Save as infra/ray/cluster.env before `ray up infra/ray/cluster.yaml` (README)."
  value = join("", [for key, value in {
    SYNTHMED_GIT_URL    = var.git_url
    SYNTHMED_GIT_COMMIT = var.git_commit
    MLFLOW_TRACKING_URI = "http://${local.server_private_ip}:${local.mlflow_port}"
    PREFECT_API_URL     = "http://${local.server_private_ip}:${local.prefect_port}/api"
    AWS_DEFAULT_REGION  = var.region
  } : "${key}='${value}'\n"])
}
