package folderblobs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/blobtest"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
)

// serve opens bucket name in dir with opts and serves it over a real HTTP server.
func serve(t *testing.T, dir, name string, opts folderblobs.Options) (*folderblobs.Bucket, *httptest.Server) {
	t.Helper()
	var srv *httptest.Server
	opts.BaseURL = func() string { return srv.URL }
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	b, err := folderblobs.New(dir, name, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv = httptest.NewServer(folderblobs.Handler(b))
	t.Cleanup(srv.Close)
	return b, srv
}

// TestConformance runs the suite on files alone, on rows alone (every body of the suite fits
// in 1 KiB), and on both (its binary bodies are files, its short ones rows, and one object turns
// from a file into a row).
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name      string
		inlineMax int
	}{{"files", 0}, {"inline", 1 << 10}, {"inline-16", 16}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			open := func(t *testing.T, opts folderblobs.Options) blobs.Bucket {
				if mode.inlineMax > 0 {
					opts = withInline(t, opts, mode.inlineMax)
				}
				b, _ := serve(t, t.TempDir(), "internal", opts)
				return b
			}
			blobtest.Run(t, blobtest.Harness{
				Open: func(t *testing.T) blobs.Bucket { return open(t, folderblobs.Options{}) },
				OpenNotifying: func(t *testing.T) (blobs.Bucket, blobtest.Notifications) {
					n := &notifications{}
					return open(t, folderblobs.Options{Notify: n.notify}), n.take
				},
			})
		})
	}
}

// notifications records what Notify receives, and fails while fail is set.
type notifications struct {
	mu     sync.Mutex
	bodies [][]byte
	taken  int // bodies already returned by take
	fail   error
}

func (n *notifications) notify(ctx context.Context, body []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail != nil {
		return n.fail
	}
	n.bodies = append(n.bodies, body)
	return nil
}

// take returns the bodies notified since its last call, waiting up to wait for the first.
func (n *notifications) take(t *testing.T, wait time.Duration) [][]byte {
	deadline := time.Now().Add(wait)
	for {
		n.mu.Lock()
		got := n.bodies[n.taken:]
		n.taken = len(n.bodies)
		n.mu.Unlock()
		if len(got) > 0 || !time.Now().Before(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (n *notifications) refs(t *testing.T) []blobs.ObjectRef {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	var refs []blobs.ObjectRef
	for _, body := range n.bodies {
		r, err := blobs.ParseNotification(body)
		if err != nil {
			t.Fatalf("ParseNotification(%s): %v", body, err)
		}
		refs = append(refs, r...)
	}
	return refs
}

func httpDo(t *testing.T, method, u string, body []byte) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, r)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(got)
}

func TestNotifyFailure(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, m mode) {
		n := notifications{fail: errors.New("results queue unavailable")}
		b, _ := serve(t, t.TempDir(), "internal", m.opts(t, folderblobs.Options{Notify: n.notify}))
		key := blobs.ResultKey("run-1", 1, 1)

		if err := b.Put(t.Context(), key, []byte("a")); !errors.Is(err, n.fail) {
			t.Fatalf("Put with a failing Notify: got %v, want an error wrapping %v", err, n.fail)
		}
		if got, err := b.Get(t.Context(), key); err != nil || string(got) != "a" {
			t.Fatalf("Get after a failed notify: got %q, %v; want the object written", got, err)
		}

		u, err := b.PresignPut(t.Context(), key, time.Minute)
		if err != nil {
			t.Fatalf("PresignPut: %v", err)
		}
		if code, msg := httpDo(t, http.MethodPut, u, []byte("b")); code != http.StatusInternalServerError {
			t.Fatalf("presigned PUT with a failing Notify: status %d (%s), want 500", code, msg)
		} else if strings.Contains(msg, "queue") {
			t.Errorf("500 body %q tells the client about the server's internals", msg)
		}

		// The worker retries; this time the queue answers.
		n.mu.Lock()
		n.fail = nil
		n.mu.Unlock()
		if code, msg := httpDo(t, http.MethodPut, u, []byte("b")); code != http.StatusOK {
			t.Fatalf("retried PUT: status %d (%s), want 200", code, msg)
		}
		if got := n.refs(t); len(got) != 1 || got[0].Key != key {
			t.Fatalf("notifications after the retry: got %+v, want one for %s", got, key)
		}
	})
}

func TestPutWithoutNotifyOfResultKey(t *testing.T) {
	t.Parallel()
	b, err := folderblobs.New(t.TempDir(), "internal", folderblobs.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Put(t.Context(), blobs.ResultKey("r", 1, 1), []byte("{}")); err != nil {
		t.Fatalf("Put of a result key with no Notify: %v", err)
	}
}

func TestInvalidKeys(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, m mode) {
		b, _ := serve(t, t.TempDir(), "internal", m.opts(t, folderblobs.Options{}))
		for _, key := range []string{
			"", "/abs", "a//b", "a/", "..", "../escape", "a/../b", "a/./b", ".", "a/.put-123", "nul\x00byte",
			strings.Repeat("k", 1025),
		} {
			err := b.Put(t.Context(), key, []byte("x"))
			if err == nil {
				t.Errorf("Put %q: got no error, want one", key)
				continue
			}
			quoted := strconv.Quote(key)
			if key != "" && !strings.Contains(err.Error(), quoted[:min(len(quoted)-1, 12)]) {
				t.Errorf("Put %q: error %q does not name the key", key, err)
			}
			if _, err := b.Get(t.Context(), key); err == nil || errors.Is(err, blobs.ErrNotFound) {
				t.Errorf("Get %q: got %v, want an invalid-key error", key, err)
			}
			if err := b.Delete(t.Context(), key); err == nil {
				t.Errorf("Delete %q: got no error, want one", key)
			}
			if _, err := b.PresignPut(t.Context(), key, time.Minute); err == nil {
				t.Errorf("PresignPut %q: got no error, want one", key)
			}
		}
		// Nothing escaped the bucket's folder.
		keys, err := b.List(t.Context(), "")
		if err != nil || len(keys) != 0 {
			t.Fatalf("List after invalid puts: got %q, %v; want nothing", keys, err)
		}
		// A prefix that no valid key can have lists nothing rather than walking out of the bucket.
		for _, prefix := range []string{"../", "../../", "/", "a//"} {
			if keys, err := b.List(t.Context(), prefix); err != nil || len(keys) != 0 {
				t.Errorf("List %q: got %q, %v; want nothing", prefix, keys, err)
			}
		}
	})
}

func TestInvalidBucketName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "..", ".hidden", "a/b", "Upper", strings.Repeat("b", 64)} {
		if _, err := folderblobs.New(t.TempDir(), name, folderblobs.Options{}); err == nil {
			t.Errorf("New with bucket %q: got no error, want one", name)
		}
	}
}

func TestHandlerRefusals(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, m mode) {
		b, srv := serve(t, t.TempDir(), "internal", m.opts(t, folderblobs.Options{MaxBodyBytes: 1024}))
		ctx := t.Context()
		if err := b.Put(ctx, "exec/r/0001/exec.zip", []byte("zip")); err != nil {
			t.Fatalf("Put: %v", err)
		}
		getURL, err := b.PresignGet(ctx, "exec/r/0001/exec.zip", time.Minute)
		if err != nil {
			t.Fatalf("PresignGet: %v", err)
		}
		missingURL, err := b.PresignGet(ctx, "exec/r/0002/exec.zip", time.Minute)
		if err != nil {
			t.Fatalf("PresignGet: %v", err)
		}
		folderURL, err := b.PresignGet(ctx, "exec/r", time.Minute)
		if err != nil {
			t.Fatalf("PresignGet: %v", err)
		}
		putURL, err := b.PresignPut(ctx, "logs/r/0001/1.log", time.Minute)
		if err != nil {
			t.Fatalf("PresignPut: %v", err)
		}
		noQuery, _, _ := strings.Cut(getURL, "?")
		tests := []struct {
			name   string
			method string
			url    string
			body   []byte
			want   int
		}{
			{"GET", http.MethodGet, getURL, nil, http.StatusOK},
			{"missing object", http.MethodGet, missingURL, nil, http.StatusNotFound},
			{"folder, not an object", http.MethodGet, folderURL, nil, http.StatusNotFound},
			{"unknown bucket", http.MethodGet, strings.Replace(getURL, "/internal/", "/other/", 1), nil, http.StatusNotFound},
			{"no signature", http.MethodGet, noQuery, nil, http.StatusForbidden},
			{"bad expiry", http.MethodGet, strings.Replace(getURL, "X-Expires=", "X-Expires=x", 1), nil, http.StatusForbidden},
			{"later expiry than signed", http.MethodGet, strings.Replace(getURL, "X-Expires=", "X-Expires=9", 1), nil, http.StatusForbidden},
			{"DELETE", http.MethodDelete, getURL, nil, http.StatusMethodNotAllowed},
			{"POST", http.MethodPost, putURL, []byte("x"), http.StatusMethodNotAllowed},
			{"HEAD", http.MethodHead, getURL, nil, http.StatusMethodNotAllowed},
			{"body over the limit", http.MethodPut, putURL, bytes.Repeat([]byte("x"), 1025), http.StatusRequestEntityTooLarge},
			{"body at the limit", http.MethodPut, putURL, bytes.Repeat([]byte("x"), 1024), http.StatusOK},
			{"invalid key", http.MethodGet, srv.URL + "/blobs/internal/a/.put-1", nil, http.StatusBadRequest},
		}
		for _, tt := range tests {
			if code, msg := httpDo(t, tt.method, tt.url, tt.body); code != tt.want {
				t.Errorf("%s: status %d (%s), want %d", tt.name, code, msg, tt.want)
			}
		}
	})
}

// A body streamed without a Content-Length is cut at the limit too, and leaves nothing behind.
func TestStreamedBodyOverLimit(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		b, _ := serve(t, dir, "internal", m.opts(t, folderblobs.Options{MaxBodyBytes: 1 << 10}))
		u, err := b.PresignPut(t.Context(), "logs/r/0001/1.log", time.Minute)
		if err != nil {
			t.Fatalf("PresignPut: %v", err)
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, u, io.LimitReader(zeros{}, 1<<20))
		if err != nil {
			t.Fatalf("new request: %v", err)
		}
		req.ContentLength = -1 // chunked: the server learns the size only by reading
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("chunked PUT over the limit: status %d, want 413", resp.StatusCode)
			}
		} // else the server closed the connection while the client was still sending: refused too
		if _, err := b.Get(t.Context(), "logs/r/0001/1.log"); !errors.Is(err, blobs.ErrNotFound) {
			t.Fatalf("Get after a refused PUT: got %v, want blobs.ErrNotFound", err)
		}
		if files := filesUnder(t, filepath.Join(dir, "internal")); len(files) != 0 {
			t.Fatalf("files left after a refused PUT: %q", files)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func filesUnder(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return files
}

func TestExpiryFollowsClock(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b, _ := serve(t, t.TempDir(), "internal", folderblobs.Options{Clock: clock})
	if err := b.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	u, err := b.PresignGet(t.Context(), "k", time.Hour)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	for _, step := range []struct {
		advance time.Duration
		want    int
	}{
		{0, http.StatusOK},
		{time.Hour - time.Second, http.StatusOK},
		{time.Second, http.StatusForbidden},
	} {
		mu.Lock()
		now = now.Add(step.advance)
		mu.Unlock()
		if code, msg := httpDo(t, http.MethodGet, u, nil); code != step.want {
			t.Fatalf("GET at %v: status %d (%s), want %d", clock(), code, msg, step.want)
		}
	}
}

func TestSigningKeySurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, firstSrv := serve(t, dir, "internal", folderblobs.Options{})
	if err := first.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	u, err := first.PresignGet(t.Context(), "k", time.Hour)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, ".signing-key"))
	if err != nil {
		t.Fatalf("stat signing key: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("signing key mode: got %v, want 0600", mode)
	}
	firstSrv.Close()

	// A new process on the same folder honours the URL; one on another folder does not.
	_, again := serve(t, dir, "internal", folderblobs.Options{})
	_, stranger := serve(t, t.TempDir(), "internal", folderblobs.Options{})
	for _, tt := range []struct {
		srv  *httptest.Server
		want int
	}{{again, http.StatusOK}, {stranger, http.StatusForbidden}} {
		moved := strings.Replace(u, firstSrv.URL, tt.srv.URL, 1)
		if code, msg := httpDo(t, http.MethodGet, moved, nil); code != tt.want {
			t.Errorf("GET on %s: status %d (%s), want %d", tt.srv.URL, code, msg, tt.want)
		}
	}
}

func TestGivenSigningKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, _ := serve(t, dir, "internal", folderblobs.Options{SigningKey: []byte("0123456789abcdef0123456789abcdef")})
	if _, err := b.PresignGet(t.Context(), "k", time.Minute); err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".signing-key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat key file with a given key: got %v, want no file", err)
	}
}

func TestPresignNeedsBaseURL(t *testing.T) {
	t.Parallel()
	b, err := folderblobs.New(t.TempDir(), "internal", folderblobs.Options{BaseURL: func() string { return "" }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if u, err := b.PresignPut(t.Context(), "k", time.Minute); err == nil {
		t.Fatalf("PresignPut with no base URL: got %q, want an error", u)
	}
}

func TestLayoutOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := folderblobs.New(dir, "internal", folderblobs.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := t.Context()
	for _, key := range []string{"logs/r/0001/1.log", "logs/r/0001/2.log", "top"} {
		if err := b.Put(ctx, key, []byte(key)); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	// The first two segments are folders; the rest is one escaped file name.
	got, err := os.ReadFile(filepath.Join(dir, "internal", "logs", "r", "0001%2F1.log"))
	if err != nil || string(got) != "logs/r/0001/1.log" {
		t.Fatalf("object file: got %q, %v; want its body under logs/r as 0001%%2F1.log", got, err)
	}
	if keys, err := b.List(ctx, "logs/r/0001/"); err != nil || !slices.Equal(keys, []string{"logs/r/0001/1.log", "logs/r/0001/2.log"}) {
		t.Fatalf("List: got %q, %v", keys, err)
	}
	// Deleting the last objects of a run leaves no empty folders behind.
	for _, key := range []string{"logs/r/0001/1.log", "logs/r/0001/2.log"} {
		if err := b.Delete(ctx, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if files := filesUnder(t, filepath.Join(dir, "internal")); !slices.Equal(files, []string{"top"}) {
		t.Fatalf("bucket folder after deletes: got %q, want [top]", files)
	}
}

// Puts and deletes racing under one folder: pruning a folder must not fail a Put into it.
func TestConcurrentPutAndDelete(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, m mode) {
		b, err := folderblobs.New(t.TempDir(), "internal", m.opts(t, folderblobs.Options{}))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ctx := t.Context()
		var wg sync.WaitGroup
		errs := make(chan error, 400)
		for i := range 4 {
			wg.Go(func() {
				for j := range 100 {
					key := "callbacks/r/0001/" + string(rune('a'+i)) + "/" + string(rune('a'+j%26))
					if err := b.Put(ctx, key, []byte("x")); err != nil {
						errs <- err
						return
					}
					if err := b.Delete(ctx, key); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// A key cannot be an object and a folder of objects at once; such a Put fails and harms nothing.
func TestKeyFolderConflict(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, m mode) {
		b, err := folderblobs.New(t.TempDir(), "internal", m.opts(t, folderblobs.Options{}))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ctx := t.Context()
		if err := b.Put(ctx, "a/b", []byte("ab")); err != nil {
			t.Fatalf("Put: %v", err)
		}
		for _, key := range []string{"a", "a/b/c"} {
			if err := b.Put(ctx, key, []byte("x")); err == nil {
				t.Errorf("Put %q beside a/b: got no error, want one", key)
			}
		}
		keys, err := b.List(ctx, "")
		if err != nil || !slices.Equal(keys, []string{"a/b"}) {
			t.Fatalf("List after refused puts: got %q, %v; want [a/b]", keys, err)
		}
	})
}
