package domain

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// diamond is a job whose last order waits for two that both wait for the first:
// fetch ← (plan-net, plan-app) ← apply.
func diamond() Job {
	j := Job{Username: "ana", Orders: []Order{
		{OrderName: "fetch", Cmds: []string{"true"}, Timeout: 60},
		{OrderName: "plan-net", Cmds: []string{"true"}, Timeout: 600, Dependencies: []string{"fetch"}, ExecutionTarget: TargetLambda},
		{OrderName: "plan-app", Cmds: []string{"true"}, Timeout: 600, Dependencies: []string{"fetch"}, MustSucceed: ptr(false)},
		{OrderName: "apply", QueueID: "deploy", Cmds: []string{"true"}, Timeout: 1800, Dependencies: []string{"plan-app", "plan-net"}},
	}}
	j.Normalize(false)
	return j
}

func TestPlanDiamond(t *testing.T) {
	t.Parallel()
	records, err := Plan(diamond(), "run-1", "trace-1")
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	want := []OrderRecord{
		{RunID: "run-1", OrderNum: 1, TraceID: "trace-1", OrderName: "fetch", QueueID: "fetch", Target: TargetCodeBuild, MustSucceed: true, Timeout: 60, PresignExpiry: 7200, Dependents: []int{2, 3}, Status: OrderWaiting},
		{RunID: "run-1", OrderNum: 2, TraceID: "trace-1", OrderName: "plan-net", QueueID: "plan-net", Target: TargetLambda, MustSucceed: true, Timeout: 600, PresignExpiry: 7200, Deps: []int{1}, Dependents: []int{4}, Status: OrderWaiting},
		{RunID: "run-1", OrderNum: 3, TraceID: "trace-1", OrderName: "plan-app", QueueID: "plan-app", Target: TargetCodeBuild, MustSucceed: false, Timeout: 600, PresignExpiry: 7200, Deps: []int{1}, Dependents: []int{4}, Status: OrderWaiting},
		{RunID: "run-1", OrderNum: 4, TraceID: "trace-1", OrderName: "apply", QueueID: "deploy", Target: TargetCodeBuild, MustSucceed: true, Timeout: 1800, PresignExpiry: 7200, Deps: []int{2, 3}, Status: OrderWaiting},
	}
	if !reflect.DeepEqual(records, want) {
		t.Fatalf("Plan:\ngot  %+v\nwant %+v", records, want)
	}
	if got, want := Ready(records), []int{1}; !reflect.DeepEqual(got, want) {
		t.Errorf("Ready: got %v, want %v", got, want)
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		orders []OrderRecord
		want   []int
	}{
		{"none", nil, nil},
		{"all independent, out of order", []OrderRecord{{OrderNum: 3}, {OrderNum: 1}, {OrderNum: 2}}, []int{1, 2, 3}},
		{"chain", []OrderRecord{{OrderNum: 1}, {OrderNum: 2, Deps: []int{1}}, {OrderNum: 3, Deps: []int{2}}}, []int{1}},
		{"two roots", []OrderRecord{{OrderNum: 1}, {OrderNum: 2, Deps: []int{1}}, {OrderNum: 3}}, []int{1, 3}},
	}
	for _, tt := range tests {
		if got := Ready(tt.orders); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPlanRejectsBrokenGraphs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(j *Job)
		path   string
		frag   string
	}{
		{"no orders", func(j *Job) { j.Orders = nil }, "orders", "no orders"},
		{"cycle", func(j *Job) { j.Orders[0].Dependencies = []string{"deploy"} }, "orders", "dependency cycle deploy -> plan-app -> fetch -> deploy"},
		{"unknown dependency", func(j *Job) { j.Orders[3].Dependencies = []string{"plan-nett"} }, "orders[3].dependencies[0]", `did you mean "plan-net"`},
		{"duplicate queue_id", func(j *Job) { j.Orders[2].QueueID = "plan-net" }, "orders[2].queue_id", "also the queue_id of orders[1]"},
		{"self-dependency", func(j *Job) { j.Orders[1].Dependencies = []string{"plan-net"} }, "orders[1].dependencies[0]", "depends on itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := diamond()
			tt.change(&j)
			records, err := Plan(j, "run-1", "trace-1")
			if records != nil {
				t.Errorf("Plan returned records with an error: %+v", records)
			}
			if _, ok := findProblem(problemsOf(t, err), tt.path, tt.frag); !ok {
				t.Fatalf("no problem at %q containing %q in %v", tt.path, tt.frag, err)
			}
		})
	}
}

func TestPlanIgnoresWhatOnlyValidateChecks(t *testing.T) {
	t.Parallel()
	// Plan needs a runnable graph; a bad timeout is Validate's business.
	j := diamond()
	j.Orders[0].Timeout = 0
	j.Username = ""
	if _, err := Plan(j, "r", "t"); err != nil {
		t.Fatalf("Plan: %v", err)
	}
}

func TestDecideWake(t *testing.T) {
	t.Parallel()
	dep := func(num int, name string, status OrderStatus, must bool) OrderRecord {
		return OrderRecord{OrderNum: num, OrderName: name, Status: status, MustSucceed: must}
	}
	tests := []struct {
		name       string
		deps       []OrderRecord
		want       Wake
		wantReason string
	}{
		{"no dependencies", nil, WakeQueue, ""},
		{"all succeeded", []OrderRecord{dep(1, "a", OrderSucceeded, true), dep(2, "b", OrderSucceeded, true)}, WakeQueue, ""},
		{"one still running", []OrderRecord{dep(1, "a", OrderSucceeded, true), dep(2, "b", OrderRunning, true)}, WakeWait, `waiting for dependency "b"`},
		{"one still waiting", []OrderRecord{dep(1, "a", OrderWaiting, false)}, WakeWait, `waiting for dependency "a"`},
		{"one still queued beside a failure", []OrderRecord{dep(1, "a", OrderFailed, true), dep(2, "b", OrderQueued, true)}, WakeWait, `waiting for dependency "b"`},
		{"must succeed and failed", []OrderRecord{dep(1, "plan", OrderFailed, true)}, WakeSkip, `dependency "plan" failed`},
		{"must succeed and timed out", []OrderRecord{dep(1, "plan", OrderTimedOut, true)}, WakeSkip, `dependency "plan" timed out`},
		{"must succeed and skipped", []OrderRecord{dep(1, "plan", OrderSkipped, true)}, WakeSkip, `dependency "plan" was skipped`},
		{"tolerated failure", []OrderRecord{dep(1, "lint", OrderFailed, false), dep(2, "plan", OrderSucceeded, true)}, WakeQueue, ""},
		{"tolerated time out and skip", []OrderRecord{dep(1, "lint", OrderTimedOut, false), dep(2, "docs", OrderSkipped, false)}, WakeQueue, ""},
		{"lowest-numbered blocker named", []OrderRecord{dep(5, "late", OrderFailed, true), dep(2, "early", OrderTimedOut, true)}, WakeSkip, `dependency "early" timed out`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, reason := DecideWake(tt.deps)
			if got != tt.want || reason != tt.wantReason {
				t.Fatalf("got %v %q, want %v %q", got, reason, tt.want, tt.wantReason)
			}
		})
	}
}

func TestWakeString(t *testing.T) {
	t.Parallel()
	for w, want := range map[Wake]string{WakeWait: "wait", WakeQueue: "queue", WakeSkip: "skip", Wake(9): "Wake(9)"} {
		if got := w.String(); got != want {
			t.Errorf("Wake(%d).String(): got %q, want %q", int(w), got, want)
		}
	}
}

func TestDependencyCyclesLargeChain(t *testing.T) {
	t.Parallel()
	// A long chain closed into one loop: the walk must stay linear and name every order.
	const n = 2000
	orders := make([]Order, n)
	for i := range orders {
		orders[i] = Order{QueueID: OrderNumString(i), Dependencies: []string{OrderNumString((i + 1) % n)}}
	}
	cycles := dependencyCycles(orders)
	if len(cycles) != 1 || len(cycles[0]) != n+1 {
		t.Fatalf("got %d cycles, first of length %d; want one of %d", len(cycles), len(cycles[0]), n+1)
	}
	if got := strings.Join(cycles[0][:3], " -> "); got != "0000 -> 0001 -> 0002" {
		t.Errorf("cycle starts %q", got)
	}
	var ve *ValidationError
	if _, err := Plan(Job{Orders: orders}, "r", "t"); !errors.As(err, &ve) {
		t.Errorf("Plan of a cyclic job: got %v, want a *ValidationError", err)
	}
}
