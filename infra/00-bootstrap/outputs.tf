# scripts/generate_backend.sh reads these to write the other stacks' backend.tf.
output "state_bucket" {
  value = aws_s3_bucket.state.bucket
}

output "region" {
  value = var.region
}
