package producers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/deadletters"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/store"
)

// Errors the HTTP layer answers with a status of their own (see statusOf).
var (
	ErrSignature  = errors.New("missing or wrong X-Hub-Signature-256: sign the body with HMAC-SHA256 and the webhook secret")
	ErrTooLarge   = fmt.Errorf("body larger than %d bytes", domain.MaxBodyBytes)
	ErrBadMethod  = errors.New("method not allowed")
	ErrNoSuchPath = errors.New("no such endpoint")
	// ErrNoSuchRun: no run has that id (or the id is not one iac-ci could have made).
	ErrNoSuchRun = errors.New("no such run")
	// ErrUnavailable: the server cannot keep what it would accept (its Health check fails).
	ErrUnavailable = errors.New("unavailable")
)

// statusOf maps errors onto HTTP statuses, in one place.
func statusOf(err error) int {
	var ve *domain.ValidationError
	switch {
	case errors.As(err, &ve):
		return http.StatusBadRequest
	case errors.Is(err, ErrSignature), errors.Is(err, ErrNoToken), errors.Is(err, ErrBadToken),
		errors.Is(err, ErrBadLink), errors.Is(err, ErrNoTokenConfigured):
		return http.StatusUnauthorized
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrNoSuchPath), errors.Is(err, ErrNoSuchRun), errors.Is(err, store.ErrNotFound), errors.Is(err, blobs.ErrNotFound),
		errors.Is(err, deadletters.ErrNotFound), errors.Is(err, ErrNoSuchOrder), errors.Is(err, ErrNoSuchAttempt),
		errors.Is(err, ErrLogNotKept):
		return http.StatusNotFound
	case errors.Is(err, ErrNotRedrivable):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// EventSource turns a GitHub event into a job to run, or says why there is none.
type EventSource func(ctx context.Context, event string, body []byte) (job *domain.Job, reason string, err error)

// Server is the HTTP face of iac-ci: the producers, run status, and health.
type Server struct {
	Accepter *Accepter
	Store    store.Store
	Done     blobs.Bucket
	// Secret signs webhook bodies; empty only with Insecure.
	Secret []byte
	// Insecure accepts unsigned bodies and, without an APIToken, answers every read and control
	// route unauthenticated (local experiments only).
	Insecure bool
	// APIToken guards every read and control route: callers send Authorization: Bearer <token>,
	// or open a signed link to one run (LinkToken). Without one, and without Insecure or
	// GuardedUpstream, those routes answer 401.
	APIToken []byte
	// GuardedUpstream says something in front of the server authenticates every read and control
	// request (API Gateway's IAM auth on the webhook function's GET routes, whose SigV4 signature
	// takes the Authorization header), so that what reaches those routes is let through. With
	// IAM off (status_authorization NONE), the APIToken guards them here instead.
	GuardedUpstream bool
	// LinkTTL is how long a signed run link is valid; DefaultLinkTTL when zero.
	LinkTTL time.Duration
	// ReplayWindow is how long a signed job body without a run_id is remembered: posted again
	// within it, it answers the first run and starts none. DefaultReplayWindow when zero.
	ReplayWindow time.Duration
	// Health reports whether the server can keep what it accepts (its data folder is still
	// there); nil is always healthy. When it fails, /healthz answers 503 and so does every
	// route that would accept a job.
	Health func(ctx context.Context) error
	// Now is the clock of links and the replay window; time.Now when nil.
	Now func() time.Time
	// GitHub handles requests with an X-GitHub-Event header; nil answers them 501.
	GitHub EventSource
	Log    *slog.Logger
	// Extra serves other paths that carry their own authentication (the embedded blob URLs,
	// each presigned); may be nil.
	Extra map[string]http.Handler
	// Control serves the operators' routes: dead letters (list, show, redrive, purge) and
	// reruns. Nil serves none.
	Control *Control
	// Reads serves more read or control routes (pattern to handler), guarded as the built-in
	// ones are; may be nil.
	Reads map[string]http.Handler
	// GitHubWebURL is where the status page links pull requests; empty is https://github.com.
	GitHubWebURL string
	// Observer is told how webhook and SSM requests were answered; Metrics serves GET /metrics.
	// Both may be nil.
	Observer RequestObserver
	Metrics  http.Handler
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	rt := routes{s: s, mux: http.NewServeMux()}
	// The signed posts carry their own authentication, the body's signature.
	rt.open("/webhook", s.observed("webhook", s.webhook))
	rt.open("/ssm", s.observed("ssm", s.ssm))
	rt.open("GET /healthz", s.healthz)
	// Every read and control route: API token, or a signed link to one run for a GET of it.
	rt.guarded("GET /runs", s.listRuns)
	rt.guarded("GET /runs/{run_id}", s.runStatus)
	rt.guarded("GET /runs/{run_id}/events", s.runEvents)
	rt.guarded("GET /done/{run_id}", s.done)
	if s.Metrics != nil {
		rt.guarded("GET /metrics", s.Metrics.ServeHTTP)
	}
	if s.Control != nil {
		rt.guarded("POST /runs/{run_id}/rerun", s.rerun)
		rt.guarded("GET /runs/{run_id}/orders/{order}/log", s.orderLog)
		rt.guarded("GET /dead-letters", s.listDeadLetters)
		rt.guarded("GET /dead-letters/{id}", s.showDeadLetter)
		rt.guarded("POST /dead-letters/{id}/redrive", s.redriveDeadLetter)
		rt.guarded("DELETE /dead-letters/{id}", s.purgeDeadLetter)
	}
	for p, h := range s.Reads {
		rt.guarded(p, h.ServeHTTP)
	}
	for p, h := range s.Extra {
		rt.mux.Handle(p, h) // the embedded blob URLs: each carries its own signature
	}
	rt.open("/", func(w http.ResponseWriter, r *http.Request) { s.fail(w, r, ErrNoSuchPath) })
	return rt.mux
}

// routes registers the server's routes. A read or control route is registered with guarded
// (or given in Server.Reads), and so gets the one authentication (guard) and the check of its run
// id; only the signed posts and /healthz are open. A route about one run names its wildcard
// {run_id}: that is what a signed run link is checked against, and what is checked to be an id.
type routes struct {
	s   *Server
	mux *http.ServeMux
}

func (rt routes) open(pattern string, h http.HandlerFunc) { rt.mux.HandleFunc(pattern, h) }

func (rt routes) guarded(pattern string, h http.HandlerFunc) {
	rt.mux.Handle(pattern, rt.s.guard(rt.s.checkIDs(h)))
}

// checkIDs answers 404 for a {run_id} that no run could have, before it reaches storage (where
// "../x" would be a path, not an id).
func (s *Server) checkIDs(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id := r.PathValue("run_id"); id != "" && !ValidID(id) {
			s.fail(w, r, ErrNoSuchRun)
			return
		}
		next(w, r)
	}
}

// ValidID reports whether id is a well-formed run id (or trace id): 1 to 128 letters, digits,
// '.', '_' or '-', starting with a letter or digit.
func ValidID(id string) bool { return idPattern.MatchString(id) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.healthy(r.Context()); err != nil {
		s.Log.ErrorContext(r.Context(), "health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) healthy(ctx context.Context) error {
	if s.Health == nil {
		return nil
	}
	if err := s.Health(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	body := map[string]any{"error": err.Error()}
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		body["error"] = fmt.Sprintf("job rejected: %d problem(s)", len(ve.Problems))
		body["problems"] = ve.Problems
	}
	switch code {
	case http.StatusInternalServerError:
		s.Log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		body["error"] = "internal error"
	case http.StatusNotFound:
		// Never a storage key or an adapter's words: what was not found, in the API's terms.
		switch {
		case errors.Is(err, ErrNoSuchPath):
			body["error"] = ErrNoSuchPath.Error()
		case errors.Is(err, deadletters.ErrNotFound), errors.Is(err, ErrNoSuchOrder), errors.Is(err, ErrNoSuchAttempt),
			errors.Is(err, ErrLogNotKept):
			body["error"] = err.Error()
		default:
			body["error"] = ErrNoSuchRun.Error()
		}
	case http.StatusServiceUnavailable:
		s.Log.ErrorContext(r.Context(), "request refused", "path", r.URL.Path, "err", err)
	}
	if code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// readSigned reads a POST body within the size limit and checks its signature.
func (s *Server) readSigned(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Method != http.MethodPost {
		return nil, ErrBadMethod
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, domain.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, ErrTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if !s.Insecure && !ValidSignature(s.Secret, body, r.Header.Get("X-Hub-Signature-256")) {
		return nil, ErrSignature
	}
	return body, nil
}

// ValidSignature checks a GitHub-style signature header, "sha256=<hex HMAC-SHA256 of body>".
func ValidSignature(secret, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(secret) == 0 {
		return false
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// Sign returns the X-Hub-Signature-256 value of body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if err := s.healthy(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := s.readSigned(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if event := r.Header.Get("X-GitHub-Event"); event != "" {
		s.githubEvent(w, r, event, body)
		return
	}
	s.submit(w, r, body, "webhook", false)
}

func (s *Server) ssm(w http.ResponseWriter, r *http.Request) {
	if err := s.healthy(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := s.readSigned(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.submit(w, r, body, "ssm", true)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, body []byte, source string, ssm bool) {
	job, env, err := domain.DecodeJob(body)
	sub := Submission{Job: job, Envelope: env, Source: source, SSM: ssm}
	if err != nil {
		s.fail(w, r, s.Accepter.Reject(sub, err))
		return
	}
	if !s.Insecure && env.RunID == "" {
		// A signed body names no run: posted again (a retry, or a replay of a captured body)
		// within the replay window, it is the same run.
		prev, runID, err := s.replayed(r.Context(), source, body)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if prev != nil {
			s.Log.InfoContext(r.Context(), "signed body seen before: answered with its run", "run_id", prev.RunID, "source", source)
			writeJSON(w, http.StatusAccepted, prev)
			return
		}
		sub.RunID = runID
	}
	if err := s.checkTrace(r.Context(), sub); err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := s.Accepter.Accept(r.Context(), sub)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if acc.Duplicate {
		s.Log.InfoContext(r.Context(), "job accepted before: answered with its run", "run_id", acc.RunID, "source", source)
		writeJSON(w, http.StatusAccepted, acc)
		return
	}
	s.Log.InfoContext(r.Context(), "job accepted", "run_id", acc.RunID, "trace_id", acc.TraceID, "source", source)
	writeJSON(w, http.StatusAccepted, acc)
}

// checkTrace refuses a caller-chosen trace_id that another run already has: a run's history is
// stored under its trace id, and belongs to that run alone. (A run accepted a moment ago but not
// yet through intake has no history yet and is not seen; RunEvents keeps only the run's own
// events, so even then the histories do not mix.)
func (s *Server) checkTrace(ctx context.Context, sub Submission) error {
	trace := sub.Envelope.TraceID
	if trace == "" || !ValidID(trace) {
		return nil // none chosen, or Prepare reports it
	}
	runID := sub.RunID
	if runID == "" {
		runID = sub.Envelope.RunID
	}
	events, err := s.Store.ListEvents(ctx, trace)
	if err != nil {
		return fmt.Errorf("look up trace_id: %w", err)
	}
	for _, e := range events {
		if e.RunID != runID {
			return &domain.ValidationError{Problems: []domain.Problem{{Path: "trace_id",
				Message: "already used by another run; choose another, or leave trace_id out for a fresh one"}}}
		}
	}
	return nil
}

// DefaultReplayWindow is how long a signed body without a run_id is remembered when
// Server.ReplayWindow is zero.
const DefaultReplayWindow = 24 * time.Hour

// replayed finds whether a signed body without a run_id was accepted within the replay window,
// as GitHub deliveries are found by their delivery id (GitHubRunID): the body's hash names its
// run. The run id is the start of the current window and the hash, so a body posted twice
// within one window maps onto one run (the Accepter answers the second post as a duplicate, and
// two posts racing each other insert one run, as CreateRun of an existing run changes nothing);
// a body first posted in the previous window is found under that window's id. prev is the first
// run's answer when the body was seen; otherwise runID is the id to accept it under.
func (s *Server) replayed(ctx context.Context, source string, body []byte) (prev *Accepted, runID string, err error) {
	window := s.ReplayWindow
	if window <= 0 {
		window = DefaultReplayWindow
	}
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write(body)
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	now := s.now().UTC()
	idAt := func(t time.Time) string { return t.Truncate(window).Format("20060102T150405Z") + "-" + sum }
	earlier := idAt(now.Add(-window))
	data, err := s.Accepter.Blobs.Get(ctx, blobs.RequestKey(earlier))
	switch {
	case err == nil:
		var req domain.Request
		if json.Unmarshal(data, &req) == nil && now.Sub(req.ReceivedAt) < window {
			return &Accepted{RunID: req.RunID, TraceID: req.TraceID, FlowID: req.FlowID,
				DoneEndpoint: req.DoneEndpoint, Duplicate: true}, "", nil
		}
	case !errors.Is(err, blobs.ErrNotFound):
		return nil, "", fmt.Errorf("look up an earlier post of the body: %w", err)
	}
	return nil, idAt(now), nil
}

// GitHubRunID maps a delivery id onto a run id, so a redelivered event names the run it started.
func GitHubRunID(delivery string) string {
	sum := sha256.Sum256([]byte(delivery))
	return "gh-" + hex.EncodeToString(sum[:12])
}

func (s *Server) githubEvent(w http.ResponseWriter, r *http.Request, event string, body []byte) {
	if event == "ping" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "pong"})
		return
	}
	if s.GitHub == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "GitHub events are not configured: start serve with --github-token or IAC_CI_GITHUB_TOKEN"})
		return
	}
	delivery := r.Header.Get("X-GitHub-Delivery")
	if delivery == "" {
		s.fail(w, r, &domain.ValidationError{Problems: []domain.Problem{{Path: "X-GitHub-Delivery", Message: "header missing: GitHub sends one with every delivery"}}})
		return
	}
	runID := GitHubRunID(delivery)
	if _, err := s.Accepter.Blobs.Get(r.Context(), blobs.RequestKey(runID)); err == nil {
		writeJSON(w, http.StatusOK, map[string]any{"status": "duplicate delivery: already accepted", "run_id": runID, "duplicate": true})
		return
	}
	job, reason, err := s.GitHub(r.Context(), event, body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if job == nil {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "ignored", "reason": reason})
		return
	}
	acc, err := s.Accepter.Accept(r.Context(), Submission{Job: *job, Source: "github", RunID: runID})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Log.InfoContext(r.Context(), "pull request run accepted", "run_id", acc.RunID, "trace_id", acc.TraceID, "event", event)
	writeJSON(w, http.StatusAccepted, acc)
}

// OrderView is one order in a run's status.
type OrderView struct {
	OrderName  string             `json:"order_name"`
	QueueID    string             `json:"queue_id"`
	OrderNum   int                `json:"order_num"`
	Target     domain.Target      `json:"execution_target"`
	Status     domain.OrderStatus `json:"status"`
	Attempt    int                `json:"attempt"`
	ExitCode   *int               `json:"exit_code"`
	StartedAt  *time.Time         `json:"started_at"`
	FinishedAt *time.Time         `json:"finished_at"`
	Reason     string             `json:"reason,omitempty"`
	LogKey     string             `json:"log_key,omitempty"`  // the whole log, when longer than its tail
	LogTail    string             `json:"log_tail,omitempty"` // the log's end (all of it, without a log_key), masked
}

// RunView is a run's status as GET /runs/{run_id} and `iac-ci run --json` show it.
type RunView struct {
	RunID      string           `json:"run_id"`
	TraceID    string           `json:"trace_id"`
	FlowID     string           `json:"flow_id"`
	Status     domain.RunStatus `json:"status"`
	CreatedAt  *time.Time       `json:"created_at,omitempty"`
	FinishedAt *time.Time       `json:"finished_at,omitempty"`
	Orders     []OrderView      `json:"orders"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ViewOf builds a run's status view.
func ViewOf(run domain.Run, orders []domain.OrderRecord) RunView {
	v := RunView{RunID: run.RunID, TraceID: run.TraceID, FlowID: run.FlowID, Status: run.Status,
		CreatedAt: timePtr(run.CreatedAt), FinishedAt: timePtr(run.FinishedAt), Orders: []OrderView{}}
	for _, o := range orders {
		v.Orders = append(v.Orders, orderView(o))
	}
	return v
}

// orderView is an order's status view.
func orderView(o domain.OrderRecord) OrderView {
	return OrderView{OrderName: o.OrderName, QueueID: o.QueueID, OrderNum: o.OrderNum,
		Target: o.Target, Status: o.Status, Attempt: o.Attempt, ExitCode: o.ExitCode,
		StartedAt: timePtr(o.StartedAt), FinishedAt: timePtr(o.FinishedAt), Reason: o.Reason, LogKey: o.LogKey, LogTail: o.LogTail}
}

func (s *Server) runStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run_id")
	run, err := s.Store.GetRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		// Accepted but not yet through intake: the stored request answers.
		if req, ok := s.request(r.Context(), id); ok {
			if wantsHTML(r) {
				s.runPage(w, r, domain.Run{RunID: req.RunID, TraceID: req.TraceID, FlowID: req.FlowID, Status: domain.RunAccepted}, nil)
				return
			}
			writeJSON(w, http.StatusOK, RunView{RunID: req.RunID, TraceID: req.TraceID, FlowID: req.FlowID,
				Status: domain.RunAccepted, Orders: []OrderView{}})
			return
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	orders, err := s.Store.ListOrders(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wantsHTML(r) {
		s.runPage(w, r, run, orders)
		return
	}
	writeJSON(w, http.StatusOK, ViewOf(run, orders))
}

// request reads the request a producer stored for runID, if it did.
func (s *Server) request(ctx context.Context, runID string) (domain.Request, bool) {
	var req domain.Request
	data, err := s.Accepter.Blobs.Get(ctx, blobs.RequestKey(runID))
	if err != nil || json.Unmarshal(data, &req) != nil {
		return req, false
	}
	return req, true
}

func (s *Server) runEvents(w http.ResponseWriter, r *http.Request) {
	run, err := s.Store.GetRun(r.Context(), r.PathValue("run_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	events, err := RunEvents(r.Context(), s.Store, run)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"run_id": run.RunID, "trace_id": run.TraceID, "events": events})
}

// RunEvents returns a run's history, in order. The store keys events by trace id, and a trace id
// is not given to a second run (the webhook refuses a trace_id another run has, checkTrace); the
// run's own are kept all the same, for two runs accepted at once under one chosen trace_id (the
// second is refused only once the first has a history) and for data folders of older versions.
func RunEvents(ctx context.Context, st store.Store, run domain.Run) ([]domain.Event, error) {
	events, err := st.ListEvents(ctx, run.TraceID)
	if err != nil {
		return nil, err
	}
	own := events[:0]
	for _, e := range events {
		if e.RunID == run.RunID {
			own = append(own, e)
		}
	}
	return own, nil
}

// NotFinished is what GET /done/{run_id} answers (202) for a run that has not ended yet.
type NotFinished struct {
	RunID  string           `json:"run_id"`
	Status domain.RunStatus `json:"status"`
	Error  string           `json:"error"`
}

func (s *Server) done(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run_id")
	data, err := s.Done.Get(r.Context(), blobs.DoneKey(id))
	if errors.Is(err, blobs.ErrNotFound) {
		// No done object yet: a run still going is told apart from no run at all.
		run, rerr := s.Store.GetRun(r.Context(), id)
		switch {
		case rerr == nil:
			writeJSON(w, http.StatusAccepted, NotFinished{RunID: id, Status: run.Status, Error: "not finished yet"})
		case !errors.Is(rerr, store.ErrNotFound):
			s.fail(w, r, rerr)
		default:
			if _, ok := s.request(r.Context(), id); ok {
				writeJSON(w, http.StatusAccepted, NotFinished{RunID: id, Status: domain.RunAccepted, Error: "not finished yet"})
				return
			}
			s.fail(w, r, ErrNoSuchRun)
		}
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}
