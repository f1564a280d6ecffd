package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/deadletters"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/producers"
)

// crashUntilDead starts `iac-ci serve` on data with IAC_CI_CRASH_AT=point again and again, as a
// supervisor would restart a server that keeps dying at one step: each start receives the message
// again, until the queue gives up on it. It does not wait for the server to answer, since it may
// die before.
func crashUntilDead(t *testing.T, data, point string, starts int) {
	t.Helper()
	for i := range starts {
		cmd := exec.Command(binary, "serve", "--addr", freeAddr(t), "--data", data, "--log-format", "json",
			"--webhook-secret", secret, "--visibility", "1s")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "IAC_CI_API_TOKEN="+apiToken, "IAC_CI_CRASH_AT="+point)
		var errb lockedBuffer
		cmd.Stderr = &errb
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("start %d: the server did not reach %s within a minute:\n%s", i+1, point, errb.String())
		}
		if !strings.Contains(errb.String(), "crashpoint: crashing at "+point) {
			t.Fatalf("start %d: the server ended without reaching %s:\n%s", i+1, point, errb.String())
		}
	}
}

func dlqList(t *testing.T, data string) []deadletters.Record {
	t.Helper()
	r := iacci(t, nil, "dlq", "list", "--data", data, "--json")
	if r.code != 0 {
		t.Fatalf("dlq list: exit %d\n%s", r.code, r.stderr)
	}
	var list []deadletters.Record
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, r.stdout)
	}
	return list
}

// An order whose worker keeps dying and an intake that keeps dying are dead-lettered, and their
// runs still end; `iac-ci dlq` lists and shows them with their reason and what redrive would
// do; redriving the intake dead letter runs its job again, to success; purge empties the list.
func TestDeadLettersAreKeptShownRedrivenAndPurged(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	if r := iacci(t, nil, "dlq", "list", "--data", data, "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("dlq list --json on a folder without dead letters: exit %d, %q\n%s", r.code, r.stdout, r.stderr)
	}
	job := []byte(`{"username": "dlq", "orders": [{"order_name": "hello", "execution_target": "lambda", "timeout": 30, "cmds": ["echo hello"]}]}`)

	// Intake dies after packing the orders, at every start.
	first := startServer(t, data, []string{"IAC_CI_CRASH_AT=intake.bundled"}, "--webhook-secret", secret, "--visibility", "1s")
	intakeRun := submitToCrash(t, first, job)
	first.waitExit(time.Minute)
	crashUntilDead(t, data, "intake.bundled", 4)
	// The worker dies once it claimed the order, at every start.
	second := startServer(t, data, []string{"IAC_CI_CRASH_AT=worker.claimed"}, "--webhook-secret", secret, "--visibility", "1s")
	orderRun := submitToCrash(t, second, job)
	second.waitExit(time.Minute)
	crashUntilDead(t, data, "worker.claimed", 4)

	// A server that does not crash: the queues give up on both messages, their dead-letter
	// consumers end the runs.
	s := startServer(t, data, nil, "--webhook-secret", secret, "--visibility", "1s")
	if v := s.waitRun(intakeRun, 2*time.Minute); v.Status != domain.RunFailed {
		t.Fatalf("run whose intake kept dying: %s %+v", v.Status, v.Orders)
	}
	if v := s.waitRun(orderRun, 2*time.Minute); v.Status != domain.RunFailed ||
		!strings.Contains(v.Orders[0].Reason, "dead-lettered after 5 receives") {
		t.Fatalf("run whose worker kept dying: %s %+v", v.Status, v.Orders)
	}
	// Asked of the running server, over HTTP with the API token.
	r := iacci(t, nil, "dlq", "list", "--server", s.url, "--json")
	var overHTTP []deadletters.Record
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &overHTTP) != nil || len(overHTTP) < 2 {
		t.Fatalf("dlq list --server: exit %d, %s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := iacci(t, []string{"IAC_CI_API_TOKEN=wrong"}, "dlq", "list", "--server", s.url); r.code == 0 || !strings.Contains(r.stderr, "API token") {
		t.Fatalf("dlq list --server with a wrong token: exit %d, %s", r.code, r.stderr)
	}
	s.stop()

	// The two that killed their runs; and, truthfully, the intake message of the second run,
	// handled each time but never deleted, as the worker's crash came within the delete's short
	// wait: dead-lettered too, with nothing left for it to do.
	var in, order deadletters.Record
	for _, d := range dlqList(t, data) {
		switch {
		case d.Queue == "intake" && d.RunID == intakeRun:
			in = d
		case d.Queue == "orders-lambda" && d.RunID == orderRun:
			order = d
		case !strings.HasPrefix(d.Outcome, "none"):
			t.Errorf("an unexpected dead letter that did something: %+v", d)
		}
	}
	if in.Outcome != "the run ended failed, its orders never run" || order.OrderName != "hello" ||
		order.Target != "lambda" || order.Receives != 5 || order.Reason == "" || in.Reason == "" {
		t.Fatalf("dead letters: intake %+v, order %+v", in, order)
	}
	r = iacci(t, nil, "dlq", "show", order.ID, "--data", data, "--json")
	var shown producers.DeadLetterView
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &shown) != nil {
		t.Fatalf("dlq show: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if shown.Order == nil || shown.Order.Status != domain.OrderFailed || len(shown.History) == 0 ||
		!strings.Contains(shown.Redrive, "iac-ci rerun "+orderRun) || !strings.Contains(string(shown.Body), orderRun) {
		t.Fatalf("dlq show of the order's dead letter: %+v", shown)
	}
	if r := iacci(t, nil, "dlq", "show", order.ID, "--data", data); r.code != 0 ||
		!strings.Contains(r.stdout, "reason") || !strings.Contains(r.stdout, "redrive would") {
		t.Fatalf("dlq show as text: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// The order has ended: its redrive says so and keeps the dead letter.
	if r := iacci(t, nil, "dlq", "redrive", order.ID, "--data", data); r.code == 0 || !strings.Contains(r.stderr, "rerun") {
		t.Fatalf("redrive of an ended order: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// The intake's run ended at intake, never run: its redrive runs the job again.
	r = iacci(t, nil, "dlq", "redrive", in.ID, "--data", data, "--json")
	var redriven []producers.Redriven
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &redriven) != nil || len(redriven) != 1 || redriven[0].NewRunID == "" {
		t.Fatalf("redrive of the intake dead letter: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	s = startServer(t, data, nil, "--webhook-secret", secret, "--visibility", "1s")
	if v := s.waitRun(redriven[0].NewRunID, 2*time.Minute); v.Status != domain.RunSucceeded {
		t.Fatalf("the redriven job: %s %+v", v.Status, v.Orders)
	}
	s.stop()
	for _, left := range dlqList(t, data) {
		if left.ID == in.ID {
			t.Fatalf("after the redrive, its dead letter is still kept: %+v", left)
		}
	}
	if r := iacci(t, nil, "dlq", "purge", "--all", "--data", data); r.code != 0 {
		t.Fatalf("dlq purge --all: exit %d\n%s", r.code, r.stderr)
	}
	if left := dlqList(t, data); len(left) != 0 {
		t.Fatalf("after purge --all: %+v", left)
	}
}
