locals {
  env  = terraform.workspace
  name = "${var.name}-${local.env}"
  tags = merge(var.tags, {
    Project     = "flashmm"
    Environment = local.env
    ManagedBy   = "terraform"
  })
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
