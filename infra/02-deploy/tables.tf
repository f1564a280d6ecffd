# The two tables of store/dynamostore, as dynamostore.CreateTables makes them: runs and orders
# keyed by run_id and sk with the sweeper's two sparse indexes and the runs list's index and a TTL, and the history keyed by trace_id
# and sk with an index by order and a TTL.
resource "aws_dynamodb_table" "orders" {
  name                        = local.orders_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "run_id"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "run_id"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  attribute {
    name = "due_shard"
    type = "S"
  }
  attribute {
    name = "due_at"
    type = "N"
  }
  attribute {
    name = "active_shard"
    type = "S"
  }
  attribute {
    name = "runs_shard"
    type = "S"
  }
  attribute {
    name = "created_at"
    type = "N"
  }

  global_secondary_index {
    name            = "due"
    hash_key        = "due_shard"
    range_key       = "due_at"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "active"
    hash_key        = "active_shard"
    range_key       = "created_at"
    projection_type = "ALL"
  }
  # Every run, newest first: GET /runs and `iac-ci runs` (store.ListRuns). It carries only what
  # the listing filters on (dynamostore.RunsIndexAttributes), so an order ending, which changes
  # its run's counters, writes nothing to it.
  global_secondary_index {
    name               = "runs"
    hash_key           = "runs_shard"
    range_key          = "created_at"
    projection_type    = "INCLUDE"
    non_key_attributes = ["status", "git_repo", "pr_number", "username"]
  }

  # Ended orders and reported runs carry expires_at (store/dynamostore): they go with their history.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }
}

resource "aws_dynamodb_table" "events" {
  name                        = local.events_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "trace_id"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "trace_id"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  attribute {
    name = "order_name"
    type = "S"
  }
  attribute {
    name = "epoch"
    type = "N"
  }

  global_secondary_index {
    name            = "by_order"
    hash_key        = "order_name"
    range_key       = "epoch"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }
}
