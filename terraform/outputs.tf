output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "irsa_role_arns" {
  description = "IAM role ARN per Kubernetes service account (deploy/k8s/overlays/prod/irsa.yaml)."
  value       = { for k, r in aws_iam_role.irsa : "flashmm-${k}" => r.arn }
}

output "postgres_endpoint" {
  description = "RDS PostgreSQL host:port for stores.postgres_dsn and Temporal's persistence."
  value       = aws_db_instance.this.endpoint
}

output "postgres_master_secret_arn" {
  description = "Secrets Manager ARN of the RDS master password (managed by RDS)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "redis_primary_endpoint" {
  description = "ElastiCache primary endpoint (rediss://:<token>@host:6379/0 for stores.redis_url)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "redis_auth_secret_arn" {
  description = "Secrets Manager ARN of the Redis AUTH token."
  value       = aws_secretsmanager_secret.redis.arn
}

output "backup_bucket" {
  description = "S3 bucket for backup.s3_bucket (the Backup and Restore workflows)."
  value       = aws_s3_bucket.backups.bucket
}

output "kms_key_arns" {
  description = "KMS key ARN per purpose (eks, rds, redis, backups, logs)."
  value       = { for k, key in aws_kms_key.this : k => key.arn }
}

output "vpc_cidr" {
  description = "VPC CIDR (the NetworkPolicy flashmm-egress allows PostgreSQL and Redis to it)."
  value       = aws_vpc.this.cidr_block
}
