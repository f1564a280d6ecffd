package blobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ObjectRef names an object that a notification reports as created.
type ObjectRef struct {
	Bucket    string
	Key       string
	Size      int64
	EventTime time.Time
}

// The S3 event message shape, as described in the Amazon S3 User Guide ("Event message
// structure"). Only the fields the engine reads are declared.
type s3Event struct {
	Records []s3EventRecord `json:"Records"`
	// Event is set instead of Records on the s3:TestEvent that S3 sends when a notification
	// configuration is saved.
	Event string `json:"Event,omitempty"`
}

type s3EventRecord struct {
	EventVersion string `json:"eventVersion"`
	EventSource  string `json:"eventSource"`
	EventName    string `json:"eventName"`
	EventTime    string `json:"eventTime"`
	S3           struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key  string `json:"key"`
			Size int64  `json:"size"`
		} `json:"object"`
	} `json:"s3"`
}

const (
	s3EventSource = "aws:s3"
	s3TestEvent   = "s3:TestEvent"
	// S3 writes event times in UTC with milliseconds.
	s3EventTimeLayout = "2006-01-02T15:04:05.000Z"
	// The local S3 emulator writes event times with no zone (Python's "%Y-%m-%dT%H:%M:%S.%f").
	zonelessEventTimeLayout = "2006-01-02T15:04:05.999999999"
)

// NotificationBody is the S3 event notification that says key was created in bucket: what the
// embedded adapter sends to the results queue, so that one parser (ParseNotification) serves
// the embedded engine and S3 alike.
func NotificationBody(bucket, key string, size int64, at time.Time) []byte {
	var rec s3EventRecord
	rec.EventVersion = "2.1"
	rec.EventSource = s3EventSource
	rec.EventName = "ObjectCreated:Put"
	rec.EventTime = at.UTC().Format(s3EventTimeLayout)
	rec.S3.Bucket.Name = bucket
	rec.S3.Object.Key = encodeEventKey(key)
	rec.S3.Object.Size = size
	body, err := json.Marshal(s3Event{Records: []s3EventRecord{rec}})
	if err != nil {
		panic("marshal S3 event: " + err.Error()) // plain strings and numbers always marshal
	}
	return body
}

// ParseNotification reads an S3 event notification body and returns the objects it reports
// created. It accepts what S3 sends and what the local emulator sends (which writes event times
// without a zone; they are read as UTC). The s3:TestEvent that S3 sends when a notification is
// configured yields no objects and no error, and so do records of other events than
// ObjectCreated, which the engine never subscribes to. Anything else that is not an S3 event
// (including an SNS or SQS envelope around one) is an error.
func ParseNotification(body []byte) ([]ObjectRef, error) {
	var ev s3Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("parse S3 notification: %w", err)
	}
	if ev.Records == nil {
		if ev.Event == s3TestEvent {
			return nil, nil
		}
		return nil, errors.New("parse S3 notification: no Records and not an s3:TestEvent")
	}
	var refs []ObjectRef
	for i, rec := range ev.Records {
		if rec.EventSource != s3EventSource {
			return nil, fmt.Errorf("parse S3 notification: record %d: event source %q, want %q", i, rec.EventSource, s3EventSource)
		}
		if !strings.HasPrefix(rec.EventName, "ObjectCreated:") {
			continue
		}
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			return nil, fmt.Errorf("parse S3 notification: record %d: key %q: %w", i, rec.S3.Object.Key, err)
		}
		if rec.S3.Bucket.Name == "" || key == "" {
			return nil, fmt.Errorf("parse S3 notification: record %d: missing bucket name or object key", i)
		}
		at, err := parseEventTime(rec.EventTime)
		if err != nil {
			return nil, fmt.Errorf("parse S3 notification: record %d: %w", i, err)
		}
		refs = append(refs, ObjectRef{Bucket: rec.S3.Bucket.Name, Key: key, Size: rec.S3.Object.Size, EventTime: at})
	}
	return refs, nil
}

func parseEventTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.ParseInLocation(zonelessEventTimeLayout, s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("event time %q: %w", s, err)
	}
	return t, nil
}

// encodeEventKey encodes a key as S3 does in event notifications: form encoding ("red
// flower.jpg" becomes "red+flower.jpg", per the Amazon S3 User Guide, "Event message
// structure"), with the slashes between segments left as they are.
func encodeEventKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.QueryEscape(s)
	}
	return strings.Join(segs, "/")
}
