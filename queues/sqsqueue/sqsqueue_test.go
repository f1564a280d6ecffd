package sqsqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/iac-ci/iac-ci/internal/awscalls"
	"github.com/iac-ci/iac-ci/internal/awstest"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/queuetest"
	"github.com/iac-ci/iac-ci/queues/sqsqueue"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const prefix = "iac-ci-test-"

// newClient returns an SQS client for the emulator whose calls are counted.
func newClient(t *testing.T) (*sqs.Client, *awscalls.Counter) {
	t.Helper()
	cfg := awstest.Config(t)
	calls := &awscalls.Counter{}
	calls.Attach(&cfg)
	return sqs.NewFromConfig(cfg), calls
}

func TestConformance(t *testing.T) {
	t.Parallel()
	client, _ := newClient(t)
	queuetest.Run(t, queuetest.Harness{Open: func(t *testing.T, specs []queues.Spec) queues.Broker {
		if err := sqsqueue.Create(t.Context(), client, prefix, specs); err != nil {
			t.Fatalf("Create: %v", err)
		}
		return sqsqueue.New(client, prefix)
	}})
}

func queueAttributes(t *testing.T, client *sqs.Client, awsName string) map[string]string {
	t.Helper()
	url, err := client.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(awsName)})
	if err != nil {
		t.Fatalf("GetQueueUrl(%s): %v", awsName, err)
	}
	out, err := client.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl:       url.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes(%s): %v", awsName, err)
	}
	return out.Attributes
}

func TestCreateSetsAttributesAndIsIdempotent(t *testing.T) {
	t.Parallel()
	client, _ := newClient(t)
	const p = "iac-ci-create-"
	// The dead-letter queue is listed last: Create must still make it first.
	specs := []queues.Spec{
		{Name: "orders-lambda", Visibility: 90 * time.Second, DeadLetter: "orders-lambda-dlq", MaxReceives: 4},
		{Name: "orders-lambda-dlq", Visibility: time.Minute},
	}
	if err := sqsqueue.Create(t.Context(), client, p, specs); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := sqsqueue.Create(t.Context(), client, p, specs); err != nil {
		t.Fatalf("Create again: %v", err)
	}

	dlq := queueAttributes(t, client, p+"orders-lambda-dlq")
	main := queueAttributes(t, client, p+"orders-lambda")
	if got := main["VisibilityTimeout"]; got != "90" {
		t.Errorf("VisibilityTimeout = %q, want 90", got)
	}
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.Number
	}
	if err := json.Unmarshal([]byte(main["RedrivePolicy"]), &policy); err != nil {
		t.Fatalf("RedrivePolicy %q: %v", main["RedrivePolicy"], err)
	}
	if policy.DeadLetterTargetArn != dlq["QueueArn"] || policy.MaxReceiveCount.String() != "4" {
		t.Errorf("RedrivePolicy = %q, want target %s and maxReceiveCount 4", main["RedrivePolicy"], dlq["QueueArn"])
	}
	if _, ok := dlq["RedrivePolicy"]; ok {
		t.Errorf("the dead-letter queue has a RedrivePolicy: %q", dlq["RedrivePolicy"])
	}

	// A changed spec brings the existing queue in line.
	specs[0].Visibility = 2 * time.Minute
	specs[0].MaxReceives = 7
	if err := sqsqueue.Create(t.Context(), client, p, specs); err != nil {
		t.Fatalf("Create with changed specs: %v", err)
	}
	main = queueAttributes(t, client, p+"orders-lambda")
	if got := main["VisibilityTimeout"]; got != "120" {
		t.Errorf("VisibilityTimeout after the change = %q, want 120", got)
	}
	if err := json.Unmarshal([]byte(main["RedrivePolicy"]), &policy); err != nil || policy.MaxReceiveCount.String() != "7" {
		t.Errorf("RedrivePolicy after the change = %q (%v), want maxReceiveCount 7", main["RedrivePolicy"], err)
	}
}

func TestCreateRejectsBadSpecs(t *testing.T) {
	t.Parallel()
	client, calls := newClient(t)
	tests := []struct {
		name  string
		specs []queues.Spec
	}{
		{"unknown dead-letter queue", []queues.Spec{{Name: "a", Visibility: time.Second, DeadLetter: "nope", MaxReceives: 3}}},
		{"no MaxReceives", []queues.Spec{{Name: "a", Visibility: time.Second, DeadLetter: "b"}, {Name: "b", Visibility: time.Second}}},
		{"cycle", []queues.Spec{{Name: "a", Visibility: time.Second, DeadLetter: "b", MaxReceives: 1}, {Name: "b", Visibility: time.Second, DeadLetter: "a", MaxReceives: 1}}},
		{"visibility too long", []queues.Spec{{Name: "a", Visibility: 13 * time.Hour}}},
	}
	for _, tc := range tests {
		if err := sqsqueue.Create(t.Context(), client, "iac-ci-bad-", tc.specs); err == nil {
			t.Errorf("%s: Create accepted %+v", tc.name, tc.specs)
		}
	}
	if n := calls.Total(); n != 0 {
		t.Errorf("rejected specs still made %d SQS calls: %v", n, calls.Snapshot())
	}
}

func TestQueueURLIsResolvedOnce(t *testing.T) {
	t.Parallel()
	client, calls := newClient(t)
	const p = "iac-ci-cache-"
	if err := sqsqueue.Create(t.Context(), client, p, []queues.Spec{{Name: "results", Visibility: time.Minute}}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	b := sqsqueue.New(client, p)
	calls.Reset()
	for range 3 {
		if _, err := b.Queue("results"); err != nil {
			t.Fatalf("Queue: %v", err)
		}
	}
	if n := calls.Snapshot()["sqs.GetQueueUrl"]; n != 1 {
		t.Errorf("GetQueueUrl called %d times for three Queue calls, want 1", n)
	}
	// A queue that exists only under another prefix is not this broker's.
	if _, err := sqsqueue.New(client, "iac-ci-other-").Queue("results"); !errors.Is(err, queues.ErrNotFound) {
		t.Errorf("Queue under another prefix: error = %v, want ErrNotFound", err)
	}
}

// A sub-second positive wait is a long poll of one second, not a short poll; a zero wait returns
// at once.
func TestWaitIsRoundedUpToWholeSeconds(t *testing.T) {
	t.Parallel()
	client, _ := newClient(t)
	const p = "iac-ci-wait-"
	if err := sqsqueue.Create(t.Context(), client, p, []queues.Spec{{Name: "empty", Visibility: time.Minute}}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	q, err := sqsqueue.New(client, p).Queue("empty")
	if err != nil {
		t.Fatalf("Queue: %v", err)
	}
	start := time.Now()
	if _, err := q.Receive(t.Context(), queues.ReceiveOptions{Wait: 200 * time.Millisecond}); err != nil {
		t.Fatalf("Receive with a 200ms wait: %v", err)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Errorf("Receive with a 200ms wait returned after %v, want about 1s", took)
	}
	start = time.Now()
	if _, err := q.Receive(t.Context(), queues.ReceiveOptions{}); err != nil {
		t.Fatalf("Receive without a wait: %v", err)
	}
	if took := time.Since(start); took > 700*time.Millisecond {
		t.Errorf("Receive without a wait returned after %v, want at once", took)
	}
}

// With ShortPolls, a long poll becomes short polls with a growing pause, each empty one is
// reported, and the poll ends with the first message.
func TestShortPollsStandForALongPoll(t *testing.T) {
	t.Parallel()
	client, calls := newClient(t)
	const shortPrefix = "iac-ci-short-"
	if err := sqsqueue.Create(t.Context(), client, shortPrefix, []queues.Spec{{Name: "work", Visibility: time.Minute}}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	var empty atomic.Int64
	b := sqsqueue.NewWithOptions(client, shortPrefix, sqsqueue.Options{ShortPolls: true, OnEmptyReceive: func() { empty.Add(1) }})
	q, err := b.Queue("work")
	if err != nil {
		t.Fatal(err)
	}
	before := calls.Snapshot()["sqs.ReceiveMessage"]
	msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Wait: 1500 * time.Millisecond})
	if err != nil || len(msgs) != 0 {
		t.Fatalf("Receive from an empty queue: got %d messages, %v", len(msgs), err)
	}
	// 0, 50, 150, 350, 750 and 1500 ms: about six polls, not the hundreds a busy loop would
	// make, nor the one a long poll would.
	polls := calls.Snapshot()["sqs.ReceiveMessage"] - before
	if polls < 3 || polls > 10 {
		t.Errorf("an empty long poll of 1.5s made %d receives, want about 6", polls)
	}
	if empty.Load() != polls {
		t.Errorf("empty receives reported %d, want %d", empty.Load(), polls)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = q.Send(context.Background(), queues.Outgoing{Body: []byte("m")})
	}()
	msgs, err = q.Receive(t.Context(), queues.ReceiveOptions{Wait: 20 * time.Second})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive with a message coming: got %d messages, %v", len(msgs), err)
	}
}
