package producers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
)

const (
	httpSecret = "http-test-webhook-secret"
	httpToken  = "http-test-api-token-0c41"
)

// serverSetup is the real HTTP handler on a real listener, over the embedded adapters of
// setupIntake, with a clock the test moves.
type serverSetup struct {
	intakeSetup
	server *producers.Server
	url    string
	now    atomic.Pointer[time.Time]
	logs   *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func setupServer(t *testing.T, configure func(*producers.Server)) *serverSetup {
	t.Helper()
	s := &serverSetup{intakeSetup: setupIntake(t), logs: &syncBuffer{}}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now.Store(&start)
	log := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), s.logs), nil))
	s.server = &producers.Server{Accepter: s.accepter, Store: s.engine.Store, Done: s.engine.Done,
		Secret: []byte(httpSecret), APIToken: []byte(httpToken), Log: log, Now: func() time.Time { return *s.now.Load() }}
	s.accepter.Now = s.server.Now
	if configure != nil {
		configure(s.server)
	}
	ts := httptest.NewServer(s.server.Handler())
	t.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

func (s *serverSetup) advance(d time.Duration) {
	next := s.now.Load().Add(d)
	s.now.Store(&next)
}

// do sends a request and returns its status and body.
func (s *serverSetup) do(t *testing.T, method, path string, body []byte, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// post sends a signed job body to /webhook and decodes the answer.
func (s *serverSetup) post(t *testing.T, body string) (int, producers.Accepted) {
	t.Helper()
	code, out := s.do(t, http.MethodPost, "/webhook", []byte(body),
		http.Header{"X-Hub-Signature-256": {producers.Sign([]byte(httpSecret), []byte(body))}})
	var acc producers.Accepted
	if code == http.StatusAccepted {
		if err := json.Unmarshal([]byte(out), &acc); err != nil {
			t.Fatalf("answer %s: %v", out, err)
		}
	}
	return code, acc
}

// intakeAll hands every queued intake message to intake, as the intake consumer would, and
// returns how many there were.
func (s *serverSetup) intakeAll(t *testing.T) int {
	t.Helper()
	msgs := s.receive(t, queues.Intake)
	for _, m := range msgs {
		if err := s.intake.Handle(t.Context(), m); err != nil {
			t.Fatalf("intake: %v", err)
		}
	}
	return len(msgs)
}

// startRun posts a job through the HTTP handler and takes it through intake.
func (s *serverSetup) startRun(t *testing.T, body string) producers.Accepted {
	t.Helper()
	code, acc := s.post(t, body)
	if code != http.StatusAccepted {
		t.Fatalf("POST /webhook: %d", code)
	}
	if n := s.intakeAll(t); n != 1 {
		t.Fatalf("%d intake messages, want 1", n)
	}
	return acc
}

func jobBody(name string) string {
	return `{"username": "alice", "orders": [{"order_name": "` + name + `", "cmds": ["true"], "timeout": 60}]}`
}

// Unauthenticated reads of a run answer 401; the API token opens them; /healthz stays open.
func TestReadRoutesNeedTheAPIToken(t *testing.T) {
	t.Parallel()
	// A route added later through Reads is guarded as the built-in ones are.
	s := setupServer(t, func(s *producers.Server) {
		s.Reads = map[string]http.Handler{"GET /metrics": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "metrics")
		})}
	})
	run := s.startRun(t, jobBody("plan"))
	if code, body := s.do(t, http.MethodGet, "/metrics", nil, bearer(httpToken)); code != http.StatusOK || body != "metrics" {
		t.Errorf("GET /metrics with the token: %d %s, want 200", code, body)
	}
	if code, _ := s.do(t, http.MethodGet, "/metrics"+s.server.RunLinkQuery(run.RunID), nil, nil); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a run's link: %d, want 401 (a link opens its run only)", code)
	}
	for _, path := range []string{"/metrics", "/runs/" + run.RunID, "/runs/" + run.RunID + "/events", "/done/" + run.RunID} {
		if code, body := s.do(t, http.MethodGet, path, nil, nil); code != http.StatusUnauthorized || !strings.Contains(body, "Authorization: Bearer") {
			t.Errorf("GET %s without a token: %d %s, want 401 saying how to authenticate", path, code, body)
		}
		if code, _ := s.do(t, http.MethodGet, path, nil, bearer("not-the-token")); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
		if code, _ := s.do(t, http.MethodGet, path, nil, http.Header{"Authorization": {"Basic " + httpToken}}); code != http.StatusUnauthorized {
			t.Errorf("GET %s with the token as Basic: %d, want 401", path, code)
		}
	}
	code, body := s.do(t, http.MethodGet, "/runs/"+run.RunID, nil, bearer(httpToken))
	if code != http.StatusOK || !strings.Contains(body, `"run_id": "`+run.RunID+`"`) {
		t.Errorf("GET /runs/{id} with the token: %d %s, want 200 with the run", code, body)
	}
	if code, _ := s.do(t, http.MethodGet, "/runs/"+run.RunID+"/events", nil, bearer(httpToken)); code != http.StatusOK {
		t.Errorf("GET /runs/{id}/events with the token: %d, want 200", code)
	}
	if code, _ := s.do(t, http.MethodGet, "/healthz", nil, nil); code != http.StatusOK {
		t.Errorf("GET /healthz without a token: %d, want 200", code)
	}
}

// A server without an API token answers no read, unless it is insecure or guarded upstream
// (where API Gateway checked the caller's SigV4 signature, which fills the Authorization header).
func TestReadRoutesWithoutAConfiguredToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		config func(*producers.Server)
		want   int
	}{
		{"no token", func(s *producers.Server) { s.APIToken = nil }, http.StatusUnauthorized},
		{"insecure", func(s *producers.Server) { s.APIToken, s.Insecure = nil, true }, http.StatusOK},
		{"guarded upstream", func(s *producers.Server) { s.APIToken, s.GuardedUpstream = nil, true }, http.StatusOK},
		{"insecure with a token", func(s *producers.Server) { s.Insecure = true }, http.StatusUnauthorized},
		{"guarded upstream with a token", func(s *producers.Server) { s.GuardedUpstream = true }, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := setupServer(t, tc.config)
			acc := s.startRun(t, jobBody("plan"))
			if code, body := s.do(t, http.MethodGet, "/runs/"+acc.RunID, nil, nil); code != tc.want {
				t.Errorf("GET /runs/{id} without a token: %d %s, want %d", code, body, tc.want)
			}
		})
	}
}

// A signed link opens its own run, read-only, until it expires, and no other run.
func TestRunLinkOpensItsRunAndNoOther(t *testing.T) {
	t.Parallel()
	s := setupServer(t, func(s *producers.Server) { s.LinkTTL = 48 * time.Hour })
	mine := s.startRun(t, jobBody("mine"))
	other := s.startRun(t, jobBody("other"))
	q := s.server.RunLinkQuery(mine.RunID)
	if !strings.HasPrefix(q, "?t=") {
		t.Fatalf("RunLinkQuery = %q, want ?t=...", q)
	}
	if strings.Contains(q, httpToken) {
		t.Fatalf("the link %q carries the API token", q)
	}
	for _, path := range []string{"/runs/" + mine.RunID, "/runs/" + mine.RunID + "/events"} {
		if code, body := s.do(t, http.MethodGet, path+q, nil, nil); code != http.StatusOK || !strings.Contains(body, mine.RunID) {
			t.Errorf("GET %s with its link: %d %s, want 200", path, code, body)
		}
	}
	if code, body := s.do(t, http.MethodGet, "/done/"+mine.RunID+q, nil, nil); code != http.StatusAccepted {
		t.Errorf("GET /done/{id} of a running run with its link: %d %s, want 202", code, body)
	}
	for _, path := range []string{"/runs/" + other.RunID, "/runs/" + other.RunID + "/events", "/done/" + other.RunID} {
		if code, body := s.do(t, http.MethodGet, path+q, nil, nil); code != http.StatusUnauthorized || !strings.Contains(body, "another run") {
			t.Errorf("GET %s with another run's link: %d %s, want 401", path, code, body)
		}
	}
	// Altered: the expiry pushed later, the signature kept.
	exp, sig, _ := strings.Cut(strings.TrimPrefix(q, "?t="), ".")
	altered := "?t=9" + exp + "." + sig
	if code, _ := s.do(t, http.MethodGet, "/runs/"+mine.RunID+altered, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("GET with an altered link: %d, want 401", code)
	}
	// Read-only: a link is no token for a method other than GET.
	if code, _ := s.do(t, http.MethodPost, "/runs/"+mine.RunID+q, nil, nil); code == http.StatusOK {
		t.Errorf("POST with a link: %d, want it refused", code)
	}
	s.advance(47 * time.Hour)
	if code, _ := s.do(t, http.MethodGet, "/runs/"+mine.RunID+q, nil, nil); code != http.StatusOK {
		t.Errorf("GET with a link before its expiry: %d, want 200", code)
	}
	s.advance(3 * time.Hour)
	if code, body := s.do(t, http.MethodGet, "/runs/"+mine.RunID+q, nil, nil); code != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Errorf("GET with an expired link: %d %s, want 401", code, body)
	}
	// A server with another token does not take the link.
	s.server.APIToken = []byte("a-new-token")
	s.advance(-3 * time.Hour)
	if code, _ := s.do(t, http.MethodGet, "/runs/"+mine.RunID+q, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("GET with a link signed under the old token: %d, want 401", code)
	}
}

// The same signed body posted again answers the first run and starts no second one, within
// the replay window; after it, the body is a new job again.
func TestReplayedSignedBodyStartsNoSecondRun(t *testing.T) {
	t.Parallel()
	s := setupServer(t, func(s *producers.Server) { s.ReplayWindow = time.Hour })
	body := jobBody("apply")
	first := s.startRun(t, body)
	for i, step := range []time.Duration{0, 10 * time.Minute, 45 * time.Minute} {
		s.advance(step)
		code, again := s.post(t, body)
		if code != http.StatusAccepted || again.RunID != first.RunID || again.TraceID != first.TraceID || !again.Duplicate {
			t.Fatalf("replay %d: %d %+v, want 202 naming run %s as a duplicate", i, code, again, first.RunID)
		}
		if n := s.intakeAll(t); n != 0 {
			t.Fatalf("replay %d queued %d intake messages, want none", i, n)
		}
	}
	if _, err := s.engine.Store.GetRun(t.Context(), first.RunID); err != nil {
		t.Fatalf("first run: %v", err)
	}
	// The window passed: the same body is a job of its own again.
	s.advance(10 * time.Minute)
	later := s.startRun(t, body)
	if later.RunID == first.RunID || later.Duplicate {
		t.Fatalf("after the window: %+v, want a new run", later)
	}
	// Another body is another run at once.
	if other := s.startRun(t, jobBody("destroy")); other.RunID == later.RunID {
		t.Fatalf("another body got run %s too", other.RunID)
	}
}

// Identical bodies posted at once make one run: they share a run id, and intake of one run
// twice inserts it once.
func TestConcurrentReplaysMakeOneRun(t *testing.T) {
	t.Parallel()
	s := setupServer(t, nil)
	body := jobBody("apply")
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			code, acc := s.post(t, body)
			if code != http.StatusAccepted {
				t.Errorf("post %d: %d", i, code)
			}
			ids[i] = acc.RunID
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("run ids %v, want one", ids)
		}
	}
	s.intakeAll(t)
	if orders := s.orders(t, ids[0]); len(orders) != 1 {
		t.Fatalf("run %s has %d orders, want 1", ids[0], len(orders))
	}
}

// Ids that no run could have answer 404 before they reach storage, and no answer names a
// storage key.
func TestUnknownIDsAnswer404(t *testing.T) {
	t.Parallel()
	s := setupServer(t, nil)
	for _, path := range []string{"/done/..%2f..", "/done/..%2f..%2frequests", "/runs/..%2fx", "/runs/%2e%2e/events",
		"/runs/no-such-run", "/runs/no-such-run/events", "/done/no-such-run", "/done/" + strings.Repeat("a", 200)} {
		code, body := s.do(t, http.MethodGet, path, nil, bearer(httpToken))
		if code != http.StatusNotFound || !strings.Contains(body, "no such run") {
			t.Errorf("GET %s: %d %s, want 404 no such run", path, code, body)
		}
		if strings.Contains(body, "done/") || strings.Contains(body, "requests/") || strings.Contains(body, ".json") {
			t.Errorf("GET %s names a storage key: %s", path, body)
		}
	}
	if logs := s.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("unknown ids logged errors:\n%s", logs)
	}
}

// GET /done/{id} of a run that has not ended answers 202, not finished yet.
func TestDoneBeforeTheRunEnds(t *testing.T) {
	t.Parallel()
	s := setupServer(t, nil)
	code, acc := s.post(t, jobBody("plan"))
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d", code)
	}
	check := func(stage string, want domain.RunStatus) {
		t.Helper()
		code, body := s.do(t, http.MethodGet, "/done/"+acc.RunID, nil, bearer(httpToken))
		var nf producers.NotFinished
		if code != http.StatusAccepted || json.Unmarshal([]byte(body), &nf) != nil || nf.Error != "not finished yet" || nf.Status != want {
			t.Errorf("%s: GET /done/{id}: %d %s, want 202 not finished yet, status %s", stage, code, body, want)
		}
	}
	check("accepted", domain.RunAccepted)
	s.intakeAll(t)
	check("after intake", domain.RunRunning)
}

// A trace_id another run already has is refused: a run's history is its own.
func TestTraceIDOfAnotherRunIsRefused(t *testing.T) {
	t.Parallel()
	s := setupServer(t, nil)
	first := s.startRun(t, `{"trace_id": "shared-trace", "job_parameters_b64": "`+b64(jobBody("plan"))+`"}`)
	steal := []byte(`{"trace_id": "shared-trace", "run_id": "second-run", "job_parameters_b64": "` + b64(jobBody("steal")) + `"}`)
	code, body := s.do(t, http.MethodPost, "/webhook", steal, http.Header{"X-Hub-Signature-256": {producers.Sign([]byte(httpSecret), steal)}})
	if code != http.StatusBadRequest || !strings.Contains(body, "trace_id") || strings.Contains(body, first.RunID) {
		t.Fatalf("second run with the first's trace_id: %d %s, want 400 naming trace_id (and not the other run)", code, body)
	}
	if n := s.intakeAll(t); n != 0 {
		t.Fatalf("refused job queued %d intake messages", n)
	}
	// The first run's own retry, naming its trace, is still its own.
	code, again := s.post(t, `{"trace_id": "shared-trace", "job_parameters_b64": "`+b64(jobBody("plan"))+`"}`)
	if code != http.StatusAccepted || again.RunID != first.RunID {
		t.Fatalf("retry of the first run: %d %+v, want it named", code, again)
	}
}

// A server whose Health fails answers /healthz and the accepting routes 503, and stores nothing.
func TestUnhealthyServerTakesNoJobs(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	s := setupServer(t, func(s *producers.Server) {
		s.Health = func(context.Context) error {
			if broken.Load() {
				return errors.New("database iac-ci.db was removed")
			}
			return nil
		}
	})
	if code, _ := s.do(t, http.MethodGet, "/healthz", nil, nil); code != http.StatusOK {
		t.Fatalf("healthy /healthz: %d", code)
	}
	broken.Store(true)
	if code, body := s.do(t, http.MethodGet, "/healthz", nil, nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "iac-ci.db was removed") {
		t.Errorf("/healthz: %d %s, want 503 saying why", code, body)
	}
	for _, path := range []string{"/webhook", "/ssm"} {
		body := jobBody("plan")
		code, _ := s.do(t, http.MethodPost, path, []byte(body), http.Header{"X-Hub-Signature-256": {producers.Sign([]byte(httpSecret), []byte(body))}})
		if code != http.StatusServiceUnavailable {
			t.Errorf("POST %s: %d, want 503", path, code)
		}
	}
	if n := s.intakeAll(t); n != 0 {
		t.Errorf("an unhealthy server queued %d jobs", n)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// Two runs accepted at once under one chosen trace_id (the second is refused only once the first
// has a history) still read back their own histories alone.
func TestRunsSharingATraceKeepTheirOwnHistories(t *testing.T) {
	t.Parallel()
	s := setupServer(t, nil)
	var runs []producers.Accepted
	for _, name := range []string{"first", "second"} {
		code, acc := s.post(t, `{"trace_id": "raced-trace", "job_parameters_b64": "`+b64(jobBody(name))+`"}`)
		if code != http.StatusAccepted {
			t.Fatalf("POST %s: %d", name, code)
		}
		runs = append(runs, acc)
	}
	if n := s.intakeAll(t); n != 2 {
		t.Fatalf("%d intake messages, want 2", n)
	}
	for i, acc := range runs {
		code, body := s.do(t, http.MethodGet, "/runs/"+acc.RunID+"/events", nil, bearer(httpToken))
		var h struct {
			Events []domain.Event `json:"events"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &h) != nil || len(h.Events) == 0 {
			t.Fatalf("GET events of run %d: %d %s", i, code, body)
		}
		for _, e := range h.Events {
			if e.RunID != acc.RunID {
				t.Errorf("history of run %s holds an event of run %s: %+v", acc.RunID, e.RunID, e)
			}
		}
	}
}
