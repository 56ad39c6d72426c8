# IAM roles for service accounts (IRSA): one per Kubernetes service account of
# deploy/k8s/base/serviceaccounts.yaml, trusted only by that account in namespace flashmm.
#   flashmm-worker   backups to and from S3 (Backup/Restore workflows) with the backups key
#   flashmm-api      no AWS access yet (its role exists so the annotation is stable)
#   flashmm-hotpath  no AWS access (signing keys come from the Secret, not KMS)

locals {
  irsa = toset(["worker", "api", "hotpath"])
  oidc = replace(aws_iam_openid_connect_provider.this.url, "https://", "")
}

data "aws_iam_policy_document" "irsa_assume" {
  for_each = local.irsa
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.this.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc}:sub"
      values   = ["system:serviceaccount:flashmm:flashmm-${each.key}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  for_each           = local.irsa
  name               = "${local.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume[each.key].json
}

data "aws_iam_policy_document" "worker_backups" {
  statement {
    sid       = "ListBackups"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backups.arn]
  }
  statement {
    sid       = "ReadWriteBackups"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.backups.arn}/*"]
  }
  statement {
    sid       = "BackupsKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.this["backups"].arn]
  }
}

resource "aws_iam_role_policy" "worker_backups" {
  name   = "backups"
  role   = aws_iam_role.irsa["worker"].id
  policy = data.aws_iam_policy_document.worker_backups.json
}
