package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunDiamondSucceeds(t *testing.T) {
	t.Parallel()
	r := iacci(t, nil, "run", "examples/diamond.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"ORDER", "plan", "lint", "test", "apply", "succeeded"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if got := strings.Count(r.stdout, "succeeded"); got < 5 { // four orders in the table, and the run line
		t.Errorf("%d mentions of succeeded, want at least 5:\n%s", got, r.stdout)
	}
}

// Every order's commands see the system variables docs/jobs-environment.md lists, ORDER_ID
// being the order's name (given, or derived from its first command) as in the system iac-ci
// replaces.
func TestRunOrdersSeeTheirSystemVariables(t *testing.T) {
	t.Parallel()
	const show = `echo "ORDER_ID=$ORDER_ID ORDER_NUM=$ORDER_NUM RUN_ID=$RUN_ID TRACE_ID=$TRACE_ID FLOW_ID=$FLOW_ID CALLBACK_URL_SET=${CALLBACK_URL:+yes}"`
	path := writeJob(t, t.TempDir(), `username: newcomer
orders:
  - order_name: plan-network
    timeout: 60
    cmds: ['`+show+`', 'test "$ORDER_ID" = plan-network']
  - timeout: 60
    dependencies: [plan-network]
    cmds: ['`+show+`']
`)
	r := iacci(t, nil, "run", "--json", path)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	v := parseView(t, r.stdout)
	if len(v.Orders) != 2 {
		t.Fatalf("orders: %+v", v.Orders)
	}
	for _, o := range v.Orders {
		want := fmt.Sprintf("ORDER_ID=%s ORDER_NUM=%04d RUN_ID=%s TRACE_ID=%s FLOW_ID=%s CALLBACK_URL_SET=yes",
			o.OrderName, o.OrderNum, v.RunID, v.TraceID, v.FlowID)
		if !strings.Contains(o.LogTail, want) {
			t.Errorf("order %s's log: got\n%s\nwant a line %q", o.OrderName, o.LogTail, want)
		}
	}
}

func TestRunJSONOutput(t *testing.T) {
	t.Parallel()
	r := iacci(t, nil, "run", "--json", "examples/diamond.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	v := parseView(t, r.stdout)
	if v.Status != "succeeded" || len(v.Orders) != 4 || v.RunID == "" || v.TraceID == "" || !strings.HasPrefix(v.FlowID, "newcomer:") {
		t.Fatalf("unexpected run: %+v", v)
	}
	for _, o := range v.Orders {
		if o.Status != "succeeded" || o.Attempt != 1 || o.ExitCode == nil || *o.ExitCode != 0 || o.StartedAt == nil || o.FinishedAt == nil {
			t.Errorf("order %+v", o)
		}
	}
	// The diamond's shape: apply started only after lint and test finished.
	by := map[string]int{}
	for i, o := range v.Orders {
		by[o.OrderName] = i
	}
	apply := v.Orders[by["apply"]]
	for _, dep := range []string{"lint", "test"} {
		if d := v.Orders[by[dep]]; apply.StartedAt.Before(*d.FinishedAt) {
			t.Errorf("apply started %s before %s finished %s", apply.StartedAt, dep, d.FinishedAt)
		}
	}
}

func TestRunBlockedFailure(t *testing.T) {
	t.Parallel()
	r := iacci(t, nil, "run", "--json", "examples/blocked-failure.yaml")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	v := parseView(t, r.stdout)
	want := map[string]string{"plan": "failed", "apply": "skipped", "notify": "skipped"}
	got := orderStatuses(v)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s, want %s", k, got[k], w)
		}
	}
	if v.Status != "failed" {
		t.Errorf("run %s, want failed", v.Status)
	}
	if v.Orders[0].ExitCode == nil || *v.Orders[0].ExitCode != 3 {
		t.Errorf("plan exit code %v, want 3", v.Orders[0].ExitCode)
	}
}

func TestRunToleratedFailure(t *testing.T) {
	t.Parallel()
	r := iacci(t, nil, "run", "--json", "examples/tolerated-failure.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	got := orderStatuses(parseView(t, r.stdout))
	if got["cost-estimate"] != "failed" || got["plan"] != "succeeded" {
		t.Fatalf("statuses %v", got)
	}
}

func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	dir := openDir(t)
	pidFile := filepath.Join(dir, "pid")
	job := `username: newcomer
orders:
  - order_name: hang
    timeout: 2
    cmds:
      - "MARK=` + dir + ` sleep 30 & echo $! > ` + pidFile + `; wait"
  - order_name: after
    dependencies: [hang]
    timeout: 60
    cmds: ["echo never"]
`
	path := writeJob(t, dir, job)
	r := iacci(t, nil, "run", "--json", path)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	got := orderStatuses(parseView(t, r.stdout))
	if got["hang"] != "timed_out" || got["after"] != "skipped" {
		t.Fatalf("statuses %v", got)
	}
	if r.took > 15*time.Second {
		t.Errorf("took %s; the timeout is 2 s", r.took)
	}
	if _, err := os.ReadFile(pidFile); err != nil {
		t.Fatal(err)
	}
	// The background sleep was in the order's process group, so it must be gone (or a zombie
	// waiting for whoever adopted it to reap it: dead all the same).
	requireGone(t, "MARK="+dir, "the order's timeout")
}

func TestRunRejectsInvalidJob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	job := `username: newcomer
orders:
  - order_name: a
    timeout: 1200
    execution_target: lambda
    dependencies: [b]
    cmds: ["true"]
  - order_name: b
    dependencies: [a]
    timeout: 10
    cmds: []
`
	if err := os.WriteFile(path, []byte(job), 0o600); err != nil {
		t.Fatal(err)
	}
	r := iacci(t, nil, "run", path)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"orders[0].timeout", "840", "orders[1].cmds", "cycle"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// iac-ci run prints every problem at once: a misspelt field and a value of the wrong type do
// not hide a cycle and a timeout over its target's limit, and a missing timeout says it is
// required.
func TestRunRejectsInvalidJobWithTyposListingEveryProblem(t *testing.T) {
	t.Parallel()
	path := writeJob(t, t.TempDir(), `username: newcomer
orders:
  - order_name: a
    timeout: 1200
    execution_target: lambda
    dependencies: [b]
    cmds: ["true"]
    must_suceed: false
  - order_name: b
    dependencies: [a]
    timeout: ten
    cmds: ["true"]
  - order_name: c
    cmds: ["true"]
`)
	r := iacci(t, nil, "run", path)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		`orders[0].must_suceed: unknown field (did you mean "must_succeed"?)`,
		`orders[1].timeout: want a number, got "ten"`,
		"orders: dependency cycle a -> b -> a",
		"orders[0].timeout: 1200 exceeds the lambda limit of 840",
		"orders[2].timeout: required",
		"5 problems",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	if r := iacci(t, nil, "run"); r.code != 2 || !strings.Contains(r.stderr, "job file") {
		t.Errorf("run without a file: exit %d\n%s", r.code, r.stderr)
	}
	if r := iacci(t, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "iac-ci ") {
		t.Errorf("version: exit %d %q", r.code, r.stdout)
	}
	if r := iacci(t, nil, "frobnicate"); r.code != 2 {
		t.Errorf("unknown command: exit %d", r.code)
	}
}

// alive reports whether a process exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// Interrupted, `iac-ci run` without --data stops its orders' processes, removes its temporary
// data folder, says the run is dropped with it and exits 130.
func TestRunInterruptedDropsItsTemporaryFolder(t *testing.T) {
	t.Parallel()
	dir := openDir(t)
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "pid")
	job := `username: newcomer
orders:
  - order_name: long
    timeout: 120
    cmds:
      - "MARK=` + dir + ` sleep 60 & echo $! > ` + pidFile + `; wait"
`
	path := writeJob(t, dir, job)
	cmd := exec.CommandContext(t.Context(), binary, "run", path)
	cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), "TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForCondition(t, "the order to start", 30*time.Second, func() bool {
		data, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		_, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil
	})
	if entries, _ := os.ReadDir(tmp); len(entries) != 1 {
		t.Fatalf("TMPDIR holds %d entries while the run goes on, want its one data folder", len(entries))
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	// 130, as a shell reports a command ended by Ctrl-C, and not 3, iac-ci's own failure.
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("interrupted run: %v, want exit status 130\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "dropped with its temporary data folder") {
		t.Errorf("stderr does not say the run is dropped:\n%s", stderr.String())
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("TMPDIR still holds %v after the run ended", entries)
	}
	requireGone(t, "MARK="+dir, "the interrupted run")
}

// writeJob writes a job file in dir and returns its path.
func writeJob(t *testing.T, dir, job string) string {
	t.Helper()
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(job), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
