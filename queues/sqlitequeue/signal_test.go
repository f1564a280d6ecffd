package sqlitequeue

import "testing"

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// A send wakes as many waiters as it has messages, the longest waiting first; a waiter that
// leaves with a wake it did not wait for passes it on; a broadcast wakes everyone.
func TestSignalWakesOnePerMessageAndPassesWakesOn(t *testing.T) {
	var s signal
	a, b, c := s.wait(), s.wait(), s.wait()
	s.wake(1)
	if !isClosed(a.woken) || isClosed(b.woken) || isClosed(c.woken) {
		t.Fatalf("wake(1) woke a=%v b=%v c=%v, want a alone", isClosed(a.woken), isClosed(b.woken), isClosed(c.woken))
	}
	s.leave(a) // a was woken but leaves without taking its wake
	if !isClosed(b.woken) || isClosed(c.woken) {
		t.Fatalf("after a woken waiter left: b=%v c=%v, want b woken in its place", isClosed(b.woken), isClosed(c.woken))
	}
	s.consumed(b) // b waited on its wake: nothing passes on
	if isClosed(c.woken) {
		t.Fatalf("a consumed wake was passed on")
	}
	s.leave(c) // never woken: leaves quietly
	d, e := s.wait(), s.wait()
	s.broadcast()
	if !isClosed(d.woken) || !isClosed(e.woken) {
		t.Fatalf("broadcast woke d=%v e=%v, want both", isClosed(d.woken), isClosed(e.woken))
	}
	if len(s.waiters) != 0 {
		t.Fatalf("%d waiters left registered", len(s.waiters))
	}
}
