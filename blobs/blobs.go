// Package blobs is the object port: put, get, list and delete objects by key, and presigned PUT
// and GET URLs with an expiry, so that a worker with no credentials can fetch its bundle and
// deliver its result. A result landing under callbacks/ notifies the results queue, as an S3
// bucket notification does. The embedded adapter keeps small objects as SQLite rows and large
// ones as files in a folder, and serves its signed URLs over HTTP (blobs/folderblobs); the AWS
// adapter is S3 (blobs/s3blobs). Both pass the conformance suite in blobs/blobtest.
package blobs

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound: no object under that key.
var ErrNotFound = errors.New("object not found")

// Object is an object to store: its key and its body.
type Object struct {
	Key  string
	Body []byte
}

// BatchPutter is a Bucket that stores several objects in one step more cheaply than one at a
// time (the embedded bucket: its rows in one transaction). PutBatch stores every object or, on
// error, possibly only some of them, as the same Puts one after another would.
type BatchPutter interface {
	PutBatch(ctx context.Context, objs []Object) error
}

// PutAll stores objs in b: with one PutBatch when b is a BatchPutter, else one Put each.
func PutAll(ctx context.Context, b Bucket, objs ...Object) error {
	if bp, ok := b.(BatchPutter); ok {
		return bp.PutBatch(ctx, objs)
	}
	for _, o := range objs {
		if err := b.Put(ctx, o.Key, o.Body); err != nil {
			return err
		}
	}
	return nil
}

// Bucket is one bucket of objects. Keys are slash-separated paths without a leading slash.
type Bucket interface {
	// Name is the bucket's name.
	Name() string
	// Put stores body under key, replacing any object there.
	Put(ctx context.Context, key string, body []byte) error
	// Get returns the object under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns every key that starts with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes the object under key; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// PresignPut returns a URL that accepts one HTTP PUT of key's body until expiry passes.
	PresignPut(ctx context.Context, key string, expiry time.Duration) (string, error)
	// PresignGet returns a URL that answers HTTP GET with key's body until expiry passes.
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
}
