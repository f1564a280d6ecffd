# Stack 01-ecr: the repository of iac-ci's image (the Dockerfile at the repository's root). It
# is its own stack because the image must be pushed before 02-deploy can create the functions.
terraform {
  required_version = ">= 1.10.0" # the S3 backend's use_lockfile
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      "iac-ci:stack" = "${var.prefix}-01-ecr"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

# Tags are immutable: Lambda resolves a tag to a digest when a function is created or updated,
# so a tag that moved would leave functions on an image nobody can name. Each build gets its
# own tag (scripts use the commit), and 02-deploy takes it as image_tag.
resource "aws_ecr_repository" "iac_ci" {
  name                 = var.prefix
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "AES256"
  }
}

resource "aws_ecr_lifecycle_policy" "iac_ci" {
  repository = aws_ecr_repository.iac_ci.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "keep the newest ${var.keep_images} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.keep_images
      }
      action = { type = "expire" }
    }]
  })
}

# Lambda pulls a function's image with its own service principal, limited here to this
# deployment's functions. CodeBuild pulls with the project's service role (02-deploy).
data "aws_iam_policy_document" "pull" {
  statement {
    sid     = "LambdaPull"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:sourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:lambda:${var.region}:${data.aws_caller_identity.current.account_id}:function:${var.prefix}-*"]
    }
  }
}

resource "aws_ecr_repository_policy" "pull" {
  repository = aws_ecr_repository.iac_ci.name
  policy     = data.aws_iam_policy_document.pull.json
}
