package domain

import "testing"

var orderStatuses = []OrderStatus{OrderWaiting, OrderQueued, OrderRunning, OrderSucceeded, OrderFailed, OrderTimedOut, OrderSkipped}

func TestOrderStatusTerminalAndValid(t *testing.T) {
	t.Parallel()
	terminal := map[OrderStatus]bool{OrderSucceeded: true, OrderFailed: true, OrderTimedOut: true, OrderSkipped: true}
	for _, s := range orderStatuses {
		if got := s.Terminal(); got != terminal[s] {
			t.Errorf("%s.Terminal(): got %v, want %v", s, got, terminal[s])
		}
		if !s.Valid() {
			t.Errorf("%s.Valid(): got false", s)
		}
	}
	for _, s := range []OrderStatus{"", "done", "Succeeded"} {
		if s.Valid() || s.Terminal() {
			t.Errorf("%q: Valid %v Terminal %v, want both false", s, s.Valid(), s.Terminal())
		}
	}
}

func TestCanMoveOrder(t *testing.T) {
	t.Parallel()
	// Every allowed move; every other pair of statuses must be refused.
	allowed := map[[2]OrderStatus]bool{
		{OrderWaiting, OrderWaiting}:   true, // the sweeper's next look moves
		{OrderWaiting, OrderQueued}:    true,
		{OrderWaiting, OrderSkipped}:   true,
		{OrderWaiting, OrderTimedOut}:  true,
		{OrderWaiting, OrderFailed}:    true,
		{OrderQueued, OrderQueued}:     true, // re-enqueue
		{OrderQueued, OrderRunning}:    true,
		{OrderQueued, OrderSucceeded}:  true,
		{OrderQueued, OrderFailed}:     true,
		{OrderQueued, OrderTimedOut}:   true,
		{OrderQueued, OrderSkipped}:    true,
		{OrderRunning, OrderRunning}:   true, // re-claim
		{OrderRunning, OrderQueued}:    true, // put back: the target was at capacity
		{OrderRunning, OrderSucceeded}: true,
		{OrderRunning, OrderFailed}:    true,
		{OrderRunning, OrderTimedOut}:  true,
		{OrderRunning, OrderSkipped}:   true,
	}
	for _, from := range orderStatuses {
		for _, to := range orderStatuses {
			if got, want := CanMoveOrder(from, to), allowed[[2]OrderStatus{from, to}]; got != want {
				t.Errorf("CanMoveOrder(%s, %s): got %v, want %v", from, to, got, want)
			}
		}
	}
	for _, s := range orderStatuses {
		if CanMoveOrder("bogus", s) || CanMoveOrder(s, "bogus") {
			t.Errorf("CanMoveOrder allows a move between %s and an unknown status", s)
		}
	}
}

func TestCanMoveRun(t *testing.T) {
	t.Parallel()
	statuses := []RunStatus{RunAccepted, RunRunning, RunSucceeded, RunFailed, RunTimedOut, "bogus"}
	allowed := map[[2]RunStatus]bool{
		{RunAccepted, RunRunning}:   true,
		{RunAccepted, RunSucceeded}: true,
		{RunAccepted, RunFailed}:    true,
		{RunAccepted, RunTimedOut}:  true,
		{RunRunning, RunSucceeded}:  true,
		{RunRunning, RunFailed}:     true,
		{RunRunning, RunTimedOut}:   true,
	}
	for _, from := range statuses {
		for _, to := range statuses {
			if got, want := CanMoveRun(from, to), allowed[[2]RunStatus{from, to}]; got != want {
				t.Errorf("CanMoveRun(%s, %s): got %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestResolveRunStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		deadlinePassed           bool
		mustFailed, mustTimedOut int
		want                     RunStatus
	}{
		{false, 0, 0, RunSucceeded},
		{false, 1, 0, RunFailed},
		{false, 0, 1, RunTimedOut},
		{false, 2, 1, RunTimedOut},
		{true, 0, 0, RunTimedOut},
		{true, 3, 0, RunTimedOut},
	}
	for _, tt := range tests {
		if got := ResolveRunStatus(tt.deadlinePassed, tt.mustFailed, tt.mustTimedOut); got != tt.want {
			t.Errorf("ResolveRunStatus(%v, %d, %d): got %s, want %s", tt.deadlinePassed, tt.mustFailed, tt.mustTimedOut, got, tt.want)
		}
	}
}

func TestReasonAfterStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status       OrderStatus
		reason, want string
	}{
		{OrderTimedOut, "timed out: command 1 was still running when the order's timeout passed", "command 1 was still running when the order's timeout passed"},
		{OrderTimedOut, "Timed_Out: no result within the order's timeout of 60s", "no result within the order's timeout of 60s"},
		{OrderFailed, "failed: exit 2", "exit 2"},
		{OrderFailed, "timed out: no", "timed out: no"}, // another status's words stay
		{OrderFailed, "failed:", "failed:"},             // nothing after the status: left as it is
		{OrderSkipped, "dependency plan failed", "dependency plan failed"},
		{OrderSucceeded, "", ""},
	} {
		if got := tc.status.ReasonAfter(tc.reason); got != tc.want {
			t.Errorf("%s.ReasonAfter(%q) = %q, want %q", tc.status, tc.reason, got, tc.want)
		}
	}
}
