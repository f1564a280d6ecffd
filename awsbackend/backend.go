package awsbackend

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/iac-ci/iac-ci/blobs/s3blobs"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqsqueue"
	"github.com/iac-ci/iac-ci/secrets/awssecrets"
	"github.com/iac-ci/iac-ci/store/dynamostore"
)

// ErrMissing is wrapped by Check's errors for a resource that does not exist (or is not set up
// as Describe says); the message names the variable that names it.
var ErrMissing = errors.New("AWS resource missing")

// Backend is the engine's ports on the resources of one Config.
type Backend struct {
	Config   Config
	Clients  *Clients
	Queues   queues.Broker
	Store    *dynamostore.Store
	Internal *s3blobs.Bucket
	Done     *s3blobs.Bucket
	Keys     *awssecrets.Keys
	Secrets  *awssecrets.Source
}

// Open returns the ports on c's resources through clients. It makes no call; Check does.
// With serialize (see ClientOptions.Serialize) a receive's long poll becomes short polls a
// growing pause apart (50 ms to 1 s), so that it never holds the one request slot for its wait.
func Open(c Config, clients *Clients, serialize bool, calls *Calls) (*Backend, error) {
	keys, err := awssecrets.NewKeys(clients.SSM, c.RunKeyPrefix)
	if err != nil {
		return nil, &ConfigError{Problems: []string{EnvRunKeyPrefix + ": " + err.Error()}}
	}
	return &Backend{
		Config:   c,
		Clients:  clients,
		Queues:   sqsqueue.NewWithOptions(clients.SQS, c.QueuePrefix, sqsqueue.Options{ShortPolls: serialize, OnEmptyReceive: calls.emptyReceive}),
		Store:    dynamostore.New(clients.DynamoDB, c.Tables()),
		Internal: s3blobs.New(clients.S3, c.InternalBucket),
		Done:     s3blobs.New(clients.S3, c.DoneBucket),
		Keys:     keys,
		Secrets:  awssecrets.NewSource(clients.SSM, clients.SecretsManager),
	}, nil
}

// GetObject reads an object of any bucket the credentials can read: the code of an order
// with an s3_location.
func (b *Backend) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	return s3blobs.New(b.Clients.S3, bucket).Get(ctx, key)
}

// missingCodes are the error codes AWS answers when a resource Check looks at does not exist.
// S3 answers a HEAD without a body, so its code is the status text ("NotFound").
var missingCodes = map[string]error{
	"ResourceNotFoundException": ErrMissing, // DynamoDB DescribeTable
	"NotFound":                  ErrMissing, // S3 HeadBucket
	"NoSuchBucket":              ErrMissing, // S3 calls with a body
}

func mapMissing(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if s, ok := missingCodes[apiErr.ErrorCode()]; ok {
			return s
		}
	}
	return err
}

// Check confirms that every resource of the configuration exists, with one cheap call each
// (GetQueueUrl, DescribeTable, HeadBucket), and that the internal bucket notifies the results
// queue. The first call also proves that credentials were found. A missing resource is an
// error naming its variable and wrapping ErrMissing.
func (b *Backend) Check(ctx context.Context) error {
	c := b.Config
	fix := "create it with `iac-ci aws-setup` (or infra/), or set the variable to the existing name"
	for i, s := range queueSpecs() {
		_, err := b.Queues.Queue(s.Name)
		if i == 0 && err != nil && !errors.Is(err, queues.ErrNotFound) {
			return b.unreachable(err)
		}
		if errors.Is(err, queues.ErrNotFound) {
			return fmt.Errorf("%s=%q: queue %s does not exist: %s: %w", EnvQueuePrefix, c.QueuePrefix, c.QueueName(s.Name), fix, ErrMissing)
		}
		if err != nil {
			return fmt.Errorf("check queue %s: %w", c.QueueName(s.Name), err)
		}
	}
	for _, t := range []struct{ variable, name string }{{EnvOrdersTable, c.OrdersTable}, {EnvEventsTable, c.EventsTable}} {
		_, err := b.Clients.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)})
		if errors.Is(mapMissing(err), ErrMissing) {
			return fmt.Errorf("%s=%q: table does not exist: %s: %w", t.variable, t.name, fix, ErrMissing)
		}
		if err != nil {
			return fmt.Errorf("%s=%q: check table: %w", t.variable, t.name, err)
		}
	}
	for _, bk := range []struct{ variable, name string }{{EnvInternalBucket, c.InternalBucket}, {EnvDoneBucket, c.DoneBucket}} {
		_, err := b.Clients.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bk.name)})
		if errors.Is(mapMissing(err), ErrMissing) {
			return fmt.Errorf("%s=%q: bucket does not exist: %s: %w", bk.variable, bk.name, fix, ErrMissing)
		}
		if err != nil {
			return fmt.Errorf("%s=%q: check bucket: %w", bk.variable, bk.name, err)
		}
	}
	notify, err := b.Clients.S3.GetBucketNotificationConfiguration(ctx,
		&s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(c.InternalBucket)})
	if err != nil {
		return fmt.Errorf("%s=%q: read the bucket's notifications: %w", EnvInternalBucket, c.InternalBucket, err)
	}
	results := c.QueueName(queues.Results)
	for _, qc := range notify.QueueConfigurations {
		if strings.HasSuffix(aws.ToString(qc.QueueArn), ":"+results) {
			return nil
		}
	}
	return fmt.Errorf("%s=%q: the bucket sends no notifications to queue %s, so no result would ever be recorded: "+
		"run `iac-ci aws-setup` (or infra/): %w", EnvInternalBucket, c.InternalBucket, results, ErrMissing)
}

// unreachable explains the first call's failure: no credentials, a wrong endpoint, no network.
func (b *Backend) unreachable(err error) error {
	where := "region " + b.Clients.Config.Region
	if b.Config.Endpoint != "" {
		where += ", " + EnvEndpoint + "=" + b.Config.Endpoint
	}
	return fmt.Errorf("reach AWS (%s; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role): %w", where, err)
}
