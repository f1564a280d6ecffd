package awsbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/iac-ci/iac-ci/blobs/s3blobs"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqsqueue"
	"github.com/iac-ci/iac-ci/store/dynamostore"
)

// Setup creates every resource of c that Describe lists and an account or an emulator can be
// given by API calls alone: the queues with their redrive policies (and the results queue's
// policy letting the internal bucket notify it), the tables with their indexes and TTL, and the
// buckets with the result notification. Resources that exist are brought in line, so running it
// again changes nothing. It writes one line per resource to out. The SSM document and the
// CodeBuild project need the worker image, so infra/ deploys them; Setup only names them.
func Setup(ctx context.Context, clients *Clients, c Config, out io.Writer) error {
	r := Describe(c)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	state := func(existed bool) string {
		if existed {
			return "exists, settings applied"
		}
		return "created"
	}

	existing := map[string]bool{}
	pages := sqs.NewListQueuesPaginator(clients.SQS, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(c.QueuePrefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list queues named %s*: %w", c.QueuePrefix, err)
		}
		for _, u := range page.QueueUrls {
			existing[u[strings.LastIndex(u, "/")+1:]] = true
		}
	}
	if err := sqsqueue.Create(ctx, clients.SQS, c.QueuePrefix, queueSpecs()); err != nil {
		return err
	}
	resultsARN, err := allowS3Notifications(ctx, clients.SQS, c)
	if err != nil {
		return err
	}
	for _, q := range r.Queues {
		detail := fmt.Sprintf("visibility %ds", q.VisibilityTimeoutSeconds)
		if q.DeadLetterQueue != "" {
			detail += fmt.Sprintf(", dead letters to %s after %d receives", q.DeadLetterQueue, q.MaxReceiveCount)
		}
		if q.AllowsS3From != "" {
			detail += ", S3 notifications from " + q.AllowsS3From + " allowed"
		}
		fmt.Fprintf(w, "queue\t%s\t%s\t%s\n", q.Name, state(existing[q.Name]), detail)
	}

	tablesExisted := map[string]bool{}
	for _, t := range r.Tables {
		_, err := clients.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.Name)})
		switch {
		case err == nil:
			tablesExisted[t.Name] = true
		case !errors.Is(mapMissing(err), ErrMissing):
			return fmt.Errorf("%s=%q: describe table: %w", t.Variable, t.Name, err)
		}
	}
	if err := dynamostore.CreateTables(ctx, clients.DynamoDB, c.Tables()); err != nil {
		return err
	}
	for _, t := range r.Tables {
		var idx []string
		for _, i := range t.GlobalSecondaryIndexes {
			idx = append(idx, i.Name)
		}
		detail := "indexes " + strings.Join(idx, ", ")
		if t.TTLAttribute != "" {
			detail += ", TTL on " + t.TTLAttribute
		}
		fmt.Fprintf(w, "table\t%s\t%s\t%s\n", t.Name, state(tablesExisted[t.Name]), detail)
	}

	for _, b := range r.Buckets {
		_, err := clients.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.Name)})
		existed := err == nil
		if err != nil && !errors.Is(mapMissing(err), ErrMissing) {
			return fmt.Errorf("%s=%q: look for bucket: %w", b.Variable, b.Name, err)
		}
		arn, detail := "", "no notifications"
		if b.Notification != nil {
			arn = resultsARN
			detail = fmt.Sprintf("notifies %s of %s...%s", b.Notification.Queue, b.Notification.FilterPrefix, b.Notification.FilterSuffix)
		}
		if err := s3blobs.CreateBucket(ctx, clients.S3, b.Name, arn); err != nil {
			return fmt.Errorf("%s=%q: %w", b.Variable, b.Name, err)
		}
		fmt.Fprintf(w, "bucket\t%s\t%s\t%s\n", b.Name, state(existed), detail)
	}
	fmt.Fprintf(w, "run keys\t%s/<run_id>\tnothing to create\tSecureString parameters, one per run, deleted when it ends\n", r.RunKeyPrefix.Path)
	fmt.Fprintf(w, "ssm document\t%s\tnot created here\tdeployed by infra/ with the worker image\n", r.SSMDocument.Name)
	fmt.Fprintf(w, "codebuild project\t%s\tnot created here\tdeployed by infra/ with the worker image\n", r.CodeBuildProject.Name)
	return nil
}

// queuePolicy is the results queue's policy: S3 may send it the internal bucket's notifications
// and nothing else may, through this statement.
type queuePolicy struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid       string                       `json:"Sid"`
	Effect    string                       `json:"Effect"`
	Principal map[string]string            `json:"Principal"`
	Action    string                       `json:"Action"`
	Resource  string                       `json:"Resource"`
	Condition map[string]map[string]string `json:"Condition"`
}

// allowS3Notifications sets the results queue's policy so that S3 accepts the internal bucket's
// notification configuration (it refuses one whose queue it may not send to), and returns the
// queue's ARN.
func allowS3Notifications(ctx context.Context, client *sqs.Client, c Config) (string, error) {
	name := c.QueueName(queues.Results)
	u, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("queue %s: %w", name, err)
	}
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: u.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("queue %s: read its ARN: %w", name, err)
	}
	arn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	// The queue's ARN gives the partition (aws, aws-cn, aws-us-gov) the bucket's ARN is in.
	partition := "aws"
	if parts := strings.SplitN(arn, ":", 3); len(parts) == 3 {
		partition = parts[1]
	}
	policy, err := json.Marshal(queuePolicy{Version: "2012-10-17", Statement: []policyStatement{{
		Sid: "iac-ci-results-from-s3", Effect: "Allow", Principal: map[string]string{"Service": "s3.amazonaws.com"},
		Action: "sqs:SendMessage", Resource: arn,
		Condition: map[string]map[string]string{"ArnEquals": {"aws:SourceArn": "arn:" + partition + ":s3:::" + c.InternalBucket}},
	}}})
	if err != nil {
		return "", err
	}
	_, err = client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: u.QueueUrl,
		Attributes: map[string]string{string(sqstypes.QueueAttributeNamePolicy): string(policy)}})
	if err != nil {
		return "", fmt.Errorf("queue %s: set the policy that lets S3 notify it: %w", name, err)
	}
	return arn, nil
}
