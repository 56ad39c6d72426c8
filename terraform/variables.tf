# Inputs. Environments are workspaces (`terraform workspace select prod`) with a variables file
# each (environments/<workspace>.tfvars); see README.md.

variable "region" {
  description = "AWS region of every resource."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Prefix of every resource name; the workspace is appended (flashmm-prod)."
  type        = string
  default     = "flashmm"
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC. The Kubernetes NetworkPolicies allow PostgreSQL and Redis to this block."
  type        = string
  default     = "10.40.0.0/16"
}

variable "azs" {
  description = "Availability zones (at least two: RDS Multi-AZ, Redis failover, EKS)."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

variable "kubernetes_version" {
  description = "EKS control plane version."
  type        = string
  default     = "1.31"
}

variable "cluster_admin_cidrs" {
  description = "CIDR blocks allowed to reach the EKS public API endpoint (empty: private endpoint only)."
  type        = list(string)
  default     = []
}

variable "trading_instance_types" {
  description = "Instance types of the trading node group (hot paths: compute optimised, whole cores)."
  type        = list(string)
  default     = ["c7i.2xlarge"]
}

variable "trading_nodes" {
  description = "Size of the trading node group: min, desired, max."
  type        = object({ min = number, desired = number, max = number })
  default     = { min = 2, desired = 2, max = 4 }
}

variable "monitoring_instance_types" {
  description = "Instance types of the monitoring node group (Prometheus, Grafana, InfluxDB) and the general workloads (API, workers)."
  type        = list(string)
  default     = ["m7i.xlarge"]
}

variable "monitoring_nodes" {
  description = "Size of the monitoring node group: min, desired, max."
  type        = object({ min = number, desired = number, max = number })
  default     = { min = 2, desired = 2, max = 4 }
}

variable "db_instance_class" {
  description = "RDS PostgreSQL instance class."
  type        = string
  default     = "db.r6g.large"
}

variable "db_allocated_storage" {
  description = "RDS storage in GiB (autoscaling up to four times this)."
  type        = number
  default     = 100
}

variable "db_backup_retention_days" {
  description = "Days RDS keeps automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "production" {
  description = "Production safeguards: RDS deletion protection and a final snapshot, Multi-AZ (on unless a dev workspace turns them off)."
  type        = bool
  default     = true
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.r7g.large"
}

variable "backup_retention_days" {
  description = "Days the S3 backup bucket keeps FlashMM backups (Backup workflow), and noncurrent versions for a quarter of that."
  type        = number
  default     = 90
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
