# terraform workspace select dev && terraform apply -var-file=environments/dev.tfvars
production                = false
db_instance_class         = "db.t4g.medium"
redis_node_type           = "cache.t4g.medium"
trading_instance_types    = ["c7i.xlarge"]
monitoring_instance_types = ["m7i.large"]
trading_nodes             = { min = 1, desired = 1, max = 2 }
monitoring_nodes          = { min = 1, desired = 2, max = 3 }
backup_retention_days     = 14
db_backup_retention_days  = 7
