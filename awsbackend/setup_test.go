package awsbackend

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/awstest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// setup returns clients of the emulator and a configuration of names no other test uses.
func setup(t *testing.T, env map[string]string) (*Clients, Config) {
	t.Helper()
	m := map[string]string{EnvPrefix: "t" + domain.NewTraceID(), EnvEndpoint: "set"}
	for k, v := range env {
		m[k] = v
	}
	c, err := FromEnv(envOf(m))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	return NewClients(awstest.Config(t), c, ClientOptions{}), c
}

// Setup makes exactly what Describe says: each queue's visibility and redrive policy, the
// results queue's policy, each table's keys, attributes, indexes and TTL, and the internal
// bucket's notification. This is the check infra/ must pass too.
func TestSetupMakesWhatDescribeSays(t *testing.T) {
	t.Parallel()
	clients, c := setup(t, nil)
	ctx := t.Context()
	var out bytes.Buffer
	if err := Setup(ctx, clients, c, &out); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	r := Describe(c)

	for _, q := range r.Queues {
		u, err := clients.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q.Name)})
		if err != nil {
			t.Fatalf("queue %s: %v", q.Name, err)
		}
		got, err := clients.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: u.QueueUrl,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		if err != nil {
			t.Fatalf("queue %s attributes: %v", q.Name, err)
		}
		a := got.Attributes
		if v := a["VisibilityTimeout"]; v != strconv.Itoa(q.VisibilityTimeoutSeconds) {
			t.Errorf("queue %s: VisibilityTimeout got %s, want %d", q.Name, v, q.VisibilityTimeoutSeconds)
		}
		if v := a["ReceiveMessageWaitTimeSeconds"]; v != strconv.Itoa(q.ReceiveWaitTimeSeconds) {
			t.Errorf("queue %s: ReceiveMessageWaitTimeSeconds got %s, want %d", q.Name, v, q.ReceiveWaitTimeSeconds)
		}
		var redrive struct {
			Target string `json:"deadLetterTargetArn"`
			Max    any    `json:"maxReceiveCount"`
		}
		if p := a["RedrivePolicy"]; p != "" {
			if err := json.Unmarshal([]byte(p), &redrive); err != nil {
				t.Fatalf("queue %s: RedrivePolicy %q: %v", q.Name, p, err)
			}
		}
		if got, want := redrive.Target != "" && strings.HasSuffix(redrive.Target, ":"+q.DeadLetterQueue), q.DeadLetterQueue != ""; got != want {
			t.Errorf("queue %s: dead-letter target got %q, want %q", q.Name, redrive.Target, q.DeadLetterQueue)
		}
		if q.DeadLetterQueue != "" && !strings.Contains(a["RedrivePolicy"], strconv.Itoa(q.MaxReceiveCount)) {
			t.Errorf("queue %s: RedrivePolicy %s lacks maxReceiveCount %d", q.Name, a["RedrivePolicy"], q.MaxReceiveCount)
		}
		if got, want := strings.Contains(a["Policy"], "arn:aws:s3:::"+q.AllowsS3From), q.AllowsS3From != ""; got != want {
			t.Errorf("queue %s: policy %q, want S3 notifications from %q allowed: %v", q.Name, a["Policy"], q.AllowsS3From, want)
		}
	}

	for _, tr := range r.Tables {
		d, err := clients.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tr.Name)})
		if err != nil {
			t.Fatalf("table %s: %v", tr.Name, err)
		}
		td := d.Table
		var keys []string
		for _, k := range td.KeySchema {
			keys = append(keys, aws.ToString(k.AttributeName)+"/"+string(k.KeyType))
		}
		if want := []string{tr.HashKey + "/HASH", tr.RangeKey + "/RANGE"}; !slices.Equal(keys, want) {
			t.Errorf("table %s: keys got %v, want %v", tr.Name, keys, want)
		}
		var attrs, wantAttrs []string
		for _, a := range td.AttributeDefinitions {
			attrs = append(attrs, aws.ToString(a.AttributeName)+":"+string(a.AttributeType))
		}
		for _, a := range tr.Attributes {
			wantAttrs = append(wantAttrs, a.Name+":"+a.Type)
		}
		slices.Sort(attrs)
		slices.Sort(wantAttrs)
		if !slices.Equal(attrs, wantAttrs) {
			t.Errorf("table %s: attributes got %v, want %v", tr.Name, attrs, wantAttrs)
		}
		var idx, wantIdx []string
		for _, g := range td.GlobalSecondaryIndexes {
			s := aws.ToString(g.IndexName)
			for _, k := range g.KeySchema {
				s += " " + aws.ToString(k.AttributeName) + "/" + string(k.KeyType)
			}
			idx = append(idx, s+" "+string(g.Projection.ProjectionType)+" "+strings.Join(slices.Sorted(slices.Values(g.Projection.NonKeyAttributes)), ","))
		}
		for _, g := range tr.GlobalSecondaryIndexes {
			wantIdx = append(wantIdx, g.Name+" "+g.HashKey+"/HASH "+g.RangeKey+"/RANGE "+g.ProjectionType+" "+
				strings.Join(slices.Sorted(slices.Values(g.NonKeyAttributes)), ","))
		}
		slices.Sort(idx)
		slices.Sort(wantIdx)
		if !slices.Equal(idx, wantIdx) {
			t.Errorf("table %s: indexes got %v, want %v", tr.Name, idx, wantIdx)
		}
		if td.BillingModeSummary == nil || string(td.BillingModeSummary.BillingMode) != tr.BillingMode {
			t.Errorf("table %s: billing mode got %+v, want %s", tr.Name, td.BillingModeSummary, tr.BillingMode)
		}
		ttl, err := clients.DynamoDB.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tr.Name)})
		if err != nil {
			t.Fatalf("table %s TTL: %v", tr.Name, err)
		}
		got := ""
		if ttl.TimeToLiveDescription != nil && ttl.TimeToLiveDescription.TimeToLiveStatus == "ENABLED" {
			got = aws.ToString(ttl.TimeToLiveDescription.AttributeName)
		}
		if got != tr.TTLAttribute {
			t.Errorf("table %s: TTL on %q, want %q", tr.Name, got, tr.TTLAttribute)
		}
	}

	for _, b := range r.Buckets {
		n, err := clients.S3.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(b.Name)})
		if err != nil {
			t.Fatalf("bucket %s: %v", b.Name, err)
		}
		if b.Notification == nil {
			if len(n.QueueConfigurations) != 0 {
				t.Errorf("bucket %s: got notifications %+v, want none", b.Name, n.QueueConfigurations)
			}
			continue
		}
		if len(n.QueueConfigurations) != 1 {
			t.Fatalf("bucket %s: got %d queue notifications, want 1", b.Name, len(n.QueueConfigurations))
		}
		qc := n.QueueConfigurations[0]
		var rules []string
		if qc.Filter != nil && qc.Filter.Key != nil {
			for _, fr := range qc.Filter.Key.FilterRules {
				rules = append(rules, strings.ToLower(string(fr.Name))+"="+aws.ToString(fr.Value))
			}
		}
		slices.Sort(rules)
		want := []string{"prefix=" + b.Notification.FilterPrefix, "suffix=" + b.Notification.FilterSuffix}
		if !strings.HasSuffix(aws.ToString(qc.QueueArn), ":"+b.Notification.Queue) || !slices.Equal(rules, want) {
			t.Errorf("bucket %s: notification to %s filtered %v, want to %s filtered %v", b.Name,
				aws.ToString(qc.QueueArn), rules, b.Notification.Queue, want)
		}
		var events []string
		for _, e := range qc.Events {
			events = append(events, string(e))
		}
		if !slices.Equal(events, b.Notification.Events) {
			t.Errorf("bucket %s: notification events got %v, want %v", b.Name, events, b.Notification.Events)
		}
	}
	if !strings.Contains(out.String(), "created") {
		t.Errorf("Setup's report says nothing was created:\n%s", out.String())
	}
}

func TestSetupTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	clients, c := setup(t, nil)
	var first, second bytes.Buffer
	if err := Setup(t.Context(), clients, c, &first); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := Setup(t.Context(), clients, c, &second); err != nil {
		t.Fatalf("Setup again: %v", err)
	}
	if regexp.MustCompile(`\s{2}created\s{2}`).MatchString(second.String()) {
		t.Errorf("the second Setup created something:\n%s", second.String())
	}
	if got, want := strings.Count(second.String(), "exists"), len(Describe(c).Queues)+4; got != want {
		t.Errorf("the second Setup found %d existing resources, want %d:\n%s", got, want, second.String())
	}
}

// Check names the variable of whatever is missing, and passes once Setup ran.
func TestCheckNamesTheVariableOfAMissingResource(t *testing.T) {
	t.Parallel()
	clients, c := setup(t, nil)
	open := func(c Config) *Backend {
		b, err := Open(c, clients, false, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return b
	}
	err := open(c).Check(t.Context())
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), EnvQueuePrefix) {
		t.Fatalf("Check before Setup: got %v, want ErrMissing naming %s", err, EnvQueuePrefix)
	}
	if err := Setup(t.Context(), clients, c, &bytes.Buffer{}); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := open(c).Check(t.Context()); err != nil {
		t.Fatalf("Check after Setup: %v", err)
	}
	cases := []struct {
		variable string
		change   func(*Config)
	}{
		{EnvOrdersTable, func(c *Config) { c.OrdersTable += "-gone" }},
		{EnvEventsTable, func(c *Config) { c.EventsTable += "-gone" }},
		{EnvInternalBucket, func(c *Config) { c.InternalBucket += "-gone" }},
		{EnvDoneBucket, func(c *Config) { c.DoneBucket += "-gone" }},
	}
	for _, tc := range cases {
		wrong := c
		tc.change(&wrong)
		err := open(wrong).Check(t.Context())
		if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), tc.variable) {
			t.Errorf("Check with a wrong %s: got %v, want ErrMissing naming it", tc.variable, err)
		}
	}

	// A bucket that exists but does not notify the results queue would never record a result.
	silent := c
	silent.InternalBucket = c.DoneBucket
	err = open(silent).Check(t.Context())
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), EnvInternalBucket) || !strings.Contains(err.Error(), "notifications") {
		t.Errorf("Check with an internal bucket that notifies nobody: got %v, want ErrMissing naming %s", err, EnvInternalBucket)
	}
}
