package consumers_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/queues"
)

// TestWorkerWithRecorderEndsOrdersInProcess runs a lambda order and its dependent through a
// Worker that records its results beside the orchestrator: each order ends with its exit code
// and masked log tail, the dependent is queued by the first one's end, and no result.json or
// results-queue message is left behind.
func TestWorkerWithRecorderEndsOrdersInProcess(t *testing.T) {
	t.Parallel()
	f := setupLauncher(t)
	e := f.engine
	orch := &consumers.Orchestrator{Engine: e}
	w := &consumers.Worker{Engine: e, WorkRoot: t.TempDir(), Recorder: orch}
	first := domain.Order{OrderName: "first", Cmds: []string{"echo secret=$DB_PASSWORD"}, Timeout: 60,
		ExecutionTarget: domain.TargetLambda, SSMPaths: []string{launchSecretPath}}
	second := domain.Order{OrderName: "second", Cmds: []string{"exit 3"}, Timeout: 60,
		ExecutionTarget: domain.TargetLambda, Dependencies: []string{"first"}}
	runID := f.submit(t, first, second)

	for _, want := range []struct {
		num    int
		status domain.OrderStatus
		code   int
		tail   string
	}{
		{1, domain.OrderSucceeded, 0, "secret=***"},
		{2, domain.OrderFailed, 3, "command 1 exited with 3"},
	} {
		msg := f.receive(t, domain.TargetLambda, 1)[0]
		if err := w.Handle(t.Context(), msg); err != nil {
			t.Fatalf("order %d: Handle: %v", want.num, err)
		}
		o := f.order(t, runID, want.num)
		if o.Status != want.status || o.ExitCode == nil || *o.ExitCode != want.code || !strings.Contains(o.LogTail, want.tail) {
			t.Fatalf("order %d: %s, exit %v, tail %q; want %s, %d, a tail with %q", want.num, o.Status, o.ExitCode, o.LogTail, want.status, want.code, want.tail)
		}
		if strings.Contains(o.LogTail, launchSecret) {
			t.Fatalf("order %d: the stored tail holds the secret", want.num)
		}
		if _, err := e.Blobs.Get(t.Context(), blobs.ResultKey(runID, want.num, 1)); err == nil {
			t.Errorf("order %d: a result.json was stored", want.num)
		}
	}
	run, err := e.Store.GetRun(t.Context(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != domain.RunFailed {
		t.Errorf("run %s, want failed", run.Status)
	}
	left, err := f.queueNamed(t, queues.Results).Receive(t.Context(), queues.ReceiveOptions{Max: 10})
	if err != nil || len(left) != 0 {
		t.Errorf("results queue: %d messages (%v), want none", len(left), err)
	}
}

// TestRecordOwnIgnoresAnotherAttempt: a result of an attempt the order no longer runs (the
// sweeper timed it out, or another worker took it over) changes nothing.
func TestRecordOwnIgnoresAnotherAttempt(t *testing.T) {
	t.Parallel()
	f := setupLauncher(t)
	e := f.engine
	orch := &consumers.Orchestrator{Engine: e}
	runID := f.submit(t, domain.Order{OrderName: "only", Cmds: []string{"true"}, Timeout: 60, ExecutionTarget: domain.TargetLambda})
	msg := f.receive(t, domain.TargetLambda, 1)[0]
	var om domain.OrderMessage
	if err := json.Unmarshal(msg.Body, &om); err != nil {
		t.Fatal(err)
	}
	claimed, ok, err := e.Claim(t.Context(), om, 1)
	if err != nil || !ok {
		t.Fatalf("Claim: %v %v", ok, err)
	}
	// The message came back to another worker, which took the order over as attempt 2.
	retaken, ok, err := e.Claim(t.Context(), om, 2)
	if err != nil || !ok || retaken.Attempt != 2 {
		t.Fatalf("second Claim: %v %v attempt %d", ok, err, retaken.Attempt)
	}
	late := domain.Result{RunID: runID, OrderNum: 1, Attempt: claimed.Attempt, Status: domain.OrderSucceeded}
	if err := orch.RecordOwn(t.Context(), claimed, late); err != nil {
		t.Fatalf("RecordOwn: %v", err)
	}
	if o := f.order(t, runID, 1); o.Status != domain.OrderRunning || o.Attempt != 2 {
		t.Fatalf("after the first attempt's result: %s attempt %d, want running attempt 2", o.Status, o.Attempt)
	}
	current := domain.Result{RunID: runID, OrderNum: 1, Attempt: 2, Status: domain.OrderSucceeded}
	if err := orch.RecordOwn(t.Context(), retaken, current); err != nil {
		t.Fatalf("RecordOwn: %v", err)
	}
	if o := f.order(t, runID, 1); o.Status != domain.OrderSucceeded || o.Attempt != 2 {
		t.Fatalf("after the second attempt's result: %s attempt %d, want succeeded attempt 2", o.Status, o.Attempt)
	}
}
