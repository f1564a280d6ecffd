package s3blobs_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/blobtest"
	"github.com/iac-ci/iac-ci/blobs/s3blobs"
	"github.com/iac-ci/iac-ci/internal/awstest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func newClient(t *testing.T) *s3.Client {
	t.Helper()
	return s3.NewFromConfig(awstest.Config(t), s3blobs.PathStyle)
}

// uniqueBucket makes a bucket name no other test uses on the shared emulator.
func uniqueBucket(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand: %v", err)
	}
	return "blobtest-" + hex.EncodeToString(b)
}

func openBucket(t *testing.T) *s3blobs.Bucket {
	t.Helper()
	client := newClient(t)
	name := uniqueBucket(t)
	if err := s3blobs.CreateBucket(t.Context(), client, name, ""); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	return s3blobs.New(client, name)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, blobtest.Harness{
		Open: func(t *testing.T) blobs.Bucket { return openBucket(t) },
		// Tried against moto_server 5.2: a presigned URL with a changed signature, one made for
		// GET and used for PUT, and one past its X-Amz-Expires are all answered 200. Its S3
		// never checks query-string (presigned) authentication, and its optional IAM mode
		// reads only the Authorization header.
		SignaturesUnchecked: "moto_server accepts presigned URLs whatever their signature",
		ExpiryUnchecked:     "moto_server accepts presigned URLs past X-Amz-Expires",
	})
}

func TestCreateBucketIsIdempotent(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	name := uniqueBucket(t)
	for i := range 2 {
		if err := s3blobs.CreateBucket(t.Context(), client, name, ""); err != nil {
			t.Fatalf("CreateBucket, call %d: %v", i+1, err)
		}
	}
	b := s3blobs.New(client, name)
	if err := b.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put into the created bucket: %v", err)
	}
}

func TestGetFromMissingBucketIsNotNotFound(t *testing.T) {
	t.Parallel()
	b := s3blobs.New(newClient(t), uniqueBucket(t))
	if _, err := b.Get(t.Context(), "k"); err == nil || errors.Is(err, blobs.ErrNotFound) {
		t.Fatalf("Get from a bucket that does not exist: got %v, want an error other than blobs.ErrNotFound", err)
	}
}

// A result PUT through a presigned URL, as a worker delivers it, reaches the results queue as an
// S3 notification that ParseNotification reads back; other keys send nothing.
func TestResultNotification(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := awstest.Config(t)
	sqsClient := sqs.NewFromConfig(cfg)
	queue, err := sqsClient.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(uniqueBucket(t) + "-results")})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	attrs, err := sqsClient.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       queue.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	client := newClient(t)
	name := uniqueBucket(t)
	if err := s3blobs.CreateBucket(ctx, client, name, attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	b := s3blobs.New(client, name)

	// A run id with a space and a plus checks the key's form encoding both ways.
	runID := "run 1+2"
	for _, key := range []string{
		blobs.LogKey(runID, 1, 1),
		blobs.ExecKey(runID, 1),
		"callbacks/" + runID + "/0001/1/other.json",
		"callbacks/" + runID + "/0001/1/notresult.json",
	} {
		if err := b.Put(ctx, key, []byte("x")); err != nil {
			t.Fatalf("Put %s: %v", key, err)
		}
	}
	key := blobs.ResultKey(runID, 1, 1)
	u, err := b.PresignPut(ctx, key, time.Minute)
	if err != nil {
		t.Fatalf("PresignPut: %v", err)
	}
	body := []byte(`{"status":"succeeded"}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT to presigned URL: status %d, want 200", resp.StatusCode)
	}

	// The emulator sends synchronously, so the queue holds everything by now: the s3:TestEvent
	// sent when the notification was configured, and then the result's event only.
	var refs []blobs.ObjectRef
	deadline := time.Now().Add(10 * time.Second)
	for len(refs) == 0 && time.Now().Before(deadline) {
		out, err := sqsClient.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: queue.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		for _, m := range out.Messages {
			got, err := blobs.ParseNotification([]byte(aws.ToString(m.Body)))
			if err != nil {
				t.Fatalf("ParseNotification(%s): %v", aws.ToString(m.Body), err)
			}
			refs = append(refs, got...)
		}
	}
	if len(refs) != 1 {
		t.Fatalf("notifications: got %+v, want exactly one, for %s", refs, key)
	}
	if got := refs[0]; got.Bucket != name || got.Key != key || got.Size != int64(len(body)) {
		t.Fatalf("notification: got %+v, want bucket %s, key %q, size %d", got, name, key, len(body))
	}
	if age := time.Since(refs[0].EventTime); age < -time.Minute || age > time.Minute {
		t.Errorf("notification event time %v is %v away from now; a zone is misread", refs[0].EventTime, age)
	}
}
