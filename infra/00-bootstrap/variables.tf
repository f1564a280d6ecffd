variable "prefix" {
  description = "Prefix of every name iac-ci creates; the same in every stack."
  type        = string
  default     = "iac-ci"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,39}$", var.prefix))
    error_message = "prefix: 1 to 40 lower-case letters, digits or '-', starting with a letter or digit (bucket names derive from it)."
  }
}

variable "region" {
  description = "AWS region of the state bucket and lock table."
  type        = string
}

variable "state_bucket_name" {
  description = "Name of the state bucket; default <prefix>-tfstate-<account id>."
  type        = string
  default     = ""
}
