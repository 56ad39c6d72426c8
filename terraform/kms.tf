# One customer-managed key per purpose, rotated yearly. The key policy gives the account root
# (so IAM policies decide) and lets the AWS services that use each key do so.

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111: a key policy's Resource "*" means this key only; the account root statement is AWS's default key policy, so IAM policies decide
  #checkov:skip=CKV_AWS_356: a key policy's Resource "*" means this key only (key policies cannot name other resources)
  #checkov:skip=CKV_AWS_109: the account root statement is AWS's default key policy; without it the key becomes unmanageable
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "this" {
  for_each                = toset(["eks", "rds", "redis", "backups", "logs"])
  description             = "${local.name} ${each.key}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  for_each      = aws_kms_key.this
  name          = "alias/${local.name}-${each.key}"
  target_key_id = each.value.key_id
}
