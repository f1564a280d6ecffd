// Package s3blobs is the AWS adapter of the blob port: one S3 bucket per blobs.Bucket, presigned
// URLs signed with the client's credentials (SigV4, so they cannot outlive those credentials),
// and, set up by CreateBucket, a bucket notification that sends the ObjectCreated events of
// result keys to the results queue.
package s3blobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/iac-ci/iac-ci/blobs"
)

// Bucket is one S3 bucket. It implements blobs.Bucket.
type Bucket struct {
	client  *s3.Client
	presign *s3.PresignClient
	name    string
}

var _ blobs.Bucket = (*Bucket)(nil)

// New returns the bucket named bucket, reached through client.
func New(client *s3.Client, bucket string) *Bucket {
	return &Bucket{client: client, presign: s3.NewPresignClient(client), name: bucket}
}

// PathStyle is an s3.Options function that addresses buckets in the path
// (http://host/bucket/key) rather than in the host name, as local emulators need:
// s3.NewFromConfig(cfg, s3blobs.PathStyle).
func PathStyle(o *s3.Options) { o.UsePathStyle = true }

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Put stores body under key.
func (b *Bucket) Put(ctx context.Context, key string, body []byte) error {
	_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(b.name),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", b.name, key, mapError(err))
	}
	return nil
}

// Get returns the object under key, or blobs.ErrNotFound.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", b.name, key, mapError(err))
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", b.name, key, err)
	}
	return body, nil
}

// List returns every key that starts with prefix, sorted.
func (b *Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.name),
		Prefix: aws.String(prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", b.name, prefix, mapError(err))
		}
		for _, obj := range page.Contents {
			keys = append(keys, aws.ToString(obj.Key))
		}
	}
	// S3 lists in UTF-8 binary order already, which is Go's string order; sorting costs little
	// and keeps the promise with emulators that differ.
	slices.Sort(keys)
	return keys, nil
}

// Delete removes the object under key; a missing object is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil && !errors.Is(mapError(err), blobs.ErrNotFound) {
		return fmt.Errorf("delete s3://%s/%s: %w", b.name, key, mapError(err))
	}
	return nil
}

// PresignPut returns a URL that accepts HTTP PUTs of key's body until expiry passes.
func (b *Bucket) PresignPut(ctx context.Context, key string, expiry time.Duration) (string, error) {
	req, err := b.presign.PresignPutObject(ctx,
		&s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)},
		s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("presign PUT s3://%s/%s: %w", b.name, key, err)
	}
	return req.URL, nil
}

// PresignGet returns a URL that answers HTTP GET with key's body until expiry passes.
func (b *Bucket) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	req, err := b.presign.PresignGetObject(ctx,
		&s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)},
		s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("presign GET s3://%s/%s: %w", b.name, key, err)
	}
	return req.URL, nil
}

// Result notifications: what CreateBucket subscribes the results queue to. It matches
// blobs.IsResultKey.
const (
	resultPrefix = "callbacks/"
	resultSuffix = "/result.json"
)

// CreateBucket creates bucket unless the caller already owns it and, when notifyQueueARN is
// set, makes S3 send the ObjectCreated events of result keys (callbacks/.../result.json) to
// that SQS queue, replacing the bucket's notification configuration. The queue's policy must
// let s3.amazonaws.com send to it, or S3 refuses the configuration.
func CreateBucket(ctx context.Context, client *s3.Client, bucket string, notifyQueueARN string) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
	// us-east-1 is the one region that takes no location constraint (and refuses its own name
	// as one).
	if region := client.Options().Region; region != "" && region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(region),
		}
	}
	if _, err := client.CreateBucket(ctx, in); err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		}
	}
	if notifyQueueARN == "" {
		return nil
	}
	_, err := client.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &types.NotificationConfiguration{
			QueueConfigurations: []types.QueueConfiguration{{
				Id:       aws.String("iac-ci-results"),
				QueueArn: aws.String(notifyQueueARN),
				Events:   []types.Event{types.EventS3ObjectCreated},
				Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{
					FilterRules: []types.FilterRule{
						{Name: types.FilterRuleNamePrefix, Value: aws.String(resultPrefix)},
						{Name: types.FilterRuleNameSuffix, Value: aws.String(resultSuffix)},
					},
				}},
			}},
		},
	})
	if err != nil {
		return fmt.Errorf("configure notifications of bucket %s: %w", bucket, err)
	}
	return nil
}

// errorCodes maps S3 error codes onto the port's sentinel errors. A HEAD or a GET of a missing
// key answers NoSuchKey with a body, or NotFound when there is no body to carry the code.
var errorCodes = map[string]error{
	"NoSuchKey": blobs.ErrNotFound,
	"NotFound":  blobs.ErrNotFound,
}

// mapError returns the port's sentinel for err's S3 error code, or err itself.
func mapError(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if sentinel, ok := errorCodes[apiErr.ErrorCode()]; ok {
			return sentinel
		}
	}
	return err
}
