// Package tests holds end-to-end tests: each starts the real iac-ci binary, built once per test
// run, as a newcomer or a webhook sender would use it.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/sandbox"
)

// binary is the iac-ci built for this test run.
var binary string

// repoRoot is the repository's top folder.
var repoRoot string

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	repoRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "iac-ci-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "iac-ci")
	build := exec.Command("go", "build", "-o", binary, "./cmd/iac-ci")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build iac-ci:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one `iac-ci` invocation did.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// iacci runs the binary to completion with args, in the repository root.
func iacci(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = repoRoot
	// serve asks for an API token; a test that wants none sets IAC_CI_API_TOKEN= in env.
	cmd.Env = append(append(os.Environ(), "IAC_CI_API_TOKEN="+apiToken), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("iac-ci %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// runView is the JSON of `iac-ci run --json` and GET /runs/{id}.
type runView = producers.RunView

func parseView(t *testing.T, s string) runView {
	t.Helper()
	var v runView
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("parse run JSON: %v\n%s", err, s)
	}
	return v
}

func orderStatuses(v runView) map[string]string {
	m := map[string]string{}
	for _, o := range v.Orders {
		m[o.OrderName] = string(o.Status)
	}
	return m
}

// server is a running `iac-ci serve`.
type server struct {
	t      *testing.T
	url    string
	data   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed once the process ended
	err    error         // how it ended; read after done
}

// apiToken is the API token every test server is started with (IAC_CI_API_TOKEN).
const apiToken = "e2e-api-token-5d2a"

// get is http.Get with the API token, as the read routes ask for it.
func get(url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	return http.DefaultClient.Do(req)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer starts `iac-ci serve` on a free port with the data folder and extra args, and
// waits until it answers /healthz. It is stopped (SIGTERM, then SIGKILL) at cleanup unless it
// already ended.
func startServer(t *testing.T, data string, env []string, args ...string) *server {
	t.Helper()
	return startServerAs(t, nil, data, env, args...)
}

// serverUser is a user other than the tests' that a server runs as: a copy of the binary it may
// run, and a folder it may work in.
type serverUser struct {
	cred      *syscall.Credential
	bin, home string
}

// asOrderUser makes a serverUser of the user that orders run as when iac-ci is root, for tests
// of iac-ci run by a user. The tests run as root; the caller checks.
func asOrderUser(t *testing.T) *serverUser {
	t.Helper()
	u, err := sandbox.LookupUser("")
	if err != nil {
		t.Fatal(err)
	}
	home := openDir(t)
	bin := filepath.Join(home, "iac-ci")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return &serverUser{cred: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}, bin: bin, home: home}
}

// startServerAs is startServer, run as user when it is not nil.
func startServerAs(t *testing.T, user *serverUser, data string, env []string, args ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	all := append([]string{"serve", "--addr", addr, "--data", data, "--log-format", "json"}, args...)
	cmd := exec.Command(binary, all...)
	cmd.Dir = repoRoot
	cmd.Env = append(append(os.Environ(), "IAC_CI_API_TOKEN="+apiToken), env...)
	if user != nil {
		cmd = exec.Command(user.bin, all...)
		cmd.Dir = user.home
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + user.home, "TMPDIR=" + user.home, "IAC_CI_API_TOKEN=" + apiToken}, env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: user.cred}
	}
	errb := &lockedBuffer{}
	cmd.Stdout = io.Discard
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, url: "http://" + addr, data: data, cmd: cmd, stderr: errb, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("iac-ci serve ended at start: %v\n%s", s.err, s.log())
		default:
		}
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("iac-ci serve did not answer /healthz\n%s", s.log())
	return nil
}

func (s *server) log() string { return s.stderr.String() }

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// waitExit waits for the server process to end by itself (a crash point) and returns its error.
func (s *server) waitExit(d time.Duration) error {
	select {
	case <-s.done:
		return s.err
	case <-time.After(d):
		s.t.Fatalf("iac-ci serve did not end within %s\n%s", d, s.log())
		return nil
	}
}

// post sends body to path, signed with secret when secret is not empty.
func (s *server) post(path string, body []byte, secret string, headers map[string]string) (int, map[string]any) {
	s.t.Helper()
	code, out, err := s.tryPost(path, body, secret, headers)
	if err != nil {
		s.t.Fatal(err)
	}
	return code, out
}

// tryPost is post returning the request's error, for a server that may die before it answers.
func (s *server) tryPost(path string, body []byte, secret string, headers map[string]string) (int, map[string]any, error) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("X-Hub-Signature-256", producers.Sign([]byte(secret), body))
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out, nil
}

// getJSON reads a JSON answer of 200 into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// historyEvent is an entry of GET /runs/{id}/events.
type historyEvent struct {
	OrderName string `json:"order_name"`
	Type      string `json:"event_type"`
	Status    string `json:"status"`
	Details   string `json:"details"`
}

// history reads a run's history.
func (s *server) history(runID string) []historyEvent {
	s.t.Helper()
	var h struct {
		Events []historyEvent `json:"events"`
	}
	getJSON(s.t, s.url+"/runs/"+runID+"/events", &h)
	return h.Events
}

// waitRun polls GET /runs/{id} until the run is terminal and its done object is written.
func (s *server) waitRun(runID string, d time.Duration) runView {
	s.t.Helper()
	deadline := time.Now().Add(d)
	var last runView
	for time.Now().Before(deadline) {
		resp, err := get(s.url + "/runs/" + runID)
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				last = parseView(s.t, string(data))
				if last.Status.Terminal() {
					done, derr := get(s.url + "/done/" + runID)
					if derr == nil {
						done.Body.Close()
						if done.StatusCode == 200 {
							return last
						}
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("run %s did not end within %s; last seen %+v\n%s", runID, d, last, s.log())
	return last
}

// lockedBuffer serializes writes from the process's output copier and reads by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openDir makes a folder that orders' commands may write in and read from: when the tests run as
// root, commands run as the order user, who may pass through the test's temporary folder and
// use this one.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// running returns the live processes (not zombies) whose environment holds marker: how a test
// finds an order's background process, whose pid inside the order's PID namespace means nothing
// outside it.
func running(t *testing.T, marker string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), marker) {
			continue
		}
		if alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// requireGone waits a little for the processes whose environment holds marker to end, and fails
// (killing them) if any is left.
func requireGone(t *testing.T, marker, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	left := running(t, marker)
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		left = running(t, marker)
	}
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(left) > 0 {
		t.Fatalf("processes %v (%s) outlived %s", left, marker, what)
	}
}
