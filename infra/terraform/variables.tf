# Inputs. Every variable is typed; those a typo could turn into a security hole or a surprise
# bill are validated. Put your values in terraform.tfvars (git-ignored, see README).

variable "region" {
  type        = string
  description = "AWS region for everything. infra/ray/cluster.yaml names the same region (a test checks the default)."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "name" {
  type        = string
  description = "Prefix of every resource name, and the Ray cluster name (infra/ray/cluster.yaml)."
  default     = "synthmed"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "bucket_name" {
  type        = string
  description = "Name of the S3 bucket holding the DVC remote (dvc/) and the MLflow artifacts (mlflow/). Globally unique."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 characters of a-z, 0-9, '.', '-')."
  }
}

variable "allowed_cidrs" {
  type        = list(string)
  description = "IPv4 CIDRs (office, VPN) allowed to reach MLflow (5000), Prefect (4200) and SSH (22). Never 0.0.0.0/0."

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must be a non-empty list of IPv4 CIDRs such as 203.0.113.0/24."
  }

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : !endswith(c, "/0")])
    error_message = "allowed_cidrs must not contain a /0: the servers have no authentication of their own."
  }
}

variable "ssh_key_name" {
  type        = string
  description = "Name of an existing EC2 key pair for SSH (required by `ray up`). null: no key and no SSH ingress at all."
  default     = null
  nullable    = true
}

variable "git_url" {
  type        = string
  description = "Repository the VMs clone, without credentials (a public repository or an internal mirror)."

  validation {
    condition     = can(regex("^(https://|ssh://|git@)", var.git_url))
    error_message = "git_url must be an https://, ssh:// or git@ URL."
  }
}

variable "git_commit" {
  type        = string
  description = "Full 40-character commit every VM checks out (not a branch: a branch moves, a commit does not)."

  validation {
    condition     = can(regex("^[0-9a-f]{40}$", var.git_commit))
    error_message = "git_commit must be a full 40-character lower-case commit hash."
  }
}

variable "server_instance_type" {
  type        = string
  description = "Instance type of the server VM (PostgreSQL, MLflow server, Prefect server)."
  default     = "t3.medium"
}

variable "server_data_volume_gb" {
  type        = number
  description = "Size of the encrypted EBS volume that holds PostgreSQL's data and outlives the server VM."
  default     = 20

  validation {
    condition     = var.server_data_volume_gb >= 10 && floor(var.server_data_volume_gb) == var.server_data_volume_gb
    error_message = "server_data_volume_gb must be a whole number of at least 10."
  }
}

variable "gpu_instance_type" {
  type        = string
  description = "Instance type of the GPU workers (Prefect `gpu` pool and Ray workers' launch template)."
  default     = "g5.xlarge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.gpu_instance_type))
    error_message = "gpu_instance_type must look like g5.xlarge."
  }
}

variable "gpu_worker_count" {
  type        = number
  description = "Number of GPU VMs running `prefect worker start --pool gpu` (0 stops them all, and their cost)."
  default     = 1

  validation {
    condition     = var.gpu_worker_count >= 0 && var.gpu_worker_count <= 16 && floor(var.gpu_worker_count) == var.gpu_worker_count
    error_message = "gpu_worker_count must be a whole number from 0 to 16."
  }
}

variable "gpu_use_spot" {
  type        = bool
  description = "Run the GPU workers on Spot capacity (about a third of the price; AWS may reclaim them with 2 minutes' notice)."
  default     = false
}

variable "gpu_root_volume_gb" {
  type        = number
  description = "Root volume of GPU VMs: the Deep Learning AMI, the venv with CUDA torch, data and checkpoints."
  default     = 150

  validation {
    condition     = var.gpu_root_volume_gb >= 100 && floor(var.gpu_root_volume_gb) == var.gpu_root_volume_gb
    error_message = "gpu_root_volume_gb must be a whole number of at least 100 (the AMI alone takes most of 75)."
  }
}
