# terraform workspace select prod && terraform apply -var-file=environments/prod.tfvars
production               = true
db_backup_retention_days = 35
backup_retention_days    = 365
