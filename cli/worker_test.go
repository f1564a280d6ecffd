package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/cli"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/sealing"
)

const (
	workerSecret = "w0rker-s3cret-value-4410"
	workerRunID  = "20260101T000000Z-00000000feedbeef"
)

// workerSetup is one attempt handed to `iac-ci worker`: a bundle in a bucket served over HTTP,
// the attempt's presigned URLs, and the run key in a file.
type workerSetup struct {
	bucket  *folderblobs.Bucket
	env     map[string]string
	keyFile string

	mu       sync.Mutex
	notified int
}

func setupWorker(t *testing.T, cmds ...string) *workerSetup {
	t.Helper()
	dir := t.TempDir()
	s := &workerSetup{}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var err error
	s.bucket, err = folderblobs.New(dir, "internal", folderblobs.Options{
		BaseURL: func() string { return srv.URL },
		Notify: func(context.Context, []byte) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.notified++
			return nil
		},
	})
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	mux.Handle("/blobs/", folderblobs.Handler(s.bucket))

	key, err := sealing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealing.Seal(map[string]string{"DB_PASSWORD": workerSecret, "PLAIN": "plain"}, key.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	m := bundle.Manifest{RunID: workerRunID, TraceID: "abc12", FlowID: "tester:abc12-exec", OrderName: "unit", QueueID: "unit",
		OrderNum: 1, Target: domain.TargetCodeBuild, Cmds: cmds, Timeout: 30,
		EnvNames: []string{"CALLBACK_URL", "DB_PASSWORD", "PLAIN"}, SecretNames: []string{"DB_PASSWORD"}, CreatedAt: time.Now().UTC()}
	exec, _, err := bundle.Build(m, sealed, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.bucket.Put(ctx, blobs.ExecKey(workerRunID, 1), exec); err != nil {
		t.Fatal(err)
	}
	s.keyFile = filepath.Join(dir, "run.key")
	if err := os.WriteFile(s.keyFile, []byte(key.Identity+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	presign := func(get bool, key string) string {
		var u string
		var err error
		if get {
			u, err = s.bucket.PresignGet(ctx, key, time.Hour)
		} else {
			u, err = s.bucket.PresignPut(ctx, key, time.Hour)
		}
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	s.env = map[string]string{
		consumers.EnvBundleURL:   presign(true, blobs.ExecKey(workerRunID, 1)),
		consumers.EnvCallbackURL: presign(false, blobs.ResultKey(workerRunID, 1, 2)),
		consumers.EnvLogURL:      presign(false, blobs.LogKey(workerRunID, 1, 2)),
		consumers.EnvKeyFile:     s.keyFile,
	}
	return s
}

// run runs `iac-ci worker` in this process with the setup's environment.
func (s *workerSetup) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Main(t.Context(), append([]string{"worker"}, args...), func(k string) string { return s.env[k] }, nil, &out, &errOut)
	t.Logf("iac-ci worker: exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

func (s *workerSetup) result(t *testing.T) domain.Result {
	t.Helper()
	data, err := s.bucket.Get(t.Context(), blobs.ResultKey(workerRunID, 1, 2))
	if err != nil {
		t.Fatalf("result.json: %v", err)
	}
	var r domain.Result
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("result.json: %v", err)
	}
	return r
}

// urlSecrets are the parts of the setup's URLs that make them credentials.
func (s *workerSetup) urlSecrets() []string {
	var out []string
	for _, k := range []string{consumers.EnvBundleURL, consumers.EnvCallbackURL, consumers.EnvLogURL} {
		out = append(out, s.env[k])
		if _, q, ok := strings.Cut(s.env[k], "?"); ok {
			out = append(out, q)
		}
	}
	return out
}

func TestWorkerDeliversResultAndLog(t *testing.T) {
	t.Parallel()
	s := setupWorker(t,
		`echo "password=$DB_PASSWORD"`,
		`echo "bundle=${IAC_CI_BUNDLE_URL:-none} log=${IAC_CI_LOG_URL:-none}"`,
		// Longer than the tail, so the whole log is stored through the log URL.
		`i=0; while [ $i -lt 300 ]; do echo "line $i of a long log"; i=$((i+1)); done`,
	)
	code, stdout, stderr := s.run(t)
	if code != 0 {
		t.Fatalf("exit code: got %d, want 0", code)
	}
	r := s.result(t)
	if r.Status != domain.OrderSucceeded || r.ExitCode != 0 || r.RunID != workerRunID || r.OrderNum != 1 || r.Attempt != 2 {
		t.Fatalf("result: got %s exit %d for %s/%d/%d, want succeeded 0 for %s/1/2 (ids from the callback URL)",
			r.Status, r.ExitCode, r.RunID, r.OrderNum, r.Attempt, workerRunID)
	}
	if want := blobs.LogKey(workerRunID, 1, 2); r.LogKey != want {
		t.Fatalf("result's log key: got %q, want %q", r.LogKey, want)
	}
	log, err := s.bucket.Get(t.Context(), r.LogKey)
	if err != nil {
		t.Fatalf("log: %v", err)
	}
	for _, want := range []string{"password=***", "bundle=none log=none", "line 299 of a long log"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	s.mu.Lock()
	notified := s.notified
	s.mu.Unlock()
	if notified != 1 {
		t.Fatalf("result notifications: got %d, want 1", notified)
	}
	if !strings.Contains(stdout, "succeeded") {
		t.Fatalf("stdout: got %q, want the order's status", stdout)
	}
	everything := string(log) + r.LogTail + stdout + stderr
	for _, v := range append(s.urlSecrets(), workerSecret) {
		if strings.Contains(everything, v) {
			t.Fatalf("a secret or presigned URL appears in the log, the result or the worker's output: %q", v)
		}
	}
}

func TestWorkerFailedOrderIsStillDelivered(t *testing.T) {
	t.Parallel()
	s := setupWorker(t, "echo trying", "exit 3")
	if code, _, _ := s.run(t); code != 0 {
		t.Fatalf("exit code: got %d, want 0 (the result was delivered)", code)
	}
	if r := s.result(t); r.Status != domain.OrderFailed || r.ExitCode != 3 {
		t.Fatalf("result: got %s exit %d, want failed 3", r.Status, r.ExitCode)
	}
}

func TestWorkerWithoutBundleDeliversFailure(t *testing.T) {
	t.Parallel()
	s := setupWorker(t, "true")
	if err := s.bucket.Delete(t.Context(), blobs.ExecKey(workerRunID, 1)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := s.run(t)
	if code != 0 {
		t.Fatalf("exit code: got %d, want 0", code)
	}
	if r := s.result(t); r.Status != domain.OrderFailed || !strings.Contains(r.Reason, "bundle") {
		t.Fatalf("result: got %s (%q), want failed naming the bundle", r.Status, r.Reason)
	}
	if !strings.Contains(stderr, "404") {
		t.Fatalf("stderr: got %q, want the download's 404", stderr)
	}
}

func TestWorkerUndeliverableResultExitsNonZero(t *testing.T) {
	t.Parallel()
	s := setupWorker(t, "true")
	// A callback URL whose signature does not match is refused with 403, as an expired one is.
	tampered := strings.Replace(s.env[consumers.EnvCallbackURL], "X-Signature=", "X-Signature=00", 1)
	if tampered == s.env[consumers.EnvCallbackURL] {
		t.Fatalf("the callback URL has no X-Signature to tamper with: %s", tampered)
	}
	s.env[consumers.EnvCallbackURL] = tampered
	code, _, stderr := s.run(t)
	if code != cli.ExitError {
		t.Fatalf("exit code: got %d, want %d", code, cli.ExitError)
	}
	if !strings.Contains(stderr, "could not be delivered") {
		t.Fatalf("stderr: got %q, want it to say the result could not be delivered", stderr)
	}
	for _, v := range s.urlSecrets() {
		if strings.Contains(stderr, v) {
			t.Fatalf("stderr quotes a presigned URL: %q", stderr)
		}
	}
}

func TestWorkerRefusesBadInputs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(env map[string]string)
		want   string
	}{
		{"no bundle URL", func(env map[string]string) { delete(env, consumers.EnvBundleURL) }, consumers.EnvBundleURL},
		{"no callback URL", func(env map[string]string) { delete(env, consumers.EnvCallbackURL) }, consumers.EnvCallbackURL},
		{"no run key", func(env map[string]string) { delete(env, consumers.EnvKeyFile) }, consumers.EnvRunKeyParameter},
		{"attempt not the callback URL's", func(env map[string]string) { env[consumers.EnvAttempt] = "3" }, "does not match"},
		{"not a URL", func(env map[string]string) { env[consumers.EnvLogURL] = "ftp:nowhere" }, consumers.EnvLogURL + " is not an http(s) URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := setupWorker(t, "true")
			c.change(s.env)
			code, _, stderr := s.run(t)
			if code != cli.ExitRejected || !strings.Contains(stderr, c.want) {
				t.Fatalf("got exit %d and %q, want %d naming %q", code, stderr, cli.ExitRejected, c.want)
			}
			if _, err := s.bucket.Get(t.Context(), blobs.ResultKey(workerRunID, 1, 2)); err == nil {
				t.Fatal("a refused invocation delivered a result")
			}
		})
	}
}
