package tests

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
)

// crashPoints are the steps of intake, worker, orchestrator and finalization at which the
// process is killed (see internal/crashpoint), in the order a run passes them.
var crashPoints = []string{
	"intake.bundled",       // bundles written, run not inserted
	"intake.created",       // run inserted, its first orders queued, no message sent
	"enqueue.moved",        // an order moved to queued, its message not sent
	"intake.enqueued",      // first orders queued, run still accepted
	"worker.claimed",       // an order claimed, its commands not started
	"worker.before-result", // commands ran, result not delivered
	"worker.delivered",     // result delivered, order message not deleted
	"orchestrator.read",    // result read, order not ended
	"finish.moved",         // order ended, dependents not woken
	"finish.woken",         // dependents woken, run not checked
	"finalize.moved",       // run ended, done object and event not written
	"report.written",       // done object written, run not marked reported
}

// TestCrashAtEveryStepThenRecover kills the server at each step in turn, starts a fresh one on
// the same data folder, and checks that the run still reaches its correct terminal state, that
// no order's commands ran more often than its attempts, and that the run was finalized once.
func TestCrashAtEveryStepThenRecover(t *testing.T) {
	t.Parallel()
	for _, point := range crashPoints {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			data := t.TempDir()
			marks := openDir(t)
			job := map[string]any{
				"username": "crash",
				"orders": []map[string]any{
					{"order_name": "a", "timeout": 30, "cmds": []string{"echo ran >> $MARKS/a"}, "env_vars": map[string]string{"MARKS": marks}},
					{"order_name": "b", "timeout": 30, "dependencies": []string{"a"}, "cmds": []string{"echo ran >> $MARKS/b"}, "env_vars": map[string]string{"MARKS": marks}},
					{"order_name": "c", "timeout": 30, "dependencies": []string{"a"}, "must_succeed": false, "cmds": []string{"echo ran >> $MARKS/c; exit 4"}, "env_vars": map[string]string{"MARKS": marks}},
					{"order_name": "d", "timeout": 30, "dependencies": []string{"b", "c"}, "cmds": []string{"echo ran >> $MARKS/d"}, "env_vars": map[string]string{"MARKS": marks}},
				},
			}
			body, _ := json.Marshal(job)
			args := []string{"--webhook-secret", secret, "--visibility", "2s"}
			first := startServer(t, data, []string{"IAC_CI_CRASH_AT=" + point}, args...)
			runID := submitToCrash(t, first, body)
			first.waitExit(time.Minute)
			if !strings.Contains(first.log(), "crashpoint: crashing at "+point) {
				t.Fatalf("the process ended without reaching %s:\n%s", point, first.log())
			}

			second := startServer(t, data, nil, args...)
			v := second.waitRun(runID, 2*time.Minute)
			want := map[string]string{"a": "succeeded", "b": "succeeded", "c": "failed", "d": "succeeded"}
			if got := orderStatuses(v); !equalMaps(got, want) {
				t.Fatalf("statuses %v, want %v\n%s", got, want, second.log())
			}
			if v.Status != "succeeded" {
				t.Fatalf("run %s, want succeeded", v.Status)
			}
			for _, o := range v.Orders {
				data, err := os.ReadFile(filepath.Join(marks, o.OrderName))
				if err != nil {
					t.Fatalf("order %s never ran: %v", o.OrderName, err)
				}
				if runs := strings.Count(string(data), "ran"); runs > o.Attempt || runs < 1 {
					t.Errorf("order %s: commands ran %d times in %d attempts", o.OrderName, runs, o.Attempt)
				}
			}
			requireHistory(t, second, v)
			second.stop()
			logs := first.log() + second.log()
			if n := strings.Count(logs, `"msg":"run finalized"`); n != 1 {
				t.Errorf("run finalized %d times, want once", n)
			}
		})
	}
}

// submitToCrash posts job to a server that will crash on the way, under a run id chosen here
// (the envelope's run_id), and returns that id: the crash can come before the server's 202
// reaches the test, and the run must be found all the same. The caller checks, from the log,
// that the server reached its crash point, which it does only for an accepted request.
func submitToCrash(t *testing.T, s *server, job []byte) string {
	t.Helper()
	runID := domain.NewRunID(time.Now())
	body, _ := json.Marshal(map[string]string{"job_parameters_b64": base64.StdEncoding.EncodeToString(job), "run_id": runID})
	if code, ans, err := s.tryPost("/webhook", body, secret, nil); err == nil && (code != 202 || ans["run_id"] != runID) {
		t.Fatalf("submit: %d %v", code, ans)
	}
	return runID
}

// requireHistory checks a run's history after a crash: each order has one running event per
// attempt (an abandoned attempt's written by the claim that took over, saying so), and exactly
// one event of its end.
func requireHistory(t *testing.T, s *server, v runView) {
	t.Helper()
	history := s.history(v.RunID)
	for _, o := range v.Orders {
		running, ended, abandoned := 0, 0, 0
		for _, e := range history {
			if e.Type != "order_state" || e.OrderName != o.OrderName {
				continue
			}
			switch {
			case e.Status == "running":
				running++
				if strings.Contains(e.Details, "abandoned") {
					abandoned++
				}
			case e.Status == string(o.Status):
				ended++
			}
		}
		if running != o.Attempt || ended != 1 || abandoned != o.Attempt-1 {
			t.Errorf("history of %s (%d attempts): %d running events (%d abandoned), %d of its end; want %d, %d, 1\n%+v",
				o.OrderName, o.Attempt, running, abandoned, ended, o.Attempt, o.Attempt-1, history)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A data folder of an earlier version kept everything in one database, iac-ci.db. A server of
// this version moves the queues and the objects kept as rows into queues.db when it opens the
// folder, so a run that was in flight (here: killed with an order claimed) still ends as it should.
func TestOneDatabaseFolderIsMovedAndItsRunFinishes(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	body := []byte(`{"username": "upgrade", "orders": [
		{"order_name": "a", "timeout": 30, "cmds": ["true"]},
		{"order_name": "b", "timeout": 30, "dependencies": ["a"], "cmds": ["true"]}]}`)
	args := []string{"--webhook-secret", secret, "--visibility", "2s"}
	first := startServer(t, data, []string{"IAC_CI_CRASH_AT=worker.claimed"}, args...)
	runID := submitToCrash(t, first, body)
	first.waitExit(time.Minute)
	if !strings.Contains(first.log(), "crashpoint: crashing at worker.claimed") {
		t.Fatalf("the process ended without claiming an order:\n%s", first.log())
	}

	// Make the folder as the earlier version left it: the tables of queues.db in iac-ci.db.
	old, err := sqlitedb.Open(filepath.Join(data, "iac-ci.db"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := sqlitedb.MoveTables(t.Context(), old, filepath.Join(data, "queues.db"), sqlitequeue.Table, folderblobs.Table)
	old.Close()
	if err != nil || n == 0 {
		t.Fatalf("moving the tables back into iac-ci.db: %d rows, %v", n, err)
	}
	for _, f := range []string{"queues.db", "queues.db-wal", "queues.db-shm"} {
		if err := os.Remove(filepath.Join(data, f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}

	second := startServer(t, data, nil, args...)
	v := second.waitRun(runID, 2*time.Minute)
	if got, want := orderStatuses(v), map[string]string{"a": "succeeded", "b": "succeeded"}; !equalMaps(got, want) || v.Status != "succeeded" {
		t.Fatalf("run %s, statuses %v; want succeeded, %v\n%s", v.Status, got, want, second.log())
	}
	second.stop()
	if !strings.Contains(second.log(), "moved queued messages and stored objects to queues.db") {
		t.Errorf("the server did not say it moved the tables:\n%s", second.log())
	}
	db, err := sqlitedb.Open(filepath.Join(data, "iac-ci.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var left int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE name IN (?, ?)", sqlitequeue.Table, folderblobs.Table).Scan(&left); err != nil || left != 0 {
		t.Errorf("iac-ci.db still holds %d of the moved tables (%v)", left, err)
	}
}

// leaverJob is a job of one order whose first attempt leaves two processes behind, one in a
// new session (setsid) and one double-forked, each writing a timestamp to $MARKS every 50 ms
// until killed, then sleeps; its second attempt notes when it started and succeeds. Every
// attempt notes its start in $MARKS/attempts. The leavers carry MARK=<marks> in their
// environment, so the test can find them.
func leaverJob(marks string) map[string]any {
	loop := `while :; do date +%s%N >> $MARKS/FILE; sleep 0.05; done`
	return map[string]any{"username": "crash", "orders": []map[string]any{{
		"order_name": "leaver", "timeout": 120, "env_vars": map[string]string{"MARKS": marks},
		"cmds": []string{`echo "start $(date +%s%N)" >> $MARKS/attempts; ` +
			`if [ -e $MARKS/first ]; then exit 0; fi; touch $MARKS/first; ` +
			`MARK=$MARKS setsid sh -c '` + strings.ReplaceAll(loop, "FILE", "setsid") + `' & ` +
			`MARK=$MARKS sh -c '(` + strings.ReplaceAll(loop, "FILE", "forked") + `) &'; ` +
			`sleep 120`},
	}}}
}

// waitForLeavers waits until both processes the first attempt leaves behind have written.
func waitForLeavers(t *testing.T, marks string) {
	t.Helper()
	waitForCondition(t, "the first attempt's leavers to write", 60*time.Second, func() bool {
		for _, f := range []string{"setsid", "forked"} {
			if data, err := os.ReadFile(filepath.Join(marks, f)); err != nil || len(data) == 0 {
				return false
			}
		}
		return true
	})
}

// requireNoOverlap checks the marks of a leaverJob run to its end: two attempts started, and
// every timestamp the first attempt's leavers wrote is older than the second attempt's start.
func requireNoOverlap(t *testing.T, marks string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(marks, "attempts"))
	if err != nil {
		t.Fatal(err)
	}
	starts := strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(data)), "start", ""))
	if len(starts) != 2 {
		t.Fatalf("attempts started: %q, want two", data)
	}
	second, err := strconv.ParseInt(starts[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"setsid", "forked"} {
		data, err := os.ReadFile(filepath.Join(marks, f))
		if err != nil {
			t.Fatal(err)
		}
		stamps := strings.Fields(string(data))
		if len(stamps) == 0 {
			t.Fatalf("the %s leaver wrote nothing", f)
		}
		last, err := strconv.ParseInt(stamps[len(stamps)-1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if last >= second {
			t.Errorf("the first attempt's %s leaver still wrote %s after the second attempt started",
				f, time.Duration(last-second))
		}
	}
}

// The server is killed with kill -9 while an order's first attempt runs, with a process in a
// new session and a double-forked one. Both are gone before a server is started again, and the
// second attempt, which that server runs, overlaps nothing of the first.
func TestCrashKillsEveryProcessOfTheOrderBeforeItsRetry(t *testing.T) {
	t.Parallel()
	data, marks := t.TempDir(), openDir(t)
	args := []string{"--webhook-secret", secret, "--visibility", "2s"}
	first := startServer(t, data, nil, args...)
	body, _ := json.Marshal(leaverJob(marks))
	runID := submitToCrash(t, first, body)
	waitForLeavers(t, marks)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.waitExit(time.Minute)
	requireGone(t, "MARK="+marks, "the server killed with kill -9")

	second := startServer(t, data, nil, args...)
	v := second.waitRun(runID, 2*time.Minute)
	if v.Status != "succeeded" || len(v.Orders) != 1 || v.Orders[0].Attempt != 2 {
		t.Fatalf("run %s, orders %+v; want succeeded at attempt 2\n%s", v.Status, v.Orders, second.log())
	}
	requireNoOverlap(t, marks)
	requireHistory(t, second, v)
}

// The same for `iac-ci run --data`, interrupted or killed with kill -9: the processes its order
// left are gone when it has ended, and `iac-ci serve` on its data folder finishes the run with a
// second attempt that overlaps nothing of the first.
func TestCrashOfIacCIRunKillsEveryProcessOfTheOrder(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			dir, marks := t.TempDir(), openDir(t)
			data := filepath.Join(dir, "data")
			body, _ := json.Marshal(leaverJob(marks))
			jobFile := writeJob(t, dir, string(body))
			cmd := exec.CommandContext(t.Context(), binary, "run", "--data", data, jobFile)
			cmd.Dir = repoRoot
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitForLeavers(t, marks)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err == nil {
				t.Fatalf("iac-ci run ended well after %s\n%s", sig, stderr.String())
			}
			requireGone(t, "MARK="+marks, "iac-ci run ended by "+sig.String())

			s := startServer(t, data, nil, "--webhook-secret", secret, "--visibility", "2s")
			var runID string
			waitForCondition(t, "the run to be listed", 30*time.Second, func() bool {
				runID = onlyRunID(t, data)
				return runID != ""
			})
			v := s.waitRun(runID, 2*time.Minute)
			if v.Status != "succeeded" || v.Orders[0].Attempt != 2 {
				t.Fatalf("run %s, orders %+v; want succeeded at attempt 2\n%s", v.Status, v.Orders, s.log())
			}
			requireNoOverlap(t, marks)
		})
	}
}

// onlyRunID reads the id of the one run of a data folder's store ("" while there is none).
func onlyRunID(t *testing.T, data string) string {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(data, "iac-ci.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var runID string
	_ = db.QueryRow("SELECT run_id FROM store_runs").Scan(&runID)
	return runID
}
