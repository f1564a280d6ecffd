package consumers_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/sealing"
)

// Secret values of the tests. dbPassword is split into two plain variables as well, so a command
// can print it in two separate writes.
const (
	dbPassword = "hunter2-correct-horse"
	dbHalf1    = "hunter2-"
	dbHalf2    = "correct-horse"
	apiToken   = "tok_0123456789abcdef"
)

// callbackSink is the result endpoint: it answers each PUT with the next status of its script
// (200 once the script is used up) and keeps every body it was sent.
type callbackSink struct {
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
}

func (c *callbackSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bodies = append(c.bodies, body)
	status := http.StatusOK
	if len(c.statuses) > 0 {
		status, c.statuses = c.statuses[0], c.statuses[1:]
	}
	if r.Method != http.MethodPut {
		status = http.StatusMethodNotAllowed
	}
	w.WriteHeader(status)
}

func (c *callbackSink) received() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.bodies...)
}

// order is what a test case seals into a bundle.
type order struct {
	cmds        []string
	timeout     int
	env         map[string]string
	secretNames []string
	code        map[string]string // files of the code folder
}

func (o order) withDefaults() order {
	if o.timeout == 0 {
		o.timeout = 30
	}
	if o.env == nil {
		o.env = map[string]string{"DB_PASSWORD": dbPassword, "API_TOKEN": apiToken, "HALF1": dbHalf1, "HALF2": dbHalf2, "PLAIN": "order"}
	}
	if o.secretNames == nil {
		o.secretNames = []string{"API_TOKEN", "DB_PASSWORD"}
	}
	return o
}

func testManifest(o order) bundle.Manifest {
	names := []string{"CALLBACK_URL"}
	for k := range o.env {
		names = append(names, k)
	}
	return bundle.Manifest{RunID: "run-exec-test", TraceID: "abc123", FlowID: "tester:abc123-exec", OrderName: "unit",
		QueueID: "unit", OrderNum: 1, Target: domain.TargetCodeBuild, Cmds: o.cmds, Timeout: o.timeout,
		EnvNames: names, SecretNames: o.secretNames, CreatedAt: time.Now().UTC()}
}

// buildBundle seals o's environment for key and builds its exec.zip the way intake does.
func buildBundle(t *testing.T, o order, key sealing.Key) []byte {
	t.Helper()
	sealed, err := sealing.Seal(o.env, key.Recipient)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	codeDir := ""
	if len(o.code) > 0 {
		codeDir = t.TempDir()
		for name, body := range o.code {
			if err := os.WriteFile(filepath.Join(codeDir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	exec, _, err := bundle.Build(testManifest(o), sealed, codeDir)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return exec
}

// member is one entry of a hand-made, hostile bundle. A non-nil raw is a deflate stream written
// as it is, its headers claiming size uncompressed bytes.
type member struct {
	name string
	body string
	mode fs.FileMode
	raw  []byte
	size uint64
}

// hostileBundle writes a valid manifest and sealed environment, then the given members.
func hostileBundle(t *testing.T, key sealing.Key, members ...member) []byte {
	t.Helper()
	o := order{cmds: []string{"true"}}.withDefaults()
	manifest, err := json.Marshal(testManifest(o))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealing.Seal(o.env, key.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]member{
		{name: bundle.ManifestName, body: string(manifest), mode: 0o600},
		{name: bundle.SealedName, body: string(sealed), mode: 0o600},
	}, members...)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range all {
		h := &zip.FileHeader{Name: m.name, Method: zip.Deflate}
		h.SetMode(m.mode)
		var w io.Writer
		if m.raw != nil {
			h.CompressedSize64, h.UncompressedSize64 = uint64(len(m.raw)), m.size
			w, err = zw.CreateRaw(h)
			if err == nil {
				_, err = w.Write(m.raw)
			}
		} else {
			w, err = zw.CreateHeader(h)
			if err == nil {
				_, err = io.WriteString(w, m.body)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gibOfZeros is a deflate stream that inflates to 1 GiB of zeros, about 1.3 MB: one compressed
// MiB, flushed (so it ends on a byte boundary and is not final), repeated 1024 times, then an
// empty final block.
func gibOfZeros(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return append(bytes.Repeat(buf.Bytes(), 1024), 0x03, 0x00)
}

// running returns the live processes (not zombies) whose environment holds marker: how a test
// finds a command's background child, whose pid inside the command's PID namespace means
// nothing outside it.
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
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The state follows the command name, which is in parentheses and may hold spaces.
		if rest := string(stat[bytes.LastIndexByte(stat, ')')+1:]); !strings.HasPrefix(strings.TrimSpace(rest), "Z") {
			out = append(out, pid)
		}
	}
	return out
}

// openDir makes a folder outside the working directory that the commands may write in: when
// the tests run as root, commands run as the order user, who may pass through the test's temporary
// folder and write in this one.
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

// outcome is what one Execute did, as the test sees it.
type outcome struct {
	res       domain.Result
	err       error
	stored    []byte   // what PutLog stored; nil when it was not called
	log       string   // the whole log: what PutLog stored, or the tail when nothing was stored
	delivered [][]byte // the bodies the callback endpoint received
	callback  string
	out       string // a folder outside the working directory, where commands may leave proof
	took      time.Duration
}

// setup is one case's order and whatever of the attempt it replaces.
type setup struct {
	order    order
	bundle   func(t *testing.T, key sealing.Key) []byte // replaces the bundle built from order
	identity func(key sealing.Key) string               // replaces the run's own identity
	statuses []int                                      // the callback endpoint's answers
}

// execute seals and bundles the case's order for a fresh run key, and runs one attempt of it
// against a callback endpoint of its own.
func execute(t *testing.T, s setup) outcome {
	t.Helper()
	key, err := sealing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sink := &callbackSink{statuses: s.statuses}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	out := openDir(t)
	o := s.order.withDefaults()
	o.cmds = slices.Clone(o.cmds)
	for i, c := range o.cmds {
		o.cmds[i] = strings.ReplaceAll(c, "$OUT", out)
	}
	var zipData []byte
	if s.bundle != nil {
		zipData = s.bundle(t, key)
	} else {
		zipData = buildBundle(t, o, key)
	}
	identity := key.Identity
	if s.identity != nil {
		identity = s.identity(key)
	}
	var (
		mu     sync.Mutex
		stored []byte
	)
	task := consumers.Task{
		RunID: "run-exec-test", OrderNum: 1, Attempt: 1, Bundle: zipData, Identity: identity,
		CallbackURL: srv.URL + "/callbacks/run-exec-test/0001/1/result.json?X-Signature=cb-signature-0123456789",
		LogKey:      "logs/run-exec-test/0001/1.log",
		PutLog: func(_ context.Context, log []byte) error {
			mu.Lock()
			defer mu.Unlock()
			stored = append([]byte(nil), log...)
			return nil
		},
		WorkRoot:   t.TempDir(),
		BaseEnv:    []string{"PATH=" + os.Getenv("PATH"), "PLAIN=base", "FROM_BASE=yes"},
		HTTPClient: srv.Client(),
	}
	start := time.Now()
	res, err := consumers.Execute(t.Context(), task)
	took := time.Since(start)
	// The working directory is gone, whether the order left it empty or not.
	if left, rerr := os.ReadDir(task.WorkRoot); rerr != nil || len(left) != 0 {
		t.Errorf("work root after the attempt: %v %v, want it empty", left, rerr)
	}
	mu.Lock()
	defer mu.Unlock()
	got := outcome{res: res, err: err, stored: stored, log: string(stored), delivered: sink.received(), callback: task.CallbackURL, out: out, took: took}
	if res.LogKey == "" {
		got.log = res.LogTail // a log that fits in the tail may travel whole in the result
	}
	return got
}

func TestExecute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		setup      setup
		wantStatus domain.OrderStatus
		wantExit   int
		wantReason string // part of the result's reason; "" wants none
		check      func(t *testing.T, o outcome)
	}{
		{
			name: "success",
			setup: setup{order: order{
				code: map[string]string{"main.tf": "# code"},
				cmds: []string{
					`test "$DB_PASSWORD" = '` + dbPassword + `'`,
					`test "$API_TOKEN" = '` + apiToken + `'`,
					`test -f main.tf && test "$PLAIN" = order && test "$FROM_BASE" = yes`,
					// Home is writable: iac-ci's own, or the working directory for the order user.
					`touch "$HOME/.written" && test -w "$HOME"`,
					`echo all good`,
				},
			}},
			wantStatus: domain.OrderSucceeded,
			check: func(t *testing.T, o outcome) {
				if !strings.Contains(o.log, "all good") {
					t.Fatalf("log lacks the command's output:\n%s", o.log)
				}
			},
		},
		{
			name:       "failing command stops the order",
			setup:      setup{order: order{cmds: []string{"echo first", "exit 3", "touch $OUT/second"}}},
			wantStatus: domain.OrderFailed, wantExit: 3, wantReason: "command 2 exited with 3",
			check: func(t *testing.T, o outcome) {
				if _, err := os.Stat(filepath.Join(o.out, "second")); err == nil {
					t.Fatalf("the command after the failing one ran")
				}
				if !strings.Contains(o.log, "first") {
					t.Fatalf("log lacks the first command's output:\n%s", o.log)
				}
			},
		},
		{
			name: "timeout kills the process group",
			setup: setup{order: order{timeout: 1, cmds: []string{
				"MARK=$OUT sleep 60 & echo $! > $OUT/pid; wait",
				"touch $OUT/after",
			}}},
			wantStatus: domain.OrderTimedOut, wantExit: -1, wantReason: "timed out",
			check: func(t *testing.T, o outcome) {
				if o.took > 1*time.Second+consumers.KillGrace+5*time.Second {
					t.Errorf("took %s for a 1 s timeout", o.took)
				}
				if _, err := os.ReadFile(filepath.Join(o.out, "pid")); err != nil {
					t.Fatalf("the background child wrote no pid: %v", err)
				}
				deadline := time.Now().Add(5 * time.Second)
				left := running(t, "MARK="+o.out)
				for len(left) > 0 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					left = running(t, "MARK="+o.out)
				}
				for _, pid := range left {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					t.Fatalf("the background child %d outlived the timeout", pid)
				}
				if _, err := os.Stat(filepath.Join(o.out, "after")); err == nil {
					t.Errorf("a command ran after the timeout")
				}
			},
		},
		{
			name: "log masks secret values, also split across writes and on stderr",
			setup: setup{order: order{cmds: []string{
				`echo "db=$DB_PASSWORD token=$API_TOKEN"`,
				`echo "err=$API_TOKEN" >&2`,
				`printf 'split=%s' "$HALF1"; sleep 0.1; printf '%s\n' "$HALF2"`,
				`printf '%s%s\n' "$API_TOKEN" "$DB_PASSWORD"`,
			}}},
			wantStatus: domain.OrderSucceeded,
			check: func(t *testing.T, o outcome) {
				for _, want := range []string{"db=*** token=***", "err=***", "split=***"} {
					if !strings.Contains(o.log, want) {
						t.Errorf("log lacks %q:\n%s", want, o.log)
					}
				}
			},
		},
		{
			name:       "log tail bounded",
			setup:      setup{order: order{cmds: []string{"seq 1 30000", "echo END-OF-LOG"}}},
			wantStatus: domain.OrderSucceeded,
			check: func(t *testing.T, o outcome) {
				if got := len(o.res.LogTail); got > consumers.TailBytes || got < consumers.TailBytes/2 {
					t.Errorf("log tail of %d bytes, want at most %d (and near it)", got, consumers.TailBytes)
				}
				if !strings.HasSuffix(strings.TrimSpace(o.res.LogTail), "END-OF-LOG") {
					t.Errorf("log tail does not end with the log's end: %q", o.res.LogTail[max(0, len(o.res.LogTail)-64):])
				}
				if o.res.LogKey == "" {
					t.Fatalf("a log longer than the tail was not stored")
				}
				if !strings.Contains(o.log, "\n1\n2\n3\n") || !strings.Contains(o.log, "\n30000\n") {
					t.Errorf("stored log is not whole (%d bytes)", len(o.log))
				}
			},
		},
		{
			// The stored log keeps its last MaxLogBytes. Here the cut falls inside a value, 10
			// bytes before its end: those 10 bytes must not be kept unmasked.
			name: "log cut inside a secret value",
			setup: setup{order: order{cmds: []string{
				`printf %s "$DB_PASSWORD"; head -c ` + strconv.Itoa(consumers.MaxLogBytes-10) + ` /dev/zero | tr '\0' y`,
			}}},
			wantStatus: domain.OrderSucceeded,
			check: func(t *testing.T, o outcome) {
				if len(o.stored) < consumers.MaxLogBytes {
					t.Fatalf("stored log of %d bytes, want the last %d kept", len(o.stored), consumers.MaxLogBytes)
				}
				head := string(o.stored[:min(len(o.stored), 256)])
				if strings.Contains(head, dbPassword[len(dbPassword)-10:]) {
					t.Errorf("the cut log starts with the end of a secret value: %q", head)
				}
			},
		},
		{
			name: "zip slip refused",
			setup: setup{bundle: func(t *testing.T, key sealing.Key) []byte {
				return hostileBundle(t, key, member{name: "code/../../escaped.txt", body: "owned", mode: 0o644})
			}},
			wantStatus: domain.OrderFailed, wantExit: -1, wantReason: `bundle refused: bundle entry "code/../../escaped.txt": escapes the working directory`,
		},
		{
			name: "absolute path refused",
			setup: setup{bundle: func(t *testing.T, key sealing.Key) []byte {
				return hostileBundle(t, key, member{name: "/tmp/escaped.txt", body: "owned", mode: 0o644})
			}},
			wantStatus: domain.OrderFailed, wantExit: -1, wantReason: `bundle refused: bundle entry "/tmp/escaped.txt"`,
		},
		{
			name: "symlink out refused",
			setup: setup{bundle: func(t *testing.T, key sealing.Key) []byte {
				return hostileBundle(t, key,
					member{name: "code/etc", body: "../../../../../etc", mode: fs.ModeSymlink | 0o777},
					member{name: "code/main.tf", body: "# code", mode: 0o644})
			}},
			wantStatus: domain.OrderFailed, wantExit: -1, wantReason: `bundle refused: bundle entry "code/etc": symlink target "../../../../../etc" resolves outside the working directory`,
		},
		{
			name: "zip bomb refused",
			setup: setup{bundle: func(t *testing.T, key sealing.Key) []byte {
				zeros := gibOfZeros(t) // three members of 1 GiB each from under 4 MB of zip
				return hostileBundle(t, key,
					member{name: "code/z1", mode: 0o644, raw: zeros, size: 1 << 30},
					member{name: "code/z2", mode: 0o644, raw: zeros, size: 1 << 30},
					member{name: "code/z3", mode: 0o644, raw: zeros, size: 1 << 30})
			}},
			wantStatus: domain.OrderFailed, wantExit: -1,
			wantReason: "bundle refused: bundle: claims more than the limit of " + strconv.FormatInt(bundle.DefaultLimits.MaxTotalBytes, 10) + " bytes in all",
		},
		{
			name:       "not a zip refused",
			setup:      setup{bundle: func(*testing.T, sealing.Key) []byte { return []byte("this is not a zip archive") }},
			wantStatus: domain.OrderFailed, wantExit: -1, wantReason: "bundle refused: bundle: not a zip archive",
		},
		{
			name:       "bundle gone",
			setup:      setup{bundle: func(*testing.T, sealing.Key) []byte { return nil }},
			wantStatus: domain.OrderFailed, wantExit: -1, wantReason: "the order's bundle could not be read",
		},
		{
			name:       "wrong key",
			setup:      setup{order: order{cmds: []string{"touch $OUT/ran"}}, identity: func(sealing.Key) string { k, _ := sealing.NewKey(); return k.Identity }},
			wantStatus: domain.OrderFailed, wantExit: -1,
			wantReason: "the sealed environment could not be opened: open bundle: the identity is not a recipient of the bundle",
			check: func(t *testing.T, o outcome) {
				if _, err := os.Stat(filepath.Join(o.out, "ran")); err == nil {
					t.Errorf("the commands ran without their environment")
				}
			},
		},
		{
			name:       "run key gone",
			setup:      setup{order: order{cmds: []string{"true"}}, identity: func(sealing.Key) string { return "" }},
			wantStatus: domain.OrderFailed, wantExit: -1,
			wantReason: "the sealed environment could not be opened: open bundle: not an age secret key",
		},
		{
			name: "callback retried on 503 then accepted",
			setup: setup{
				order:    order{cmds: []string{"echo delivered"}},
				statuses: []int{http.StatusServiceUnavailable, http.StatusServiceUnavailable},
			},
			wantStatus: domain.OrderSucceeded,
			check: func(t *testing.T, o outcome) {
				if len(o.delivered) != 3 {
					t.Fatalf("callback received %d PUTs, want 3 (two 503s, then 200)", len(o.delivered))
				}
				if !bytes.Equal(o.delivered[0], o.delivered[2]) {
					t.Errorf("the retried body differs from the first:\n%s\n%s", o.delivered[0], o.delivered[2])
				}
			},
		},
		{
			name: "CALLBACK_URL visible to commands, masked in the log",
			setup: setup{order: order{cmds: []string{
				`printf %s "$CALLBACK_URL" > $OUT/cb`,
				`echo "cb=$CALLBACK_URL"`,
			}}},
			wantStatus: domain.OrderSucceeded,
			check: func(t *testing.T, o outcome) {
				got, err := os.ReadFile(filepath.Join(o.out, "cb"))
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != o.callback {
					t.Fatalf("CALLBACK_URL seen by the command: got %q, want %q", got, o.callback)
				}
				if !strings.Contains(o.log, "cb=***") {
					t.Errorf("log lacks cb=***:\n%s", o.log)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := execute(t, tc.setup)
			if o.err != nil {
				t.Fatalf("Execute: %v", o.err)
			}
			if o.res.Status != tc.wantStatus || o.res.ExitCode != tc.wantExit {
				t.Fatalf("result %s exit %d, want %s exit %d (reason %q)\nlog:\n%s", o.res.Status, o.res.ExitCode, tc.wantStatus, tc.wantExit, o.res.Reason, o.log)
			}
			if tc.wantReason == "" && o.res.Reason != "" {
				t.Errorf("reason %q, want none", o.res.Reason)
			}
			if !strings.Contains(o.res.Reason, tc.wantReason) {
				t.Errorf("reason %q, want it to contain %q", o.res.Reason, tc.wantReason)
			}
			checkDelivered(t, o)
			checkNoSecrets(t, o)
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

// checkDelivered checks that the callback got the result Execute returned, and that the log is
// where the result says.
func checkDelivered(t *testing.T, o outcome) {
	t.Helper()
	if len(o.delivered) == 0 {
		t.Fatalf("no result was delivered")
	}
	var got domain.Result
	if err := json.Unmarshal(o.delivered[len(o.delivered)-1], &got); err != nil {
		t.Fatalf("delivered result: %v", err)
	}
	if got.Status != o.res.Status || got.ExitCode != o.res.ExitCode || got.Reason != o.res.Reason ||
		got.LogTail != o.res.LogTail || got.RunID != "run-exec-test" || got.OrderNum != 1 || got.Attempt != 1 {
		t.Errorf("delivered %+v, want %+v", got, o.res)
	}
	if got.StartedAt.IsZero() || got.FinishedAt.Before(got.StartedAt) {
		t.Errorf("times %s .. %s", got.StartedAt, got.FinishedAt)
	}
	// A log longer than the tail is stored under the task's key; one that fits in the tail
	// travels whole in the result, with no key and no object beside it.
	if len(o.res.LogTail) < consumers.TailBytes && (got.LogKey != "" || o.stored != nil) {
		t.Errorf("a log of %d bytes, whole in the tail, was also stored apart (key %q)", len(o.res.LogTail), got.LogKey)
	}
	switch got.LogKey {
	case "logs/run-exec-test/0001/1.log":
		if len(o.stored) == 0 || !strings.HasSuffix(string(o.stored), o.res.LogTail) {
			t.Errorf("stored log of %d bytes does not end with the tail", len(o.stored))
		}
	case "":
		if o.stored != nil && string(o.stored) != o.res.LogTail {
			t.Errorf("a log was stored but the result names no key")
		}
		if len(o.res.LogTail) >= consumers.TailBytes {
			t.Errorf("the result names no log key, but the tail (%d bytes) may not hold the whole log", len(o.res.LogTail))
		}
	default:
		t.Errorf("log key %q", got.LogKey)
	}
	if o.log == "" {
		t.Errorf("empty log")
	}
}

// checkNoSecrets checks that no secret value, and not the callback URL, is in the stored log,
// the result or the delivered bodies.
func checkNoSecrets(t *testing.T, o outcome) {
	t.Helper()
	res, _ := json.Marshal(o.res)
	places := map[string]string{"stored log": string(o.stored), "log tail": o.res.LogTail, "result": string(res)}
	for i, b := range o.delivered {
		places["delivered body "+strconv.Itoa(i+1)] = string(b)
	}
	for where, text := range places {
		for _, v := range []string{dbPassword, apiToken, o.callback, "cb-signature-0123456789"} {
			if strings.Contains(text, v) {
				t.Errorf("%s holds the secret value %q:\n%s", where, v, text)
			}
		}
	}
}

func TestExecuteCallbackRefusedIsAnError(t *testing.T) {
	t.Parallel()
	o := execute(t, setup{order: order{cmds: []string{"true"}}, statuses: []int{http.StatusForbidden}})
	if o.err == nil {
		t.Fatalf("Execute returned no error for a refused callback")
	}
	if len(o.delivered) != 1 {
		t.Errorf("callback received %d PUTs, want 1: a 403 is not retried", len(o.delivered))
	}
	if strings.Contains(o.err.Error(), o.callback) || strings.Contains(o.err.Error(), "cb-signature") {
		t.Errorf("error holds the callback URL: %v", o.err)
	}
}
