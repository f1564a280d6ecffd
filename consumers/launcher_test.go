package consumers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
	"github.com/iac-ci/iac-ci/secrets/localsecrets"
)

// Values the launcher tests look for: the secret and the plain variable must reach no Launch.
const (
	launchSecretPath = "/iac-ci/test/db-password"
	launchSecret     = "s3cr3t-launch-value-5521"
	launchPlain      = "plain-launch-value-7731"
	launchGrace      = 45 * time.Second
)

// recordingStarter is a target that records each launch and answers with the next error of its
// script (nil once the script is used up).
type recordingStarter struct {
	mu       sync.Mutex
	errs     []error
	launches []consumers.Launch
}

func (s *recordingStarter) Start(_ context.Context, l consumers.Launch) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.launches = append(s.launches, l)
	var err error
	if len(s.errs) > 0 {
		err, s.errs = s.errs[0], s.errs[1:]
	}
	return "launch-" + strconv.Itoa(len(s.launches)), err
}

func (s *recordingStarter) recorded() []consumers.Launch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]consumers.Launch(nil), s.launches...)
}

type launchFixture struct {
	engine   *engine.Engine
	intake   *producers.Intake
	broker   *sqlitequeue.Broker
	starter  *recordingStarter
	launcher func(target domain.Target) *consumers.Launcher
}

// setupLauncher makes an engine on the embedded adapters, its blob server on a test HTTP server
// (so presigned URLs are real), and launchers that hand their orders to a recordingStarter.
func setupLauncher(t *testing.T, errs ...error) *launchFixture {
	t.Helper()
	dir := t.TempDir()
	db := sqlitedbtest.Open(t, dir)
	broker, st := sqlitedbtest.Ports(t, db)
	results, err := broker.Queue(queues.Results)
	if err != nil {
		t.Fatalf("results queue: %v", err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	notify := func(ctx context.Context, body []byte) error { return results.Send(ctx, queues.Outgoing{Body: body}) }
	baseURL := func() string { return srv.URL }
	internal, err := folderblobs.New(filepath.Join(dir, "blobs"), "internal", folderblobs.Options{BaseURL: baseURL, Notify: notify})
	if err != nil {
		t.Fatalf("internal bucket: %v", err)
	}
	done, err := folderblobs.New(filepath.Join(dir, "blobs"), "done", folderblobs.Options{BaseURL: baseURL})
	if err != nil {
		t.Fatalf("done bucket: %v", err)
	}
	mux.Handle("/blobs/", folderblobs.Handler(internal, done))
	keys, err := localsecrets.NewKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	secretsFile := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(secretsFile, []byte(`{"`+launchSecretPath+`": "`+launchSecret+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := localsecrets.LoadSource(secretsFile)
	if err != nil {
		t.Fatalf("secrets: %v", err)
	}
	e := &engine.Engine{Store: st, Queues: broker, Blobs: internal, Done: done, Keys: keys,
		Log: slog.New(slog.NewTextHandler(launchTestLog{t}, nil)), Grace: launchGrace}
	f := &launchFixture{
		engine:  e,
		intake:  &producers.Intake{Engine: e, Secrets: src, WorkDir: t.TempDir()},
		broker:  broker,
		starter: &recordingStarter{errs: errs},
	}
	f.launcher = func(target domain.Target) *consumers.Launcher {
		return &consumers.Launcher{Engine: e, Starter: f.starter,
			RunKeyParameter: func(runID string) (string, error) { return "/iac-ci/run-keys/" + runID, nil }}
	}
	return f
}

type launchTestLog struct{ t *testing.T }

func (w launchTestLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (f *launchFixture) queue(t *testing.T, target domain.Target) queues.Queue {
	t.Helper()
	return f.queueNamed(t, queues.Orders(string(target)))
}

func (f *launchFixture) queueNamed(t *testing.T, name string) queues.Queue {
	t.Helper()
	q, err := f.broker.Queue(name)
	if err != nil {
		t.Fatalf("queue %s: %v", name, err)
	}
	return q
}

// submit runs intake on a job of orders and returns the run id.
func (f *launchFixture) submit(t *testing.T, orders ...domain.Order) string {
	t.Helper()
	job := domain.Job{Username: "tester", Orders: orders}
	job.Normalize(false)
	if err := domain.Validate(job); err != nil {
		t.Fatalf("job: %v", err)
	}
	now := time.Now().UTC()
	req := domain.Request{RunID: domain.NewRunID(now), TraceID: domain.NewTraceID(), Source: "test", ReceivedAt: now, Job: job}
	req.FlowID = domain.FlowID(job.Username, req.TraceID, job.FlowLabel)
	if err := f.intake.Process(t.Context(), req); err != nil {
		t.Fatalf("intake: %v", err)
	}
	return req.RunID
}

// receive takes the next n messages off a target's queue.
func (f *launchFixture) receive(t *testing.T, target domain.Target, n int) []queues.Message {
	t.Helper()
	var got []queues.Message
	for len(got) < n {
		msgs, err := f.queue(t, target).Receive(t.Context(), queues.ReceiveOptions{Max: n - len(got), Wait: 2 * time.Second})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(msgs) == 0 {
			t.Fatalf("receive from %s: got %d messages, want %d", target, len(got), n)
		}
		got = append(got, msgs...)
	}
	return got
}

func (f *launchFixture) order(t *testing.T, runID string, num int) domain.OrderRecord {
	t.Helper()
	o, err := f.engine.Store.GetOrder(t.Context(), runID, num)
	if err != nil {
		t.Fatalf("get order %d: %v", num, err)
	}
	return o
}

func codebuildOrder(name string) domain.Order {
	return domain.Order{
		OrderName: name, Cmds: []string{"echo $DB_PASSWORD $PLAIN"}, Timeout: 120,
		ExecutionTarget: domain.TargetCodeBuild, SSMPaths: []string{launchSecretPath},
		EnvVars: map[string]string{"PLAIN": launchPlain},
	}
}

func httpCall(t *testing.T, method, u string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, got
}

func TestLauncherLaunchesClaimedOrderWithURLsOnly(t *testing.T) {
	t.Parallel()
	f := setupLauncher(t)
	runID := f.submit(t, codebuildOrder("plan"))
	msg := f.receive(t, domain.TargetCodeBuild, 1)[0]
	l := f.launcher(domain.TargetCodeBuild)
	if err := l.Handle(t.Context(), msg); err != nil {
		t.Fatalf("handle: %v", err)
	}

	launches := f.starter.recorded()
	if len(launches) != 1 {
		t.Fatalf("launches: got %d, want 1", len(launches))
	}
	got := launches[0]
	if got.RunID != runID || got.OrderNum != 1 || got.Attempt != 1 || got.OrderName != "plan" || got.Timeout != 120 {
		t.Fatalf("launch names run %s order %d (%s) attempt %d timeout %d, want %s 1 (plan) 1 120",
			got.RunID, got.OrderNum, got.OrderName, got.Attempt, got.Timeout, runID)
	}
	if want := "/iac-ci/run-keys/" + runID; got.RunKeyParameter != want {
		t.Fatalf("run key parameter: got %q, want %q", got.RunKeyParameter, want)
	}
	if got.Delivery != launchGrace {
		t.Fatalf("delivery window: got %v, want the engine's grace %v", got.Delivery, launchGrace)
	}
	if got.SSMTargets != nil || got.SSMDocument != "" {
		t.Fatalf("a codebuild launch has ssm settings: %+v %q", got.SSMTargets, got.SSMDocument)
	}
	if o := f.order(t, runID, 1); o.Status != domain.OrderRunning || o.Attempt != 1 {
		t.Fatalf("order after launch: got %s attempt %d, want running attempt 1", o.Status, o.Attempt)
	}
	enc, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{launchSecret, launchPlain} {
		if bytes.Contains(enc, []byte(v)) {
			t.Fatalf("the launch carries the order's environment value %q: %s", v, enc)
		}
	}

	// The URLs are real: the bundle comes back, and result and log land under this attempt's keys.
	ctx := t.Context()
	wantBundle, err := f.engine.Blobs.Get(ctx, blobs.ExecKey(runID, 1))
	if err != nil {
		t.Fatalf("bundle: %v", err)
	}
	if code, body := httpCall(t, http.MethodGet, got.BundleURL, nil); code != http.StatusOK || !bytes.Equal(body, wantBundle) {
		t.Fatalf("GET bundle URL: got %d and %d bytes, want 200 and the %d bytes of exec.zip", code, len(body), len(wantBundle))
	}
	for _, c := range []struct{ url, key string }{
		{got.CallbackURL, blobs.ResultKey(runID, 1, 1)},
		{got.LogURL, blobs.LogKey(runID, 1, 1)},
	} {
		body := []byte("written to " + c.key)
		if code, _ := httpCall(t, http.MethodPut, c.url, body); code != http.StatusOK {
			t.Fatalf("PUT for %s: got %d, want 200", c.key, code)
		}
		if stored, err := f.engine.Blobs.Get(ctx, c.key); err != nil || !bytes.Equal(stored, body) {
			t.Fatalf("object %s: got %q, %v, want %q", c.key, stored, err, body)
		}
	}

	// The same message again (a duplicate delivery) launches nothing.
	if err := l.Handle(ctx, msg); err != nil {
		t.Fatalf("handle duplicate: %v", err)
	}
	if n := len(f.starter.recorded()); n != 1 {
		t.Fatalf("launches after a duplicate: got %d, want 1", n)
	}
}

func TestLauncherRefusedLaunchFailsOrder(t *testing.T) {
	t.Parallel()
	refusal := fmt.Errorf("codebuild StartBuild (project iac-ci-worker) refused: ResourceNotFoundException: %w", consumers.ErrLaunchRefused)
	f := setupLauncher(t, refusal)
	runID := f.submit(t, codebuildOrder("plan"))
	msg := f.receive(t, domain.TargetCodeBuild, 1)[0]
	if err := f.launcher(domain.TargetCodeBuild).Handle(t.Context(), msg); err != nil {
		t.Fatalf("handle: got %v, want nil (the message is done)", err)
	}
	o := f.order(t, runID, 1)
	if o.Status != domain.OrderFailed || !strings.Contains(o.Reason, "ResourceNotFoundException") || !strings.Contains(o.Reason, "iac-ci-worker") {
		t.Fatalf("order: got %s (%q), want failed naming the project and the error", o.Status, o.Reason)
	}
	run, err := f.engine.Store.GetRun(t.Context(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != domain.RunFailed {
		t.Fatalf("run: got %s, want failed", run.Status)
	}
}

func TestLauncherPassingErrorLeavesMessageForANewAttempt(t *testing.T) {
	t.Parallel()
	f := setupLauncher(t, errors.New("codebuild StartBuild: ServiceUnavailable"))
	runID := f.submit(t, codebuildOrder("plan"))
	q := f.queue(t, domain.TargetCodeBuild)
	msg := f.receive(t, domain.TargetCodeBuild, 1)[0]
	l := f.launcher(domain.TargetCodeBuild)
	if err := l.Handle(t.Context(), msg); err == nil {
		t.Fatal("handle: got nil, want the passing error (the message stays)")
	}
	if o := f.order(t, runID, 1); o.Status != domain.OrderRunning || o.Attempt != 1 {
		t.Fatalf("order after a passing error: got %s attempt %d, want running attempt 1", o.Status, o.Attempt)
	}

	// The message comes back once its visibility runs out: a new attempt, with URLs of its own.
	if err := q.ChangeVisibility(t.Context(), msg.Receipt, 0); err != nil {
		t.Fatal(err)
	}
	again := f.receive(t, domain.TargetCodeBuild, 1)[0]
	if again.ReceiveCount != 2 {
		t.Fatalf("receive count: got %d, want 2", again.ReceiveCount)
	}
	if err := l.Handle(t.Context(), again); err != nil {
		t.Fatalf("handle again: %v", err)
	}
	launches := f.starter.recorded()
	if len(launches) != 2 {
		t.Fatalf("launches: got %d, want 2", len(launches))
	}
	second := launches[1]
	if second.Attempt != 2 || !strings.Contains(second.CallbackURL, "/callbacks/"+runID+"/0001/2/result.json") {
		t.Fatalf("second launch: attempt %d, want 2 with a callback URL for attempt 2", second.Attempt)
	}
	if o := f.order(t, runID, 1); o.Status != domain.OrderRunning || o.Attempt != 2 {
		t.Fatalf("order: got %s attempt %d, want running attempt 2", o.Status, o.Attempt)
	}
}

// A target at capacity turns launches away for as long as its running work lasts: more times
// than an order's message may be received. The order must wait for it, not be dead-lettered.
func TestLauncherWaitsOutATargetAtCapacityWithoutSpendingReceives(t *testing.T) {
	t.Parallel()
	turnedAway := queues.MaxReceivesDefault + 3
	var errs []error
	for range turnedAway {
		errs = append(errs, fmt.Errorf("codebuild StartBuild: AccountLimitExceededException: %w", consumers.ErrAtCapacity))
	}
	f := setupLauncher(t, errs...)
	runID := f.submit(t, codebuildOrder("plan"))
	l := f.launcher(domain.TargetCodeBuild)
	l.CapacityBackoff = 5 * time.Millisecond

	var (
		mu       sync.Mutex
		receives []int
	)
	ctx, cancel := context.WithCancel(t.Context())
	loop := &consumers.Loop{Queue: f.queue(t, domain.TargetCodeBuild), Log: f.engine.Logger(), Batch: 1,
		Handler: func(ctx context.Context, m queues.Message) error {
			mu.Lock()
			receives = append(receives, m.ReceiveCount)
			mu.Unlock()
			return l.Handle(ctx, m)
		}}
	done := make(chan struct{})
	go func() { defer close(done); loop.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	deadline := time.Now().Add(20 * time.Second)
	for len(f.starter.recorded()) <= turnedAway {
		if time.Now().After(deadline) {
			t.Fatalf("launches: %d after 20 s, want %d (turned away %d times, then started)", len(f.starter.recorded()), turnedAway+1, turnedAway)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	o := f.order(t, runID, 1)
	if o.Status != domain.OrderRunning || o.Attempt != turnedAway+1 {
		t.Fatalf("order: got %s attempt %d, want running attempt %d", o.Status, o.Attempt, turnedAway+1)
	}
	mu.Lock()
	for i, n := range receives {
		if n != 1 {
			t.Errorf("receive %d: receive count %d, want 1 (a capacity refusal must not count towards dead-lettering)", i+1, n)
		}
	}
	mu.Unlock()
	dlq, err := f.queueNamed(t, queues.Orders(string(domain.TargetCodeBuild))+queues.DeadLetterSuffix).Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if dlq.Visible+dlq.InFlight+dlq.Delayed != 0 {
		t.Fatalf("dead-letter queue: %+v, want empty", dlq)
	}
	events, err := f.engine.Store.ListEvents(t.Context(), o.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	putBack := 0
	for _, ev := range events {
		if ev.Status == string(domain.OrderQueued) && strings.Contains(ev.Details, "AccountLimitExceededException") {
			putBack++
		}
	}
	if putBack != turnedAway {
		t.Fatalf("history: %d put-backs naming the refusal, want %d", putBack, turnedAway)
	}
}

func TestLauncherSSMTargetsAndDocumentFromTheBundle(t *testing.T) {
	t.Parallel()
	f := setupLauncher(t)
	runID := f.submit(t,
		domain.Order{OrderName: "by-id", Cmds: []string{"true"}, Timeout: 600, ExecutionTarget: domain.TargetSSM,
			SSMTargets: &domain.SSMTargets{InstanceIDs: []string{"i-0123456789abcdef0"}}},
		domain.Order{OrderName: "by-tag", Cmds: []string{"true"}, Timeout: 600, ExecutionTarget: domain.TargetSSM,
			SSMTargets: &domain.SSMTargets{Tags: map[string]string{"role": "web"}}, SSMDocumentName: "team-run-commands"},
	)
	l := f.launcher(domain.TargetSSM)
	l.DefaultDocument = "deployed-run-commands"
	for _, m := range f.receive(t, domain.TargetSSM, 2) {
		if err := l.Handle(t.Context(), m); err != nil {
			t.Fatalf("handle: %v", err)
		}
	}
	byNum := map[int]consumers.Launch{}
	for _, x := range f.starter.recorded() {
		byNum[x.OrderNum] = x
	}
	if len(byNum) != 2 {
		t.Fatalf("launches: got orders %v, want 1 and 2", byNum)
	}
	one, two := byNum[1], byNum[2]
	// Order 1 names no document: it runs the deployment's.
	if one.SSMTargets == nil || strings.Join(one.SSMTargets.InstanceIDs, ",") != "i-0123456789abcdef0" || one.SSMDocument != "deployed-run-commands" {
		t.Fatalf("order 1: targets %+v document %q, want i-0123456789abcdef0 and deployed-run-commands", one.SSMTargets, one.SSMDocument)
	}
	if two.SSMTargets == nil || two.SSMTargets.Tags["role"] != "web" || two.SSMDocument != "team-run-commands" {
		t.Fatalf("order 2: targets %+v document %q, want tag role=web and team-run-commands", two.SSMTargets, two.SSMDocument)
	}
	for n := 1; n <= 2; n++ {
		if o := f.order(t, runID, n); o.Status != domain.OrderRunning {
			t.Fatalf("order %d: got %s, want running", n, o.Status)
		}
	}
}

func TestLauncherSSMOrderWithoutBundleFails(t *testing.T) {
	t.Parallel()
	f := setupLauncher(t)
	runID := f.submit(t, domain.Order{OrderName: "gone", Cmds: []string{"true"}, Timeout: 60, ExecutionTarget: domain.TargetSSM,
		SSMTargets: &domain.SSMTargets{InstanceIDs: []string{"i-0123456789abcdef0"}}})
	if err := f.engine.Blobs.Delete(t.Context(), blobs.ExecKey(runID, 1)); err != nil {
		t.Fatal(err)
	}
	msg := f.receive(t, domain.TargetSSM, 1)[0]
	if err := f.launcher(domain.TargetSSM).Handle(t.Context(), msg); err != nil {
		t.Fatalf("handle: %v", err)
	}
	if n := len(f.starter.recorded()); n != 0 {
		t.Fatalf("launches: got %d, want none", n)
	}
	if o := f.order(t, runID, 1); o.Status != domain.OrderFailed || !strings.Contains(o.Reason, "bundle") {
		t.Fatalf("order: got %s (%q), want failed, naming the bundle", o.Status, o.Reason)
	}
}
