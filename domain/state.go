package domain

import "strings"

// OrderStatus is where an order stands. An order moves waiting → queued → running → one terminal
// status, each move a single conditional write from the expected prior status (see CanMoveOrder).
type OrderStatus string

const (
	OrderWaiting   OrderStatus = "waiting"   // dependencies not all ended
	OrderQueued    OrderStatus = "queued"    // a message is on its target's queue
	OrderRunning   OrderStatus = "running"   // a worker claimed it (attempt counts the claims)
	OrderSucceeded OrderStatus = "succeeded" // every command exited 0
	OrderFailed    OrderStatus = "failed"    // a command failed, or the order could not be run
	OrderTimedOut  OrderStatus = "timed_out" // the order's timeout or the job's deadline passed
	OrderSkipped   OrderStatus = "skipped"   // a dependency that must succeed did not
)

// Terminal reports whether s is an end state; terminal statuses never change.
func (s OrderStatus) Terminal() bool {
	switch s {
	case OrderSucceeded, OrderFailed, OrderTimedOut, OrderSkipped:
		return true
	}
	return false
}

// Valid reports whether s is one of the order statuses.
func (s OrderStatus) Valid() bool {
	switch s {
	case OrderWaiting, OrderQueued, OrderRunning:
		return true
	}
	return s.Terminal()
}

// CanMoveOrder reports whether an order may move from one status to another. running → running is
// a re-claim after the previous holder died (its attempt rises); queued → queued is a re-enqueue;
// waiting → waiting only moves the time the sweeper looks again; running → queued puts back an
// attempt its target turned away for capacity before it started (engine.Engine.PutBack).
func CanMoveOrder(from, to OrderStatus) bool {
	if !from.Valid() || !to.Valid() || from.Terminal() {
		return false
	}
	switch from {
	case OrderWaiting:
		// waiting → waiting reschedules the sweeper's next look. An order that was never queued
		// cannot have run, so it cannot succeed or be claimed.
		return to != OrderRunning && to != OrderSucceeded
	case OrderQueued:
		return to != OrderWaiting
	case OrderRunning:
		return to != OrderWaiting
	}
	return false
}

// RunStatus is where a run stands: accepted → running → succeeded | failed | timed_out.
type RunStatus string

const (
	RunAccepted  RunStatus = "accepted"
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunTimedOut  RunStatus = "timed_out"
)

// Terminal reports whether s is an end state of a run.
func (s RunStatus) Terminal() bool {
	return s == RunSucceeded || s == RunFailed || s == RunTimedOut
}

// CanMoveRun reports whether a run may move from one status to another.
func CanMoveRun(from, to RunStatus) bool {
	switch from {
	case RunAccepted:
		return to == RunRunning || to.Terminal()
	case RunRunning:
		return to.Terminal()
	}
	return false
}

// ResolveRunStatus decides how a run ended from its counters: timed out when the job deadline
// passed or an order that must succeed timed out; failed when an order that must succeed failed
// or was skipped; succeeded otherwise.
func ResolveRunStatus(deadlinePassed bool, mustFailed, mustTimedOut int) RunStatus {
	switch {
	case deadlinePassed || mustTimedOut > 0:
		return RunTimedOut
	case mustFailed > 0:
		return RunFailed
	}
	return RunSucceeded
}

// ReasonAfter returns an order's reason as it reads after the order's status: a reason that
// starts by restating the status ("timed out: command 1 was still running ...", shown after
// timed_out) loses that start, so that a line reads "timed_out: command 1 was still running".
func (s OrderStatus) ReasonAfter(reason string) string {
	words := strings.ReplaceAll(string(s), "_", " ")
	for _, prefix := range []string{words + ":", string(s) + ":"} {
		if len(reason) > len(prefix) && strings.EqualFold(reason[:len(prefix)], prefix) {
			return strings.TrimSpace(reason[len(prefix):])
		}
	}
	return reason
}
