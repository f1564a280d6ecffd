# The internal bucket holds requests, sealed bundles, results and logs (blobs/layout.go); the
# done bucket one object per finished run, readable without access to order data. Neither is
# versioned: a bundle's sealed secrets must be gone when it is deleted.
resource "aws_s3_bucket" "internal" {
  bucket = local.internal_bucket
}

resource "aws_s3_bucket" "done" {
  bucket = local.done_bucket
}

locals {
  bucket_ids = {
    internal = aws_s3_bucket.internal.id
    done     = aws_s3_bucket.done.id
  }
  bucket_arns = {
    internal = aws_s3_bucket.internal.arn
    done     = aws_s3_bucket.done.arn
  }
}

resource "aws_s3_bucket_ownership_controls" "bucket" {
  for_each = local.bucket_ids
  bucket   = each.value
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "bucket" {
  for_each                = local.bucket_ids
  bucket                  = each.value
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "bucket" {
  for_each = local.bucket_ids
  bucket   = each.value
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  for_each = local.bucket_arns
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value, "${each.value}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "bucket" {
  for_each   = local.bucket_ids
  bucket     = each.value
  policy     = data.aws_iam_policy_document.bucket[each.key].json
  depends_on = [aws_s3_bucket_public_access_block.bucket]
}

resource "aws_s3_bucket_lifecycle_configuration" "internal" {
  bucket = aws_s3_bucket.internal.id
  rule {
    id     = "expire"
    status = var.object_retention_days > 0 ? "Enabled" : "Disabled"
    filter {}
    expiration {
      days = var.object_retention_days > 0 ? var.object_retention_days : 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "done" {
  bucket = aws_s3_bucket.done.id
  rule {
    id     = "expire"
    status = var.done_retention_days > 0 ? "Enabled" : "Disabled"
    filter {}
    expiration {
      days = var.done_retention_days > 0 ? var.done_retention_days : 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# A result landing under callbacks/ notifies the results queue, where the orchestrator reads it:
# the same filter as s3blobs.CreateBucket and blobs.IsResultKey.
resource "aws_s3_bucket_notification" "results" {
  bucket = aws_s3_bucket.internal.id
  queue {
    id            = "iac-ci-results"
    queue_arn     = aws_sqs_queue.main["results"].arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = "callbacks/"
    filter_suffix = "/result.json"
  }
  depends_on = [aws_sqs_queue_policy.results]
}
