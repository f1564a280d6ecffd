variable "prefix" {
  description = "Prefix of every name iac-ci creates; the same in every stack. The repository is named after it."
  type        = string
  default     = "iac-ci"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,39}$", var.prefix))
    error_message = "prefix: 1 to 40 lower-case letters, digits or '-', starting with a letter or digit."
  }
}

variable "region" {
  description = "AWS region of the repository: the region 02-deploy deploys to."
  type        = string
}

variable "keep_images" {
  description = "How many images the repository keeps; older ones expire. Keep more than the tags any function still runs."
  type        = number
  default     = 30
}
