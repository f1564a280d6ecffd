output "repository_url" {
  description = "Push the image here (docs/deploy.md); 02-deploy takes it as ecr_repository_url."
  value       = aws_ecr_repository.iac_ci.repository_url
}

output "repository_arn" {
  value = aws_ecr_repository.iac_ci.arn
}
