package blobs_test

import (
	"os"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
)

func TestParseNotification(t *testing.T) {
	t.Parallel()
	fixture, err := os.ReadFile("../../shared/fixtures/aws/s3-event.json")
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	tests := []struct {
		name    string
		body    []byte
		want    []blobs.ObjectRef
		wantErr bool
	}{
		{
			name: "real S3 event",
			body: fixture,
			want: []blobs.ObjectRef{{
				Bucket: "sourcebucket", Key: "Happy Face.jpg", Size: 1024,
				EventTime: time.Date(1970, 1, 1, 0, 0, 0, 123e6, time.UTC),
			}},
		},
		{
			name: "emulator event: form-encoded key, time with no zone",
			body: []byte(`{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
				"eventTime": "2024-01-01T12:00:00.000", "eventName": "ObjectCreated:Put",
				"s3": {"s3SchemaVersion": "1.0", "configurationId": "results",
				"bucket": {"name": "internal", "arn": "arn:aws:s3:::internal"},
				"object": {"key": "callbacks%2Frun+1%2B2%2F0001%2F1%2Fresult.json", "size": 42, "eTag": "x"}}}]}`),
			want: []blobs.ObjectRef{{
				Bucket: "internal", Key: "callbacks/run 1+2/0001/1/result.json", Size: 42,
				EventTime: time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC),
			}},
		},
		{
			name: "emulator event time with microseconds",
			body: []byte(`{"Records": [{"eventSource": "aws:s3", "eventTime": "2024-01-01T12:00:00.250000",
				"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "k", "size": 1}}}]}`),
			want: []blobs.ObjectRef{{Bucket: "b", Key: "k", Size: 1, EventTime: time.Date(2024, 1, 1, 12, 0, 0, 250e6, time.UTC)}},
		},
		{
			name: "test event",
			body: []byte(`{"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-01-01T12:00:00.000Z",
				"Bucket": "internal", "RequestId": "X", "HostId": "Y"}`),
			want: nil,
		},
		{
			name: "removal is not a creation",
			body: []byte(`{"Records": [{"eventSource": "aws:s3", "eventTime": "2024-01-01T12:00:00.000Z",
				"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}`),
			want: nil,
		},
		{name: "garbage", body: []byte("not json"), wantErr: true},
		{name: "JSON that is no S3 event", body: []byte(`{"hello": "world"}`), wantErr: true},
		{
			name:    "SQS envelope",
			body:    []byte(`{"Records": [{"messageId": "1", "eventSource": "aws:sqs", "body": "{}"}]}`),
			wantErr: true,
		},
		{
			name: "bad event time",
			body: []byte(`{"Records": [{"eventSource": "aws:s3", "eventTime": "yesterday",
				"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}`),
			wantErr: true,
		},
		{
			name: "bad key encoding",
			body: []byte(`{"Records": [{"eventSource": "aws:s3", "eventTime": "2024-01-01T12:00:00.000Z",
				"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "a%zz"}}}]}`),
			wantErr: true,
		},
		{
			name: "missing key",
			body: []byte(`{"Records": [{"eventSource": "aws:s3", "eventTime": "2024-01-01T12:00:00.000Z",
				"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}]}`),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := blobs.ParseNotification(tt.body)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseNotification: got %v and no error, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNotification: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseNotification: got %d refs %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("ref %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestNotificationBodyRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 4, 5, 6, 7, 891e6, time.FixedZone("CET", 3600))
	for _, key := range []string{
		"callbacks/20250304T050607Z-0123456789abcdef/0001/1/result.json",
		"callbacks/run 1+2/0001/1/result.json",
		"odd/ké%y&=?#/x",
	} {
		body := blobs.NotificationBody("internal", key, 99, at)
		refs, err := blobs.ParseNotification(body)
		if err != nil {
			t.Fatalf("ParseNotification(NotificationBody(%q)): %v", key, err)
		}
		want := blobs.ObjectRef{Bucket: "internal", Key: key, Size: 99, EventTime: at.UTC()}
		if len(refs) != 1 || refs[0] != want {
			t.Errorf("round trip of %q: got %+v, want [%+v]", key, refs, want)
		}
	}
}

func TestNotificationBodyEncodesAsS3Does(t *testing.T) {
	t.Parallel()
	body := string(blobs.NotificationBody("b", "a dir/red flower+1.json", 3, time.Unix(0, 0)))
	want := `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",` +
		`"eventTime":"1970-01-01T00:00:00.000Z","s3":{"bucket":{"name":"b"},"object":{"key":"a+dir/red+flower%2B1.json","size":3}}}]}`
	if body != want {
		t.Fatalf("NotificationBody:\n got %s\nwant %s", body, want)
	}
}
