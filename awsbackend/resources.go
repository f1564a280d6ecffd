package awsbackend

import (
	"encoding/json"
	"time"

	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/store/dynamostore"
)

// Resources describes every AWS resource iac-ci uses, named for one Config. Setup creates what
// it describes; infra/ must create the same (names, keys, indexes, TTL, visibility, redrive,
// notification), and a check of infra/ compares its plan against this description, rendered by
// `iac-ci aws-setup --print`. Field names follow the Terraform AWS provider's arguments where
// there is one, so the comparison reads across.
type Resources struct {
	Prefix  string           `json:"prefix"`
	Queues  []QueueResource  `json:"queues"`
	Tables  []TableResource  `json:"tables"`
	Buckets []BucketResource `json:"buckets"`
	// RunKeyPrefix is the Parameter Store path under which each run's private key lives as a
	// SecureString, <prefix>/<run_id>, from intake until the run is finalized. It is not a
	// resource of its own; the IAM policies of the functions are scoped to it.
	RunKeyPrefix RunKeyPrefixResource `json:"run_key_parameter_prefix"`
	// SSMDocument runs an ssm order's commands on an instance; CodeBuildProject runs a
	// codebuild order as `iac-ci worker`. infra/ deploys both with the worker image.
	SSMDocument      NamedResource `json:"ssm_document"`
	CodeBuildProject NamedResource `json:"codebuild_project"`
}

// QueueResource is one SQS standard queue.
type QueueResource struct {
	Name     string `json:"name"`
	Role     string `json:"role"` // the engine's name for it (queues.Topology)
	Variable string `json:"variable"`
	// VisibilityTimeoutSeconds is the default visibility; consumers extend it while they work.
	VisibilityTimeoutSeconds int `json:"visibility_timeout_seconds"`
	// ReceiveWaitTimeSeconds is zero: consumers ask for their own long poll, and a receive that
	// asks for none must return at once.
	ReceiveWaitTimeSeconds int `json:"receive_wait_time_seconds"`
	// DeadLetterQueue and MaxReceiveCount make the redrive_policy.
	DeadLetterQueue string `json:"dead_letter_queue,omitempty"`
	MaxReceiveCount int    `json:"max_receive_count,omitempty"`
	// AllowsS3From names the bucket whose notifications the queue policy lets S3 send.
	AllowsS3From string `json:"allows_s3_notifications_from,omitempty"`
}

// TableResource is one DynamoDB table, billed on demand.
type TableResource struct {
	Name                   string           `json:"name"`
	Role                   string           `json:"role"`
	Variable               string           `json:"variable"`
	BillingMode            string           `json:"billing_mode"`
	HashKey                string           `json:"hash_key"`
	RangeKey               string           `json:"range_key"`
	Attributes             []TableAttribute `json:"attribute"`
	GlobalSecondaryIndexes []TableIndex     `json:"global_secondary_index"`
	// TTLAttribute is the attribute DynamoDB's time to live reads; empty when the table has none.
	TTLAttribute string `json:"ttl_attribute,omitempty"`
}

// TableAttribute is a key attribute of a table or an index, and its type (S or N).
type TableAttribute struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// TableIndex is a global secondary index.
type TableIndex struct {
	Name           string `json:"name"`
	HashKey        string `json:"hash_key"`
	RangeKey       string `json:"range_key"`
	ProjectionType string `json:"projection_type"`
	// NonKeyAttributes are what an INCLUDE projection carries beside the keys.
	NonKeyAttributes []string `json:"non_key_attributes,omitempty"`
}

// BucketResource is one S3 bucket.
type BucketResource struct {
	Name         string              `json:"name"`
	Role         string              `json:"role"`
	Variable     string              `json:"variable"`
	Notification *BucketNotification `json:"notification,omitempty"`
}

// BucketNotification sends the ObjectCreated events of matching keys to a queue.
type BucketNotification struct {
	Queue        string   `json:"queue"`
	Events       []string `json:"events"`
	FilterPrefix string   `json:"filter_prefix"`
	FilterSuffix string   `json:"filter_suffix"`
}

// RunKeyPrefixResource is the Parameter Store path of the run keys.
type RunKeyPrefixResource struct {
	Path      string `json:"path"`
	Variable  string `json:"variable"`
	Type      string `json:"type"`
	Lifecycle string `json:"lifecycle"`
}

// NamedResource is a resource this description names but does not detail.
type NamedResource struct {
	Name     string `json:"name"`
	Variable string `json:"variable"`
}

// Roles of the buckets and tables.
const (
	RoleInternal = "internal" // requests, bundles, results, logs
	RoleDone     = "done"     // one object per finished run, readable without order data
	RoleOrders   = "orders"   // runs and their orders
	RoleEvents   = "events"   // order and run history
)

// The tables' key and index attributes. They are dynamostore's item layout; a test checks them
// against the tables dynamostore.CreateTables makes.
const (
	attrRunID       = "run_id"
	attrSK          = "sk"
	attrDueShard    = "due_shard"
	attrDueAt       = "due_at"
	attrActiveShard = "active_shard"
	attrRunsShard   = "runs_shard"
	attrCreatedAt   = "created_at"
	attrTraceID     = "trace_id"
	attrOrderName   = "order_name"
	attrEpoch       = "epoch"
	attrExpiresAt   = "expires_at"
)

// The result notification, as s3blobs.CreateBucket configures it (blobs.IsResultKey).
const (
	resultPrefix = "callbacks/"
	resultSuffix = "/result.json"
)

// queueSpecs is the engine's queue topology.
func queueSpecs() []queues.Spec { return queues.Topology() }

// QueueName is the SQS name of the queue the engine calls role.
func (c Config) QueueName(role string) string { return c.QueuePrefix + role }

// Tables is the pair of DynamoDB tables, as dynamostore takes them.
func (c Config) Tables() dynamostore.Tables {
	return dynamostore.Tables{Orders: c.OrdersTable, Events: c.EventsTable}
}

// Describe returns every resource of c.
func Describe(c Config) Resources {
	r := Resources{Prefix: c.Prefix}
	for _, s := range queueSpecs() {
		q := QueueResource{
			Name: c.QueueName(s.Name), Role: s.Name, Variable: EnvQueuePrefix,
			VisibilityTimeoutSeconds: int((s.Visibility + time.Second - 1) / time.Second),
		}
		if s.DeadLetter != "" {
			q.DeadLetterQueue, q.MaxReceiveCount = c.QueueName(s.DeadLetter), s.MaxReceives
		}
		if s.Name == queues.Results {
			q.AllowsS3From = c.InternalBucket
		}
		r.Queues = append(r.Queues, q)
	}
	r.Tables = []TableResource{
		{
			Name: c.OrdersTable, Role: RoleOrders, Variable: EnvOrdersTable, BillingMode: "PAY_PER_REQUEST",
			HashKey: attrRunID, RangeKey: attrSK,
			Attributes: []TableAttribute{{attrRunID, "S"}, {attrSK, "S"}, {attrDueShard, "S"}, {attrDueAt, "N"},
				{attrActiveShard, "S"}, {attrRunsShard, "S"}, {attrCreatedAt, "N"}},
			GlobalSecondaryIndexes: []TableIndex{
				{Name: dynamostore.IndexDue, HashKey: attrDueShard, RangeKey: attrDueAt, ProjectionType: "ALL"},
				{Name: dynamostore.IndexActive, HashKey: attrActiveShard, RangeKey: attrCreatedAt, ProjectionType: "ALL"},
				{Name: dynamostore.IndexRuns, HashKey: attrRunsShard, RangeKey: attrCreatedAt, ProjectionType: "INCLUDE",
					NonKeyAttributes: dynamostore.RunsIndexAttributes},
			},
			TTLAttribute: attrExpiresAt,
		},
		{
			Name: c.EventsTable, Role: RoleEvents, Variable: EnvEventsTable, BillingMode: "PAY_PER_REQUEST",
			HashKey: attrTraceID, RangeKey: attrSK,
			Attributes: []TableAttribute{{attrTraceID, "S"}, {attrSK, "S"}, {attrOrderName, "S"}, {attrEpoch, "N"}},
			GlobalSecondaryIndexes: []TableIndex{
				{Name: dynamostore.IndexEventsByOrder, HashKey: attrOrderName, RangeKey: attrEpoch, ProjectionType: "ALL"},
			},
			TTLAttribute: attrExpiresAt,
		},
	}
	r.Buckets = []BucketResource{
		{Name: c.InternalBucket, Role: RoleInternal, Variable: EnvInternalBucket, Notification: &BucketNotification{
			Queue: c.QueueName(queues.Results), Events: []string{"s3:ObjectCreated:*"},
			FilterPrefix: resultPrefix, FilterSuffix: resultSuffix,
		}},
		{Name: c.DoneBucket, Role: RoleDone, Variable: EnvDoneBucket},
	}
	r.RunKeyPrefix = RunKeyPrefixResource{Path: c.RunKeyPrefix, Variable: EnvRunKeyPrefix, Type: "SecureString",
		Lifecycle: "one parameter <path>/<run_id> per run, written at intake, deleted when the run is finalized"}
	r.SSMDocument = NamedResource{Name: c.SSMDocument, Variable: EnvSSMDocument}
	r.CodeBuildProject = NamedResource{Name: c.CodeBuildProject, Variable: EnvCodeBuildProject}
	return r
}

// JSON renders the description, indented, as `iac-ci aws-setup --print` prints it.
func (r Resources) JSON() []byte {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(err) // plain strings and numbers always marshal
	}
	return append(data, '\n')
}
