package awscalls_test

import (
	"bytes"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/iac-ci/iac-ci/internal/awscalls"
	"github.com/iac-ci/iac-ci/internal/awstest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func TestCountsCallsByServiceAndOperation(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	var c awscalls.Counter
	c.Attach(&cfg)
	client := sqs.NewFromConfig(cfg)

	name := "awscalls-" + t.Name()
	if _, err := client.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name)}); err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	if _, err := client.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(name)}); err != nil {
		t.Fatalf("GetQueueUrl: %v", err)
	}
	// Refused by the client before it is sent: not a call.
	if _, err := client.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{}); err == nil {
		t.Fatalf("GetQueueUrl without a name: no error")
	}

	got := c.Snapshot()
	want := map[string]int64{"sqs.CreateQueue": 1, "sqs.GetQueueUrl": 1}
	if len(got) != len(want) {
		t.Errorf("Snapshot() = %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("Snapshot()[%q] = %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	if total := c.Total(); total != 2 {
		t.Errorf("Total() = %d, want 2", total)
	}

	got["sqs.CreateQueue"] = 99
	if n := c.Snapshot()["sqs.CreateQueue"]; n != 1 {
		t.Errorf("changing a snapshot changed the counter: %d", n)
	}
	c.Reset()
	if total := c.Total(); total != 0 {
		t.Errorf("Total() after Reset = %d, want 0", total)
	}
}

// flakyOnce answers the first request with a 503 and sends the rest on to the emulator.
type flakyOnce struct {
	next     aws.HTTPClient
	attempts atomic.Int64
}

func (f *flakyOnce) Do(r *http.Request) (*http.Response, error) {
	if f.attempts.Add(1) == 1 {
		return &http.Response{
			StatusCode: http.StatusServiceUnavailable,
			Status:     "503 Service Unavailable",
			Header:     http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
			Body:       io.NopCloser(bytes.NewReader([]byte(`{"__type":"ServiceUnavailable","message":"try again"}`))),
			Request:    r,
		}, nil
	}
	return f.next.Do(r)
}

func TestRetriedCallCountsOnce(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	flaky := &flakyOnce{next: cfg.HTTPClient}
	cfg.HTTPClient = flaky
	var c awscalls.Counter
	c.Attach(&cfg)
	client := sqs.NewFromConfig(cfg)

	if _, err := client.ListQueues(t.Context(), &sqs.ListQueuesInput{}); err != nil {
		t.Fatalf("ListQueues: %v", err)
	}
	if n := flaky.attempts.Load(); n != 2 {
		t.Fatalf("HTTP attempts = %d, want 2 (the 503, then the retry)", n)
	}
	if got := c.Snapshot()["sqs.ListQueues"]; got != 1 {
		t.Errorf("sqs.ListQueues counted %d times for one call retried once, want 1", got)
	}
}
