package codesource

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/domain"
)

const testToken = "ghs_test0123456789abcdefTOKEN"

// gitServer is a repository served over git's smart HTTP protocol by git's own http-backend,
// behind a check for GitHub-style token authentication.
type gitServer struct {
	url      string
	repo     string       // owner/name
	first    string       // the first commit
	head     string       // the default branch head (a second commit)
	sessions atomic.Int64 // fetch sessions: GET .../info/refs?service=git-upload-pack
	packs    atomic.Int64 // POST .../git-upload-pack
	denied   atomic.Int64 // requests answered 401
}

func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t testing.TB, path, body string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// newGitServer builds acme/infra with two commits: the first has network/ and dns/, the second
// changes network/main.tf.
func newGitServer(t *testing.T) *gitServer {
	t.Helper()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	s := &gitServer{repo: "acme/infra"}

	runGit(t, root, "init", "--quiet", "-b", "main", work)
	writeFile(t, filepath.Join(work, "network/main.tf"), "# network v1\n", 0o644)
	writeFile(t, filepath.Join(work, "network/plan.sh"), "#!/bin/sh\ntofu plan\n", 0o755)
	writeFile(t, filepath.Join(work, "dns/main.tf"), "# dns\n", 0o644)
	if err := os.Symlink("../network/plan.sh", filepath.Join(work, "dns/plan.sh")); err != nil {
		t.Fatal(err)
	}
	runGit(t, work, "add", "-A")
	runGit(t, work, "commit", "--quiet", "-m", "first")
	s.first = runGit(t, work, "rev-parse", "HEAD")
	writeFile(t, filepath.Join(work, "network/main.tf"), "# network v2\n", 0o644)
	runGit(t, work, "commit", "--quiet", "-am", "second")
	s.head = runGit(t, work, "rev-parse", "HEAD")

	projects := filepath.Join(root, "projects")
	runGit(t, root, "clone", "--quiet", "--bare", work, filepath.Join(projects, s.repo+".git"))

	execPath := runGit(t, root, "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + projects, "GIT_HTTP_EXPORT_ALL=1"},
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+testToken))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			s.denied.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs") && r.URL.Query().Get("service") == "git-upload-pack":
			s.sessions.Add(1)
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			s.packs.Add(1)
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *gitServer) fetcher(t *testing.T) *Fetcher {
	return &Fetcher{WorkDir: t.TempDir(), GitBaseURL: s.url, GitToken: testToken}
}

func readString(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGitOrdersShareOneFetch(t *testing.T) {
	t.Parallel()
	s := newGitServer(t)
	f := s.fetcher(t)
	job := domain.Job{GitRepo: s.repo, CommitHash: s.first, Orders: []domain.Order{
		{OrderName: "network", GitFolder: "network"},
		{OrderName: "dns", GitFolder: "dns"},
		{OrderName: "network-again", GitFolder: "network"},
		{OrderName: "latest", GitFolder: "network", CommitHash: ""},
	}}

	// Two orders of one repository and commit at once: one fetch.
	dirs := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { dirs[i], errs[i] = f.Dir(t.Context(), job, job.Orders[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Dir(%s): %v", job.Orders[i].OrderName, err)
		}
	}
	if got := s.sessions.Load(); got != 1 {
		t.Errorf("fetch sessions for two orders: got %d, want 1", got)
	}
	packs := s.packs.Load()
	if packs == 0 {
		t.Fatalf("no request reached /git-upload-pack")
	}

	network, dns := dirs[0], dirs[1]
	if want := filepath.Join(f.WorkDir, "orders", "0001"); network != want {
		t.Errorf("network folder: got %s, want %s", network, want)
	}
	if got := readString(t, filepath.Join(network, "main.tf")); got != "# network v1\n" {
		t.Errorf("network/main.tf at the first commit: got %q", got)
	}
	if info, err := os.Stat(filepath.Join(network, "plan.sh")); err != nil || info.Mode().Perm()&0o100 == 0 {
		t.Errorf("plan.sh lost its executable bit: %v, %v", info, err)
	}
	if got := readString(t, filepath.Join(dns, "main.tf")); got != "# dns\n" {
		t.Errorf("dns/main.tf: got %q", got)
	}
	if target, err := os.Readlink(filepath.Join(dns, "plan.sh")); err != nil || target != "../network/plan.sh" {
		t.Errorf("dns/plan.sh symlink: got %q, %v", target, err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, ".git")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s has .git: %v", d, err)
		}
	}

	// A third order of the same repository and commit reuses the fetch and gets its own copy.
	again, err := f.Dir(t.Context(), job, job.Orders[2])
	if err != nil {
		t.Fatal(err)
	}
	if got := s.sessions.Load(); got != 1 || s.packs.Load() != packs {
		t.Errorf("after a third order: %d sessions and %d pack requests, want 1 and %d", got, s.packs.Load(), packs)
	}
	if again == network {
		t.Fatalf("two orders share the folder %s", again)
	}
	writeFile(t, filepath.Join(again, "main.tf"), "changed by the order\n", 0o644)
	if got := readString(t, filepath.Join(network, "main.tf")); got != "# network v1\n" {
		t.Errorf("one order's change reached another's copy: %q", got)
	}

	// An order with a repository and no folder gets the whole checkout, still without .git.
	whole, err := f.Dir(t.Context(), job, domain.Order{OrderName: "whole", GitRepo: s.repo})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(whole, "dns", "main.tf")); err != nil {
		t.Errorf("whole repository: %v", err)
	}
	if _, err := os.Stat(filepath.Join(whole, ".git")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("whole repository copied with .git: %v", err)
	}

	// Without a commit, the default branch head is fetched: a new key, a second fetch.
	latestJob := job
	latestJob.CommitHash = ""
	latest, err := f.Dir(t.Context(), latestJob, latestJob.Orders[3])
	if err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(latest, "main.tf")); got != "# network v2\n" {
		t.Errorf("main.tf at the default branch head: got %q", got)
	}
	if got := s.sessions.Load(); got != 2 {
		t.Errorf("fetch sessions after a second commit: got %d, want 2", got)
	}
}

func TestGitFetchNeedsTheToken(t *testing.T) {
	t.Parallel()
	s := newGitServer(t)
	job := domain.Job{GitRepo: s.repo, Orders: []domain.Order{{OrderName: "network", GitFolder: "network"}}}

	f := &Fetcher{WorkDir: t.TempDir(), GitBaseURL: s.url}
	_, err := f.Dir(t.Context(), job, job.Orders[0])
	if err == nil {
		t.Fatal("Dir without a token: got no error")
	}
	t.Logf("without a token: %v", err)
	if !strings.Contains(err.Error(), s.repo) || s.denied.Load() == 0 {
		t.Errorf("error %q should name %s after the server refused (%d refusals)", err, s.repo, s.denied.Load())
	}
	if s.sessions.Load() != 0 {
		t.Errorf("an unauthenticated fetch got through")
	}

	// The failed fetch is not remembered: with the token, the same Fetcher succeeds.
	f.GitToken = testToken
	if _, err := f.Dir(t.Context(), job, job.Orders[0]); err != nil {
		t.Fatalf("Dir with the token after a failure: %v", err)
	}
}

func TestGitTokenNeverLeaks(t *testing.T) {
	t.Parallel()
	s := newGitServer(t)
	argsLog := filepath.Join(t.TempDir(), "args.log")
	wrapper := filepath.Join(t.TempDir(), "git")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$@\" >> '%s'\nexec git \"$@\"\n", argsLog)
	writeFile(t, wrapper, script, 0o755)

	leaks := func(what, text string) {
		t.Helper()
		for _, secret := range []string{testToken, base64.StdEncoding.EncodeToString([]byte("x-access-token:" + testToken))} {
			if strings.Contains(text, secret) {
				t.Errorf("the token appears in %s: %s", what, text)
			}
		}
	}

	// A fetch the server refuses (a wrong token) and one of a commit that does not exist.
	wrong := &Fetcher{WorkDir: t.TempDir(), GitBaseURL: s.url, GitToken: testToken + "-revoked", gitPath: wrapper}
	job := domain.Job{GitRepo: s.repo, Orders: []domain.Order{{OrderName: "network", GitFolder: "network"}}}
	_, err := wrong.Dir(t.Context(), job, job.Orders[0])
	if err == nil {
		t.Fatal("Dir with a revoked token: got no error")
	}
	leaks("an error", err.Error())
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("the revoked token appears in the error: %v", err)
	}

	f := &Fetcher{WorkDir: t.TempDir(), GitBaseURL: s.url, GitToken: testToken, gitPath: wrapper}
	missing := domain.Job{GitRepo: s.repo, CommitHash: strings.Repeat("0", 40), Orders: job.Orders}
	_, err = f.Dir(t.Context(), missing, missing.Orders[0])
	if err == nil {
		t.Fatal("Dir of a missing commit: got no error")
	}
	t.Logf("missing commit: %v", err)
	leaks("an error", err.Error())

	// A fetch that works leaves no trace of the token on disk or on a command line.
	if _, err := f.Dir(t.Context(), job, job.Orders[0]); err != nil {
		t.Fatal(err)
	}
	leaks("git's arguments", readString(t, argsLog))
	if !strings.Contains(readString(t, argsLog), s.url) {
		t.Fatalf("the git wrapper saw no fetch of %s; the argument check proves nothing", s.url)
	}
	err = filepath.WalkDir(f.WorkDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		leaks(p, readString(t, p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestScrubRemovesEveryFormOfTheCredentials(t *testing.T) {
	t.Parallel()
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n"
	f := &Fetcher{GitToken: testToken, GitSSHKey: key}
	header := "Authorization: Basic " + f.basicCredential()
	out := f.scrub("fatal: " + header + " https://x-access-token:" + testToken + "@host/ " + "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ")
	for _, secret := range []string{testToken, f.basicCredential(), "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"} {
		if strings.Contains(out, secret) {
			t.Errorf("scrubbed text still holds %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "fatal:") {
		t.Errorf("scrub removed more than the credentials: %s", out)
	}
}

func TestGitSSHKeyFile(t *testing.T) {
	t.Parallel()
	s := newGitServer(t)
	envLog := filepath.Join(t.TempDir(), "env.log")
	wrapper := filepath.Join(t.TempDir(), "git")
	// The wrapper records the ssh command and the key file's mode while git runs.
	script := fmt.Sprintf(`#!/bin/sh
key=$(printf '%%s' "$GIT_SSH_COMMAND" | sed -n "s/^ssh -i '\([^']*\)'.*/\1/p")
printf '%%s\n%%s\n%%s\n' "$GIT_SSH_COMMAND" "$key" "$(stat -c %%a "$key")" > '%s'
exec git "$@"
`, envLog)
	writeFile(t, wrapper, script, 0o755)

	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----" // no final newline
	f := &Fetcher{WorkDir: t.TempDir(), GitBaseURL: s.url, GitToken: testToken, GitSSHKey: key, gitPath: wrapper}
	job := domain.Job{GitRepo: s.repo, Orders: []domain.Order{{OrderName: "dns", GitFolder: "dns"}}}
	if _, err := f.Dir(t.Context(), job, job.Orders[0]); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(readString(t, envLog), "\n")
	if len(lines) < 3 {
		t.Fatalf("wrapper log: %q", lines)
	}
	sshCommand, keyFile, mode := lines[0], lines[1], lines[2]
	for _, opt := range []string{"-o IdentitiesOnly=yes", "-o StrictHostKeyChecking=accept-new"} {
		if !strings.Contains(sshCommand, opt) {
			t.Errorf("GIT_SSH_COMMAND %q lacks %s", sshCommand, opt)
		}
	}
	if mode != "600" {
		t.Errorf("key file mode while git ran: got %s, want 600", mode)
	}
	if !strings.HasPrefix(keyFile, f.WorkDir) {
		t.Errorf("key file %q is not in the work folder", keyFile)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("key file left behind after the fetch: %v", err)
	}
}

func TestWriteSSHKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file, err := writeSSHKey(dir, "KEY-BODY")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %v, want 0600", info.Mode().Perm())
	}
	if got := readString(t, file); got != "KEY-BODY\n" {
		t.Errorf("content: got %q, want the key and a final newline", got)
	}
}

func TestGitFolderErrors(t *testing.T) {
	t.Parallel()
	s := newGitServer(t)
	f := s.fetcher(t)
	tests := []struct {
		name  string
		order domain.Order
		want  []string // parts of the error
	}{
		{"missing folder", domain.Order{GitFolder: "storage", CommitHash: s.first}, []string{`"storage"`, s.first}},
		{"climbs out", domain.Order{GitFolder: "../../etc"}, []string{`git_folder "../../etc"`}},
		{"a file", domain.Order{GitFolder: "dns/main.tf", CommitHash: s.first}, []string{`"dns/main.tf"`, "not a folder"}},
		{"bad repo", domain.Order{GitRepo: "--upload-pack=x/y", GitFolder: "dns"}, []string{"git_repo"}},
		{"option as commit", domain.Order{GitFolder: "dns", CommitHash: "--upload-pack=touch"}, []string{"commit_hash"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := domain.Job{GitRepo: s.repo, Orders: []domain.Order{tt.order}}
			_, err := f.Dir(t.Context(), job, tt.order)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	outer := t.TempDir()
	base := filepath.Join(outer, "jobs")
	writeFile(t, filepath.Join(base, "stacks/web/main.tf"), "# web\n", 0o644)
	writeFile(t, filepath.Join(outer, "private/key"), "x", 0o600)
	if err := os.Symlink("../private", filepath.Join(base, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("stacks/web", filepath.Join(base, "web")); err != nil {
		t.Fatal(err)
	}
	f := &Fetcher{WorkDir: t.TempDir(), BaseDir: base}

	got, err := f.Dir(t.Context(), domain.Job{}, domain.Order{LocalPath: "web"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(filepath.Join(base, "stacks/web"))
	if got != want {
		t.Errorf("local_path web: got %s, want %s", got, want)
	}

	for _, bad := range []string{"../private", "escape", filepath.Join(outer, "private"), "stacks/web/main.tf", "nope"} {
		if dir, err := f.Dir(t.Context(), domain.Job{}, domain.Order{LocalPath: bad}); err == nil {
			t.Errorf("local_path %q: got %s, want an error", bad, dir)
		} else if !strings.Contains(err.Error(), "local_path") {
			t.Errorf("local_path %q: error %q does not name the field", bad, err)
		}
	}

	// Without its own BaseDir the Fetcher uses the job's.
	jobOnly := &Fetcher{WorkDir: t.TempDir()}
	if _, err := jobOnly.Dir(t.Context(), domain.Job{BaseDir: base}, domain.Order{LocalPath: "stacks/web"}); err != nil {
		t.Errorf("local_path with the job's base folder: %v", err)
	}
	if _, err := jobOnly.Dir(t.Context(), domain.Job{}, domain.Order{LocalPath: "stacks/web"}); err == nil {
		t.Errorf("local_path with no base folder: got no error")
	}
}

func zipBytes(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestS3Location(t *testing.T) {
	t.Parallel()
	objects := map[string][]byte{
		"code/app.zip":  zipBytes(t, map[string]string{"main.tf": "# app\n", "env/prod.tfvars": "x = 1\n"}),
		"code/slip.zip": zipBytes(t, map[string]string{"../../escaped": "owned"}),
	}
	errNoSuchKey := errors.New("no such key")
	f := &Fetcher{WorkDir: t.TempDir(), GetObject: func(_ context.Context, bucket, key string) ([]byte, error) {
		if b, ok := objects[key]; ok && bucket == "artifacts" {
			return b, nil
		}
		return nil, errNoSuchKey
	}}
	job := domain.Job{Orders: []domain.Order{
		{OrderName: "app", S3Location: "s3://artifacts/code/app.zip"},
		{OrderName: "slip", S3Location: "s3://artifacts/code/slip.zip"},
		{OrderName: "gone", S3Location: "s3://artifacts/code/gone.zip"},
	}}

	dir, err := f.Dir(t.Context(), job, job.Orders[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(f.WorkDir, "orders", "0001"); dir != want {
		t.Errorf("folder: got %s, want %s", dir, want)
	}
	if got := readString(t, filepath.Join(dir, "env/prod.tfvars")); got != "x = 1\n" {
		t.Errorf("env/prod.tfvars: got %q", got)
	}

	_, err = f.Dir(t.Context(), job, job.Orders[1])
	var unsafe *bundle.UnsafeError
	if !errors.As(err, &unsafe) {
		t.Errorf("zip slip from s3: got %v, want an *bundle.UnsafeError", err)
	}
	if _, err := os.Stat(filepath.Join(f.WorkDir, "escaped")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the zip slip wrote outside its folder: %v", err)
	}

	if _, err := f.Dir(t.Context(), job, job.Orders[2]); !errors.Is(err, errNoSuchKey) {
		t.Errorf("missing object: got %v, want the GetObject error wrapped", err)
	}
	noStore := &Fetcher{WorkDir: t.TempDir()}
	if _, err := noStore.Dir(t.Context(), job, job.Orders[0]); err == nil {
		t.Errorf("s3_location without GetObject: got no error")
	}
	if _, err := f.Dir(t.Context(), job, domain.Order{S3Location: "https://artifacts/app.zip"}); err == nil {
		t.Errorf("s3_location that is not s3://: got no error")
	}
}

func TestNoCodeSource(t *testing.T) {
	t.Parallel()
	f := &Fetcher{WorkDir: t.TempDir()}
	// A job's git_repo alone is for pull-request tracking, not a code source.
	dir, err := f.Dir(t.Context(), domain.Job{GitRepo: "acme/infra"}, domain.Order{Cmds: []string{"true"}})
	if err != nil || dir != "" {
		t.Errorf("Dir: got %q, %v, want no folder and no error", dir, err)
	}
	if _, err := f.Dir(t.Context(), domain.Job{}, domain.Order{LocalPath: "a", S3Location: "s3://b/k.zip"}); err == nil {
		t.Errorf("two code sources: got no error")
	}
}
