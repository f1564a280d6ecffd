// Package blobtest is the conformance suite of the blob port: every adapter of blobs.Bucket runs
// Run, and a behaviour of the port is promised only if this suite checks it. Presigned URLs are
// exercised the way a worker uses them: a plain HTTP client with no credentials.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
)

// Harness describes the adapter under test.
type Harness struct {
	// Open returns a new, empty bucket for one test. Each subtest calls it once and runs in
	// parallel with the others.
	Open func(t *testing.T) blobs.Bucket
	// OpenNotifying returns a new, empty bucket that notifies the results queue when a result
	// lands (as the internal bucket is set up), and a function that returns the notification
	// bodies that arrived since the last call, waiting up to wait for the first of them. Every
	// adapter sets it: the port promises the notification.
	OpenNotifying func(t *testing.T) (blobs.Bucket, Notifications)

	// SignaturesUnchecked, when set, is why the backend accepts a presigned URL whose signature
	// is wrong or was made for another method (an emulator that does not verify signatures).
	// The suite logs it and skips those checks. A real backend leaves it empty.
	SignaturesUnchecked string
	// ExpiryUnchecked, when set, is why the backend accepts a presigned URL past its expiry.
	ExpiryUnchecked string
}

// Notifications returns the notification bodies that arrived since its last call, waiting up to
// wait for the first one when none has.
type Notifications func(t *testing.T, wait time.Duration) [][]byte

// The shortest expiry a presigned URL may have on S3 (X-Amz-Expires is in whole seconds), and
// how long to wait until a URL made with it has surely expired: expiries are counted in whole
// seconds on both backends, so the URL may live up to a second longer than asked.
const (
	shortExpiry = time.Second
	expiryWait  = shortExpiry + 1100*time.Millisecond
	longExpiry  = 10 * time.Minute
)

// Run runs the suite against the adapter h describes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil || h.OpenNotifying == nil {
		t.Fatal("blobtest: Harness.Open and Harness.OpenNotifying must both be set")
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s setup)
	}{
		{"PutGetBinary", testPutGetBinary},
		{"PutGetEmpty", testPutGetEmpty},
		{"Overwrite", testOverwrite},
		{"GetMissing", testGetMissing},
		{"ListByPrefix", testListByPrefix},
		{"Delete", testDelete},
		{"PresignedPut", testPresignedPut},
		{"PresignedGet", testPresignedGet},
		{"PresignedGetMissing", testPresignedGetMissing},
		{"TamperedSignature", needsSignatures(h, testTamperedSignature)},
		{"PutToGetURL", needsSignatures(h, testPutToGetURL)},
		{"Expired", needsExpiry(h, testExpired)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, setup{bucket: h.Open(t), client: &http.Client{Timeout: 30 * time.Second}})
		})
	}
	t.Run("ResultNotification", func(t *testing.T) {
		t.Parallel()
		b, notified := h.OpenNotifying(t)
		testResultNotification(t, setup{bucket: b, client: &http.Client{Timeout: 30 * time.Second}}, notified)
	})
}

// notificationWait is how long the suite waits for a notification to arrive, and then for a
// second one that must not.
const notificationWait = 10 * time.Second

// A result PUT through a presigned URL, as a worker delivers it, is notified exactly once, as a
// body blobs.ParseNotification reads back with the key and size; objects under any other key,
// put either way, are notified not at all. The run id has a space and a plus, which S3
// form-encodes in its notifications.
func testResultNotification(t *testing.T, s setup, notified Notifications) {
	const runID = "run 1+2"
	for _, key := range []string{
		blobs.LogKey(runID, 1, 1),
		blobs.ExecKey(runID, 1),
		"callbacks/" + runID + "/0001/1/other.json",
		"callbacks/" + runID + "/0001/1/notresult.json",
	} {
		put(t, s, key, []byte("x"))
		presignedPut(t, s, key, []byte("y"))
	}
	key := blobs.ResultKey(runID, 1, 2)
	body := []byte(`{"status":"succeeded"}`)
	before := time.Now()
	presignedPut(t, s, key, body)
	var refs []blobs.ObjectRef
	for _, wait := range []time.Duration{notificationWait, time.Second} {
		for _, b := range notified(t, wait) {
			r, err := blobs.ParseNotification(b)
			if err != nil {
				t.Fatalf("ParseNotification(%s): %v", b, err)
			}
			refs = append(refs, r...)
		}
	}
	if len(refs) != 1 || refs[0].Key != key || refs[0].Size != int64(len(body)) {
		t.Fatalf("notifications: got %+v, want exactly one, for %q of %d bytes", refs, key, len(body))
	}
	if at := refs[0].EventTime; at.Before(before.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("notification's event time %v, want about %v", at, before)
	}
}

// presignedPut PUTs body to a presigned URL of key, as a worker does.
func presignedPut(t *testing.T, s setup, key string, body []byte) {
	t.Helper()
	u, err := s.bucket.PresignPut(t.Context(), key, longExpiry)
	if err != nil {
		t.Fatalf("PresignPut %q: %v", key, err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("PUT %q: %v", key, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %q to its presigned URL: status %d, want 200", key, resp.StatusCode)
	}
}

// setup is what one subtest works with.
type setup struct {
	bucket blobs.Bucket
	client *http.Client
}

func needsSignatures(h Harness, f func(*testing.T, setup)) func(*testing.T, setup) {
	if h.SignaturesUnchecked == "" {
		return f
	}
	return func(t *testing.T, _ setup) {
		t.Logf("not checked: the backend does not verify presigned signatures: %s", h.SignaturesUnchecked)
	}
}

func needsExpiry(h Harness, f func(*testing.T, setup)) func(*testing.T, setup) {
	if h.ExpiryUnchecked == "" {
		return f
	}
	return func(t *testing.T, _ setup) {
		t.Logf("not checked: the backend does not enforce presigned expiry: %s", h.ExpiryUnchecked)
	}
}

// binaryBody holds every byte value, including NUL and invalid UTF-8, so that no layer may
// treat an object as text.
func binaryBody() []byte {
	b := make([]byte, 0, 3*256)
	for i := range 3 * 256 {
		b = append(b, byte(255-i%256))
	}
	return b
}

func put(t *testing.T, s setup, key string, body []byte) {
	t.Helper()
	if err := s.bucket.Put(t.Context(), key, body); err != nil {
		t.Fatalf("Put %q: %v", key, err)
	}
}

func mustGet(t *testing.T, s setup, key string) []byte {
	t.Helper()
	got, err := s.bucket.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %q: %v", key, err)
	}
	return got
}

func testPutGetBinary(t *testing.T, s setup) {
	key := "exec/run-1/0001/exec.zip"
	want := binaryBody()
	put(t, s, key, want)
	if got := mustGet(t, s, key); !bytes.Equal(got, want) {
		t.Fatalf("Get %q: got %d bytes %x..., want %d bytes %x...", key, len(got), head(got), len(want), head(want))
	}
}

func testPutGetEmpty(t *testing.T, s setup) {
	put(t, s, "empty", nil)
	if got := mustGet(t, s, "empty"); len(got) != 0 {
		t.Fatalf("Get of an empty object: got %d bytes, want 0", len(got))
	}
}

func testOverwrite(t *testing.T, s setup) {
	key := "runs/r/status.json"
	put(t, s, key, []byte("a longer first version"))
	put(t, s, key, []byte("second"))
	if got := mustGet(t, s, key); string(got) != "second" {
		t.Fatalf("Get after overwrite: got %q, want %q", got, "second")
	}
	keys, err := s.bucket.List(t.Context(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(keys, []string{key}) {
		t.Fatalf("List after overwrite: got %q, want [%q]", keys, key)
	}
}

func testGetMissing(t *testing.T, s setup) {
	put(t, s, "a/b", []byte("x"))
	for _, key := range []string{"missing", "a/missing", "a", "a/b/c"} {
		got, err := s.bucket.Get(t.Context(), key)
		if !errors.Is(err, blobs.ErrNotFound) {
			t.Errorf("Get %q: got %q and error %v, want blobs.ErrNotFound", key, got, err)
		}
	}
}

func testListByPrefix(t *testing.T, s setup) {
	// Written out of order, and chosen so that a folder walk ("p/b" before "p/b-d") and a
	// string sort ('-' sorts before '/') disagree.
	for _, key := range []string{"q/x", "p/b/c", "pa", "p/b-d", "p/a", "p/b/e/f"} {
		put(t, s, key, []byte(key))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"p/", []string{"p/a", "p/b-d", "p/b/c", "p/b/e/f"}},
		{"p/b", []string{"p/b-d", "p/b/c", "p/b/e/f"}},
		{"p/b/", []string{"p/b/c", "p/b/e/f"}},
		{"p", []string{"p/a", "p/b-d", "p/b/c", "p/b/e/f", "pa"}},
		{"", []string{"p/a", "p/b-d", "p/b/c", "p/b/e/f", "pa", "q/x"}},
		{"q/x", []string{"q/x"}},
		{"nothing/", nil},
		{"p/a/", nil},
	}
	for _, tt := range tests {
		got, err := s.bucket.List(t.Context(), tt.prefix)
		if err != nil {
			t.Errorf("List %q: %v", tt.prefix, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("List %q: got %q, want %q", tt.prefix, got, tt.want)
		}
	}
}

func testDelete(t *testing.T, s setup) {
	put(t, s, "logs/r/0001/1.log", []byte("log"))
	put(t, s, "logs/r/0001/2.log", []byte("log"))
	if err := s.bucket.Delete(t.Context(), "logs/r/0001/1.log"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.bucket.Get(t.Context(), "logs/r/0001/1.log"); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("Get after Delete: got error %v, want blobs.ErrNotFound", err)
	}
	if got := mustGet(t, s, "logs/r/0001/2.log"); string(got) != "log" {
		t.Errorf("Get of the other object after Delete: got %q, want %q", got, "log")
	}
	keys, err := s.bucket.List(t.Context(), "logs/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(keys, []string{"logs/r/0001/2.log"}) {
		t.Errorf("List after Delete: got %q, want [logs/r/0001/2.log]", keys)
	}
	for _, key := range []string{"logs/r/0001/1.log", "never/written"} {
		if err := s.bucket.Delete(t.Context(), key); err != nil {
			t.Errorf("Delete of missing %q: got %v, want nil", key, err)
		}
	}
	// A bucket emptied by deletes is usable again under the same keys.
	if err := s.bucket.Delete(t.Context(), "logs/r/0001/2.log"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	put(t, s, "logs/r/0001/1.log", []byte("again"))
	if got := mustGet(t, s, "logs/r/0001/1.log"); string(got) != "again" {
		t.Errorf("Get after re-Put: got %q, want %q", got, "again")
	}
}

func testPresignedPut(t *testing.T, s setup) {
	key := blobs.ResultKey("20250101T000000Z-00112233aabbccdd", 1, 1)
	u, err := s.bucket.PresignPut(t.Context(), key, longExpiry)
	if err != nil {
		t.Fatalf("PresignPut: %v", err)
	}
	want := binaryBody()
	if code, body := do(t, s, http.MethodPut, u, want); code != http.StatusOK {
		t.Fatalf("PUT to presigned URL: status %d (%s), want 200", code, body)
	}
	if got := mustGet(t, s, key); !bytes.Equal(got, want) {
		t.Fatalf("Get after presigned PUT: got %d bytes, want %d", len(got), len(want))
	}
	// The URL stays usable until it expires: a worker retrying its delivery overwrites.
	if code, body := do(t, s, http.MethodPut, u, []byte("retried")); code != http.StatusOK {
		t.Fatalf("second PUT to presigned URL: status %d (%s), want 200", code, body)
	}
	if got := mustGet(t, s, key); string(got) != "retried" {
		t.Fatalf("Get after second presigned PUT: got %q, want %q", got, "retried")
	}
}

func testPresignedGet(t *testing.T, s setup) {
	key := "exec/run 1/0001/exec.zip" // a space, to check the URL escapes the key
	want := binaryBody()
	put(t, s, key, want)
	u, err := s.bucket.PresignGet(t.Context(), key, longExpiry)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	code, got := do(t, s, http.MethodGet, u, nil)
	if code != http.StatusOK {
		t.Fatalf("GET of presigned URL: status %d (%s), want 200", code, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("GET of presigned URL: got %d bytes, want %d", len(got), len(want))
	}
}

func testPresignedGetMissing(t *testing.T, s setup) {
	u, err := s.bucket.PresignGet(t.Context(), "exec/none/0001/exec.zip", longExpiry)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	// S3 answers 403 instead of 404 when the signer may not list the bucket (Amazon S3 API
	// Reference, GetObject), so only a client error is promised.
	if code, body := do(t, s, http.MethodGet, u, nil); !isClientError(code) {
		t.Fatalf("GET of presigned URL of a missing object: status %d (%s), want 4xx", code, body)
	}
}

func testTamperedSignature(t *testing.T, s setup) {
	key := "exec/r/0001/exec.zip"
	put(t, s, key, []byte("original"))
	getURL, err := s.bucket.PresignGet(t.Context(), key, longExpiry)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	putURL, err := s.bucket.PresignPut(t.Context(), key, longExpiry)
	if err != nil {
		t.Fatalf("PresignPut: %v", err)
	}
	if code, body := do(t, s, http.MethodGet, tamper(t, getURL), nil); !isClientError(code) {
		t.Errorf("GET with a tampered signature: status %d (%s), want 4xx", code, body)
	}
	if code, body := do(t, s, http.MethodPut, tamper(t, putURL), []byte("forged")); !isClientError(code) {
		t.Errorf("PUT with a tampered signature: status %d (%s), want 4xx", code, body)
	}
	// The signature covers the key: the same signature on another key is refused.
	other := strings.Replace(getURL, "exec.zip", "stripped.zip", 1)
	put(t, s, "exec/r/0001/stripped.zip", []byte("other"))
	if code, body := do(t, s, http.MethodGet, other, nil); !isClientError(code) {
		t.Errorf("GET of another key with a valid signature: status %d (%s), want 4xx", code, body)
	}
	if got := mustGet(t, s, key); string(got) != "original" {
		t.Errorf("object after a refused PUT: got %q, want %q", got, "original")
	}
}

func testPutToGetURL(t *testing.T, s setup) {
	key := "exec/r/0001/exec.zip"
	put(t, s, key, []byte("original"))
	u, err := s.bucket.PresignGet(t.Context(), key, longExpiry)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if code, body := do(t, s, http.MethodPut, u, []byte("forged")); !isClientError(code) {
		t.Errorf("PUT to a presigned GET URL: status %d (%s), want 4xx", code, body)
	}
	if got := mustGet(t, s, key); string(got) != "original" {
		t.Errorf("object after a refused PUT: got %q, want %q", got, "original")
	}
}

func testExpired(t *testing.T, s setup) {
	key := "exec/r/0001/exec.zip"
	put(t, s, key, []byte("original"))
	getURL, err := s.bucket.PresignGet(t.Context(), key, shortExpiry)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	putURL, err := s.bucket.PresignPut(t.Context(), key, shortExpiry)
	if err != nil {
		t.Fatalf("PresignPut: %v", err)
	}
	sleep(t.Context(), expiryWait)
	if code, body := do(t, s, http.MethodGet, getURL, nil); !isClientError(code) {
		t.Errorf("GET of an expired URL: status %d (%s), want 4xx", code, body)
	}
	if code, body := do(t, s, http.MethodPut, putURL, []byte("late")); !isClientError(code) {
		t.Errorf("PUT to an expired URL: status %d (%s), want 4xx", code, body)
	}
	if got := mustGet(t, s, key); string(got) != "original" {
		t.Errorf("object after a refused PUT: got %q, want %q", got, "original")
	}
}

// do sends one request the way a worker does (no credentials) and returns the status and body.
func do(t *testing.T, s setup, method, u string, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, r)
	if err != nil {
		t.Fatalf("new %s request: %v", method, err)
	}
	if method == http.MethodPut && body == nil {
		req.ContentLength = 0
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, redact(u), err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s response: %v", method, err)
	}
	return resp.StatusCode, got
}

// tamper flips one character of the URL's signature parameter, whatever the backend calls it.
func tamper(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse presigned URL: %v", err)
	}
	q := u.Query()
	for name, vals := range q {
		if !strings.Contains(strings.ToLower(name), "signature") || len(vals) != 1 || vals[0] == "" {
			continue
		}
		sig := []byte(vals[0])
		if sig[len(sig)-1] == '0' {
			sig[len(sig)-1] = '1'
		} else {
			sig[len(sig)-1] = '0'
		}
		q.Set(name, string(sig))
		u.RawQuery = q.Encode()
		return u.String()
	}
	t.Fatalf("presigned URL has no signature parameter: %s", redact(raw))
	return ""
}

// redact drops the query, which holds the signature, from a URL put in a failure message.
func redact(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i] + "?…"
	}
	return raw
}

func isClientError(code int) bool { return code >= 400 && code < 500 }

func head(b []byte) []byte { return b[:min(len(b), 8)] }

func sleep(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}
