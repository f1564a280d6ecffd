package s3blobs_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
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
		Open:          func(t *testing.T) blobs.Bucket { return openBucket(t) },
		OpenNotifying: openNotifying,
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

// openNotifying returns a bucket that notifies a queue of its own of every result.json, as the
// internal bucket notifies the results queue, and what the queue received. The emulator sends
// synchronously; the s3:TestEvent it sends when the notification is configured is no object and
// ParseNotification reads it as none.
func openNotifying(t *testing.T) (blobs.Bucket, blobtest.Notifications) {
	t.Helper()
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
	notified := func(t *testing.T, wait time.Duration) [][]byte {
		var bodies [][]byte
		deadline := time.Now().Add(wait)
		for {
			out, err := sqsClient.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
				QueueUrl: queue.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			})
			if err != nil {
				t.Fatalf("ReceiveMessage: %v", err)
			}
			for _, m := range out.Messages {
				bodies = append(bodies, []byte(aws.ToString(m.Body)))
				if _, err := sqsClient.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: queue.QueueUrl,
					ReceiptHandle: m.ReceiptHandle}); err != nil {
					t.Fatalf("DeleteMessage: %v", err)
				}
			}
			if len(out.Messages) == 0 && (len(bodies) > 0 || !time.Now().Before(deadline)) {
				return bodies
			}
		}
	}
	return s3blobs.New(client, name), notified
}
