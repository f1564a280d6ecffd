// Package queuetest is the conformance suite of the queue port. Every adapter runs Run; a
// behaviour of queues.Queue is promised only if Run checks it.
//
// What the suite holds adapters to, and what it leaves out on purpose:
//   - Bodies are UTF-8 JSON text, which is all the engine sends. Binary-safe bodies are not
//     required: SQS accepts only characters that are legal in XML.
//   - Delivery order is not promised (standard SQS queues are not FIFO), so no test looks at it.
//   - Times are in whole seconds, SQS's granularity: visibility timeouts and delays of 1 to 3 s.
//     A receive that must find a message waits up to a few seconds but returns as soon as the
//     message is there, so the suite is as fast as the adapter.
//   - A receipt is rejected (queues.ErrInvalidReceipt) when it is malformed or its message was
//     deleted. Whether a receipt from an earlier receive of a message that has since been received
//     again is rejected is left to the adapter: SQS may still accept it.
//   - A dead-lettered message's receive count in the dead-letter queue is not checked.
//
// Each subtest makes its own uniquely named queues through open and runs in parallel, so adapters
// backed by one shared emulator can run the whole suite at once.
package queuetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/queues"
)

// Harness describes the adapter under test.
type Harness struct {
	// Open returns a Broker serving the given specs; it is called once per subtest with queue
	// names no other subtest uses, and must create the queues if the backend needs that. Names
	// are at most 30 characters of letters, digits and hyphens.
	Open func(t *testing.T, specs []queues.Spec) queues.Broker
}

// Run runs the suite against the adapter h describes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("queuetest: Harness.Open is nil")
	}
	open := h.Open
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker)
	}{
		{"UnknownQueue", testUnknownQueue},
		{"RoundTrip", testRoundTrip},
		{"RedeliveryAfterVisibilityTimeout", testRedelivery},
		{"ChangeVisibilityExtends", testChangeVisibilityExtends},
		{"ChangeVisibilityZeroReleases", testChangeVisibilityZero},
		{"DeleteRemoves", testDelete},
		{"MalformedReceipt", testMalformedReceipt},
		{"DeadLetterListAndMoveBack", testDeadLetter},
		{"DelayHides", testDelay},
		{"BatchOfTen", testBatch},
		{"BatchLimits", testBatchLimits},
		{"LongPollWakesOnSend", testLongPollWakesOnSend},
		{"LongPollEndsEmpty", testLongPollEndsEmpty},
		{"ContextEndsWait", testContextEndsWait},
		{"Stats", testStats},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// mustArrive is how long a receive that must find a message may wait; it returns earlier.
const mustArrive = 5 * time.Second

// uniqueName returns base with a random suffix, so that subtests sharing a backend never share a
// queue.
func uniqueName(t *testing.T, base string) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random queue name: %v", err)
	}
	return "qt-" + base + "-" + hex.EncodeToString(b)
}

// openQueues opens one queue per spec, in order, after giving each a unique name (dead-letter
// references are renamed with them).
func openQueues(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker, specs ...queues.Spec) []queues.Queue {
	t.Helper()
	renamed := map[string]string{}
	for i := range specs {
		n := uniqueName(t, specs[i].Name)
		renamed[specs[i].Name] = n
		specs[i].Name = n
	}
	for i := range specs {
		if specs[i].DeadLetter != "" {
			specs[i].DeadLetter = renamed[specs[i].DeadLetter]
		}
	}
	b := open(t, specs)
	out := make([]queues.Queue, len(specs))
	for i, s := range specs {
		q, err := b.Queue(s.Name)
		if err != nil {
			t.Fatalf("Queue(%q): %v", s.Name, err)
		}
		if got := q.Name(); got != s.Name {
			t.Fatalf("Queue(%q).Name() = %q, want the spec's name", s.Name, got)
		}
		out[i] = q
	}
	return out
}

func openQueue(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker, visibility time.Duration) queues.Queue {
	t.Helper()
	return openQueues(t, open, queues.Spec{Name: "q", Visibility: visibility})[0]
}

func send(t *testing.T, q queues.Queue, bodies ...string) {
	t.Helper()
	out := make([]queues.Outgoing, len(bodies))
	for i, b := range bodies {
		out[i] = queues.Outgoing{Body: []byte(b)}
	}
	if err := q.Send(t.Context(), out...); err != nil {
		t.Fatalf("Send to %s: %v", q.Name(), err)
	}
}

// receiveOne waits for exactly one message.
func receiveOne(t *testing.T, q queues.Queue, opts queues.ReceiveOptions) queues.Message {
	t.Helper()
	if opts.Wait == 0 {
		opts.Wait = mustArrive
	}
	msgs, err := q.Receive(t.Context(), opts)
	if err != nil {
		t.Fatalf("Receive from %s: %v", q.Name(), err)
	}
	if len(msgs) != 1 {
		t.Fatalf("Receive from %s: got %d messages, want 1", q.Name(), len(msgs))
	}
	return msgs[0]
}

// receiveNone checks that nothing is delivered within wait.
func receiveNone(t *testing.T, q queues.Queue, wait time.Duration, why string) {
	t.Helper()
	msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch, Wait: wait})
	if err != nil {
		t.Fatalf("Receive from %s: %v", q.Name(), err)
	}
	if len(msgs) != 0 {
		t.Fatalf("Receive from %s %s: got %d messages (first %q), want none", q.Name(), why, len(msgs), msgs[0].Body)
	}
}

func testUnknownQueue(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	name := uniqueName(t, "known")
	b := open(t, []queues.Spec{{Name: name, Visibility: time.Second}})
	unknown := uniqueName(t, "unknown")
	if _, err := b.Queue(unknown); !errors.Is(err, queues.ErrNotFound) {
		t.Fatalf("Queue(%q) error = %v, want ErrNotFound", unknown, err)
	}
	if _, err := b.Queue(name); err != nil {
		t.Fatalf("Queue(%q) after an unknown one: %v", name, err)
	}
}

func testRoundTrip(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, 30*time.Second)
	body := `{"run_id":"r-0001","order_num":"0001","note":"héllo, wörld ✓ \"quoted\" \\ tab\t"}`
	before := time.Now()
	send(t, q, body)
	after := time.Now()

	m := receiveOne(t, q, queues.ReceiveOptions{})
	if string(m.Body) != body {
		t.Errorf("body = %q, want %q", m.Body, body)
	}
	if m.ReceiveCount != 1 {
		t.Errorf("ReceiveCount = %d, want 1", m.ReceiveCount)
	}
	if m.ID == "" || m.Receipt == "" {
		t.Errorf("ID = %q, Receipt = %q, want both set", m.ID, m.Receipt)
	}
	// Backends stamp in milliseconds at best, on their own clock.
	if m.SentAt.Before(before.Add(-time.Second)) || m.SentAt.After(after.Add(time.Second)) {
		t.Errorf("SentAt = %v, want between %v and %v", m.SentAt, before, after)
	}
	if err := q.Delete(t.Context(), m.Receipt); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

func testRedelivery(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, time.Second)
	send(t, q, `{"n":1}`)
	first := receiveOne(t, q, queues.ReceiveOptions{})
	received := time.Now()
	receiveNone(t, q, 0, "while the message is in flight")

	// A waiting receive picks the message up once its visibility runs out, not at the end of the
	// wait (SQS's long poll returns as soon as a message is available).
	again := receiveOne(t, q, queues.ReceiveOptions{Wait: 10 * time.Second})
	if took := time.Since(received); took > 4*time.Second {
		t.Errorf("redelivered %v after the first receive, want soon after its 1s visibility timeout", took)
	}
	if again.ID != first.ID {
		t.Errorf("redelivered ID = %q, want %q", again.ID, first.ID)
	}
	if string(again.Body) != `{"n":1}` {
		t.Errorf("redelivered body = %q", again.Body)
	}
	if again.ReceiveCount != 2 {
		t.Errorf("redelivered ReceiveCount = %d, want 2", again.ReceiveCount)
	}
	if again.Receipt == first.Receipt {
		t.Errorf("redelivery kept receipt %q, want a new one", again.Receipt)
	}
	if err := q.Delete(t.Context(), again.Receipt); err != nil {
		t.Fatalf("Delete with the new receipt: %v", err)
	}
}

func testChangeVisibilityExtends(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, time.Second)
	send(t, q, `{"n":1}`)
	m := receiveOne(t, q, queues.ReceiveOptions{})
	if err := q.ChangeVisibility(t.Context(), m.Receipt, 3*time.Second); err != nil {
		t.Fatalf("ChangeVisibility: %v", err)
	}
	// The queue's 1 s would have run out during this wait; the extension has not.
	receiveNone(t, q, 2*time.Second, "while its visibility is extended")

	back := receiveOne(t, q, queues.ReceiveOptions{})
	if back.ID != m.ID || back.ReceiveCount != 2 {
		t.Errorf("after the extension got ID %q count %d, want ID %q count 2", back.ID, back.ReceiveCount, m.ID)
	}
	if err := q.Delete(t.Context(), back.Receipt); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

func testChangeVisibilityZero(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, time.Minute)
	send(t, q, `{"n":1}`)
	m := receiveOne(t, q, queues.ReceiveOptions{})
	if err := q.ChangeVisibility(t.Context(), m.Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility 0: %v", err)
	}
	// Without the release the message would stay hidden for a minute, far past this wait.
	back := receiveOne(t, q, queues.ReceiveOptions{})
	if back.ID != m.ID || back.ReceiveCount != 2 {
		t.Errorf("after release got ID %q count %d, want ID %q count 2", back.ID, back.ReceiveCount, m.ID)
	}
}

func testDelete(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, time.Second)
	send(t, q, `{"n":1}`, `{"n":2}`)
	a := receiveOne(t, q, queues.ReceiveOptions{})
	b := receiveOne(t, q, queues.ReceiveOptions{})
	if err := q.Delete(t.Context(), a.Receipt, b.Receipt); err != nil {
		t.Fatalf("Delete two: %v", err)
	}
	// Both would be back after their 1 s visibility had they not been deleted.
	receiveNone(t, q, 2*time.Second, "after Delete")
	if err := q.ChangeVisibility(t.Context(), a.Receipt, 0); !errors.Is(err, queues.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility of a deleted message: error = %v, want ErrInvalidReceipt", err)
	}
	if err := q.Delete(t.Context()); err != nil {
		t.Errorf("Delete of no receipts: %v, want nil", err)
	}
}

func testMalformedReceipt(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, time.Second)
	const bogus = "not-a-receipt"
	if err := q.Delete(t.Context(), bogus); !errors.Is(err, queues.ErrInvalidReceipt) {
		t.Errorf("Delete(%q) error = %v, want ErrInvalidReceipt", bogus, err)
	}
	if err := q.ChangeVisibility(t.Context(), bogus, time.Second); !errors.Is(err, queues.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility(%q) error = %v, want ErrInvalidReceipt", bogus, err)
	}
}

func testDeadLetter(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	qs := openQueues(t, open,
		queues.Spec{Name: "work", Visibility: time.Second, DeadLetter: "dlq", MaxReceives: 2},
		queues.Spec{Name: "dlq", Visibility: time.Second},
	)
	work, dlq := qs[0], qs[1]
	const body = `{"run_id":"r-dead","order_num":"0002","attempt":1}`
	send(t, work, body)
	for want := 1; want <= 2; want++ {
		m := receiveOne(t, work, queues.ReceiveOptions{})
		if m.ReceiveCount != want {
			t.Fatalf("receive %d: ReceiveCount = %d", want, m.ReceiveCount)
		}
	}
	// Received MaxReceives times: when it next comes up it goes to the dead-letter queue.
	receiveNone(t, work, 2*time.Second, "after MaxReceives receives")

	for listing := 1; listing <= 2; listing++ {
		dead, err := queues.ListDeadLetters(t.Context(), dlq, 10)
		if err != nil {
			t.Fatalf("ListDeadLetters %d: %v", listing, err)
		}
		if len(dead) != 1 || string(dead[0].Body) != body {
			t.Fatalf("ListDeadLetters %d: got %d messages %v, want the one dead-lettered body", listing, len(dead), bodies(dead))
		}
	}

	moved, err := queues.MoveDeadLetters(t.Context(), dlq, work, 10)
	if err != nil {
		t.Fatalf("MoveDeadLetters: %v", err)
	}
	if moved != 1 {
		t.Fatalf("MoveDeadLetters moved %d, want 1", moved)
	}
	if dead, err := queues.ListDeadLetters(t.Context(), dlq, 10); err != nil || len(dead) != 0 {
		t.Fatalf("ListDeadLetters after the move: %d messages, error %v; want none", len(dead), err)
	}
	back := receiveOne(t, work, queues.ReceiveOptions{})
	if string(back.Body) != body || back.ReceiveCount != 1 {
		t.Errorf("moved back: body %q count %d, want %q count 1", back.Body, back.ReceiveCount, body)
	}
	if err := work.Delete(t.Context(), back.Receipt); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

func testDelay(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, 30*time.Second)
	sent := time.Now()
	err := q.Send(t.Context(),
		queues.Outgoing{Body: []byte(`{"delayed":false}`)},
		queues.Outgoing{Body: []byte(`{"delayed":true}`), Delay: 2 * time.Second},
	)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	now := receiveOne(t, q, queues.ReceiveOptions{Max: queues.MaxBatch, Wait: time.Second})
	if string(now.Body) != `{"delayed":false}` {
		t.Fatalf("first receive got %q, want only the undelayed message", now.Body)
	}
	later := receiveOne(t, q, queues.ReceiveOptions{Max: queues.MaxBatch, Wait: 10 * time.Second})
	if string(later.Body) != `{"delayed":true}` {
		t.Fatalf("second receive got %q, want the delayed message", later.Body)
	}
	if waited := time.Since(sent); waited < 1500*time.Millisecond || waited > 4500*time.Millisecond {
		t.Errorf("delayed message arrived %v after Send, want about 2s", waited)
	}
}

func testBatch(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, time.Second)
	want := map[string]bool{}
	var out []string
	for i := range queues.MaxBatch {
		b := fmt.Sprintf(`{"order_num":"%04d"}`, i+1)
		want[b] = true
		out = append(out, b)
	}
	send(t, q, out...)

	got := map[string]bool{}
	var receipts []string
	first, err := q.Receive(t.Context(), queues.ReceiveOptions{Max: 3, Wait: mustArrive, Visibility: 30 * time.Second})
	if err != nil {
		t.Fatalf("Receive max 3: %v", err)
	}
	if len(first) == 0 || len(first) > 3 {
		t.Fatalf("Receive max 3 returned %d messages, want 1 to 3", len(first))
	}
	msgs := first
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range msgs {
			if got[string(m.Body)] {
				t.Fatalf("message %q delivered twice within its visibility timeout", m.Body)
			}
			got[string(m.Body)] = true
			receipts = append(receipts, m.Receipt)
		}
		if len(got) == len(want) || time.Now().After(deadline) {
			break
		}
		msgs, err = q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch, Wait: 2 * time.Second, Visibility: 30 * time.Second})
		if err != nil {
			t.Fatalf("Receive max 10: %v", err)
		}
		if len(msgs) > queues.MaxBatch {
			t.Fatalf("Receive max 10 returned %d messages", len(msgs))
		}
	}
	for b := range want {
		if !got[b] {
			t.Errorf("message %s never received (got %d of %d)", b, len(got), len(want))
		}
	}
	if err := q.Delete(t.Context(), receipts...); err != nil {
		t.Fatalf("Delete %d receipts: %v", len(receipts), err)
	}
	for _, r := range receipts {
		if err := q.ChangeVisibility(t.Context(), r, 0); !errors.Is(err, queues.ErrInvalidReceipt) {
			t.Fatalf("ChangeVisibility after batch Delete: error = %v, want ErrInvalidReceipt", err)
		}
	}
}

func testBatchLimits(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, 30*time.Second)
	eleven := make([]queues.Outgoing, queues.MaxBatch+1)
	for i := range eleven {
		eleven[i] = queues.Outgoing{Body: []byte(`{"n":1}`)}
	}
	if err := q.Send(t.Context(), eleven...); err == nil {
		t.Errorf("Send of %d messages: no error", len(eleven))
	}
	if _, err := q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch + 1}); err == nil {
		t.Errorf("Receive with Max %d: no error", queues.MaxBatch+1)
	}
	// The refused Send sent nothing.
	receiveNone(t, q, time.Second, "after a refused Send")

	// Max 0 means 1.
	send(t, q, `{"n":1}`, `{"n":2}`)
	msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Wait: mustArrive})
	if err != nil {
		t.Fatalf("Receive with Max 0: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("Receive with Max 0 returned %d messages, want 1", len(msgs))
	}

	receipts := make([]string, queues.MaxBatch+1)
	for i := range receipts {
		receipts[i] = msgs[0].Receipt
	}
	if err := q.Delete(t.Context(), receipts...); err == nil {
		t.Errorf("Delete of %d receipts: no error", len(receipts))
	}
	// The refused Delete deleted nothing: the receipt still works.
	if err := q.ChangeVisibility(t.Context(), msgs[0].Receipt, 0); err != nil {
		t.Errorf("ChangeVisibility after a refused Delete: %v", err)
	}
}

func testLongPollWakesOnSend(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, 30*time.Second)
	const wait = 15 * time.Second
	var wg sync.WaitGroup
	sendErr := make(chan error, 1)
	wg.Go(func() {
		time.Sleep(500 * time.Millisecond) // let the receive start waiting
		sendErr <- q.Send(t.Context(), queues.Outgoing{Body: []byte(`{"wake":true}`)})
	})
	start := time.Now()
	msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Wait: wait})
	took := time.Since(start)
	wg.Wait()
	if err := <-sendErr; err != nil {
		t.Fatalf("Send from another goroutine: %v", err)
	}
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(msgs) != 1 || string(msgs[0].Body) != `{"wake":true}` {
		t.Fatalf("Receive got %v, want the message sent while it waited", bodies(msgs))
	}
	if took > 4*time.Second {
		t.Errorf("Receive returned %v after it started, want soon after the Send at 0.5s (wait was %v)", took, wait)
	}
}

func testLongPollEndsEmpty(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, 30*time.Second)
	start := time.Now()
	msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch, Wait: time.Second})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Receive on an empty queue: error %v, want none", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("Receive on an empty queue: %d messages", len(msgs))
	}
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("Receive with a 1s wait returned after %v", took)
	}
}

func testContextEndsWait(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, 30*time.Second)

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := q.Receive(ctx, queues.ReceiveOptions{Wait: 15 * time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Receive cancelled while waiting: error = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("cancelled Receive returned after %v, want soon after the cancel at 0.3s", took)
	}

	if _, err := q.Receive(ctx, queues.ReceiveOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive with an ended context: error = %v, want context.Canceled", err)
	}

	dctx, dcancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer dcancel()
	if _, err := q.Receive(dctx, queues.ReceiveOptions{Wait: 15 * time.Second}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Receive past its context's deadline: error = %v, want context.DeadlineExceeded", err)
	}
}

func bodies(msgs []queues.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Body)
	}
	return out
}

func stats(t *testing.T, q queues.Queue) queues.Stats {
	t.Helper()
	s, err := q.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats of %s: %v", q.Name(), err)
	}
	if s.AgeKnown && s.OldestAge < 0 {
		t.Errorf("Stats of %s: a negative age %v", q.Name(), s.OldestAge)
	}
	return s
}

func testStats(t *testing.T, open func(t *testing.T, specs []queues.Spec) queues.Broker) {
	q := openQueue(t, open, 30*time.Second)
	if s := stats(t, q); s.Visible != 0 || s.InFlight != 0 || s.Delayed != 0 || (s.AgeKnown && s.OldestAge != 0) {
		t.Errorf("Stats of an empty queue: %+v", s)
	}
	err := q.Send(t.Context(),
		queues.Outgoing{Body: []byte(`{"n":1}`)}, queues.Outgoing{Body: []byte(`{"n":2}`)}, queues.Outgoing{Body: []byte(`{"n":3}`)},
		queues.Outgoing{Body: []byte(`{"delayed":true}`), Delay: 10 * time.Minute},
	)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if s := stats(t, q); s.Visible != 3 || s.InFlight != 0 || s.Delayed != 1 {
		t.Errorf("Stats after sending 3 and 1 delayed: got %+v, want 3 visible, 1 delayed", s)
	}
	m := receiveOne(t, q, queues.ReceiveOptions{})
	if s := stats(t, q); s.Visible != 2 || s.InFlight != 1 || s.Delayed != 1 {
		t.Errorf("Stats after receiving 1: got %+v, want 2 visible, 1 in flight, 1 delayed", s)
	}
	if err := q.Delete(t.Context(), m.Receipt); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if s := stats(t, q); s.Visible != 2 || s.InFlight != 0 || s.Delayed != 1 {
		t.Errorf("Stats after deleting it: got %+v, want 2 visible, 0 in flight, 1 delayed", s)
	}
}
