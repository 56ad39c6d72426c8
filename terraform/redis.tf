# ElastiCache Redis: a primary and a replica in another zone with automatic failover,
# encrypted in transit (TLS: rediss://) and at rest (KMS), AUTH token in Secrets Manager.

resource "aws_elasticache_subnet_group" "this" {
  name       = local.name
  subnet_ids = aws_subnet.database[*].id
}

resource "aws_security_group" "redis" {
  name        = "${local.name}-redis"
  description = "Redis from the EKS nodes"
  vpc_id      = aws_vpc.this.id

  ingress {
    description     = "Redis from the cluster"
    from_port       = 6379
    to_port         = 6379
    protocol        = "tcp"
    security_groups = [aws_eks_cluster.this.vpc_config[0].cluster_security_group_id]
  }
}

resource "random_password" "redis" {
  length  = 48
  special = false
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = local.name
  description                = "FlashMM hot state"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.redis_node_type
  num_cache_clusters         = 2
  automatic_failover_enabled = true
  multi_az_enabled           = true
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.redis.id]

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.this["redis"].arn
  transit_encryption_enabled = true
  auth_token                 = random_password.redis.result

  snapshot_retention_limit   = 7
  snapshot_window            = "02:30-03:30"
  maintenance_window         = "sun:05:30-sun:06:30"
  auto_minor_version_upgrade = true
  apply_immediately          = false
}

# the AUTH token for the Kubernetes Secret flashmm-stores (redis-url), never in outputs
resource "aws_secretsmanager_secret" "redis" {
  name       = "${local.name}/redis-auth"
  kms_key_id = aws_kms_key.this["redis"].arn
  #checkov:skip=CKV2_AWS_57: ElastiCache AUTH tokens rotate through modify-replication-group (docs/runbook.md#rotating-store-credentials), not a Secrets Manager rotation Lambda
}

resource "aws_secretsmanager_secret_version" "redis" {
  secret_id     = aws_secretsmanager_secret.redis.id
  secret_string = random_password.redis.result
}
