terraform {
  required_version = ">= 1.10.0" # the S3 backend's use_lockfile
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
  # The backend is in backend.tf, written by scripts/generate_backend.sh from 00-bootstrap's
  # outputs.
}

provider "aws" {
  region = var.region
  default_tags {
    tags = merge(var.tags, {
      "iac-ci:stack" = "${var.prefix}-02-deploy"
    })
  }
}
