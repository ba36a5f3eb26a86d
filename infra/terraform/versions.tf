# Terraform and the AWS provider. `terraform init` downloads the provider, so `init`, `validate`
# and `plan` need the network: CI does not run them. tests/infra checks these files offline
# (python-hcl2 structure asserts, checkov); see infra/README.md.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

# Credentials come from the caller's environment (aws sso login, a profile, a CI role), never
# from these files.
provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = var.name
      ManagedBy = "terraform"
    }
  }
}
