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
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/store"
)

// Errors the HTTP layer answers with a status of their own (see statusOf).
var (
	ErrSignature  = errors.New("missing or wrong X-Hub-Signature-256: sign the body with HMAC-SHA256 and the webhook secret")
	ErrTooLarge   = fmt.Errorf("body larger than %d bytes", domain.MaxBodyBytes)
	ErrBadMethod  = errors.New("method not allowed")
	ErrNoSuchPath = errors.New("no such endpoint")
)

// statusOf maps errors onto HTTP statuses, in one place.
func statusOf(err error) int {
	var ve *domain.ValidationError
	switch {
	case errors.As(err, &ve):
		return http.StatusBadRequest
	case errors.Is(err, ErrSignature):
		return http.StatusUnauthorized
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrNoSuchPath), errors.Is(err, store.ErrNotFound), errors.Is(err, blobs.ErrNotFound):
		return http.StatusNotFound
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
	Secret   []byte
	Insecure bool
	// GitHub handles requests with an X-GitHub-Event header; nil answers them 501.
	GitHub EventSource
	Log    *slog.Logger
	// Extra serves other paths (the embedded blob URLs), may be nil.
	Extra map[string]http.Handler
	// GitHubWebURL is where the status page links pull requests; empty is https://github.com.
	GitHubWebURL string
	// Observer is told how webhook and SSM requests were answered; Metrics serves GET /metrics.
	// Both may be nil.
	Observer RequestObserver
	Metrics  http.Handler
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/webhook", s.observed("webhook", s.webhook))
	mux.HandleFunc("/ssm", s.observed("ssm", s.ssm))
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	mux.HandleFunc("GET /runs", s.listRuns)
	mux.HandleFunc("GET /runs/{run_id}", s.runStatus)
	mux.HandleFunc("GET /runs/{run_id}/events", s.runEvents)
	mux.HandleFunc("GET /done/{run_id}", s.done)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	for p, h := range s.Extra {
		mux.Handle(p, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.fail(w, r, ErrNoSuchPath) })
	return mux
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	body := map[string]any{"error": err.Error()}
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		body["error"] = fmt.Sprintf("job rejected: %d problem(s)", len(ve.Problems))
		body["problems"] = ve.Problems
	}
	if code == http.StatusInternalServerError {
		s.Log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		body["error"] = "internal error"
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
	body, err := s.readSigned(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.submit(w, r, body, "ssm", true)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, body []byte, source string, ssm bool) {
	job, env, err := domain.DecodeJob(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	acc, err := s.Accepter.Accept(r.Context(), Submission{Job: job, Envelope: env, Source: source, SSM: ssm})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Log.InfoContext(r.Context(), "job accepted", "run_id", acc.RunID, "trace_id", acc.TraceID, "source", source)
	writeJSON(w, http.StatusAccepted, acc)
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
		v.Orders = append(v.Orders, OrderView{OrderName: o.OrderName, QueueID: o.QueueID, OrderNum: o.OrderNum,
			Target: o.Target, Status: o.Status, Attempt: o.Attempt, ExitCode: o.ExitCode,
			StartedAt: timePtr(o.StartedAt), FinishedAt: timePtr(o.FinishedAt), Reason: o.Reason, LogKey: o.LogKey, LogTail: o.LogTail})
	}
	return v
}

func (s *Server) runStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run_id")
	run, err := s.Store.GetRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		// Accepted but not yet through intake: the stored request answers.
		if data, gerr := s.Accepter.Blobs.Get(r.Context(), blobs.RequestKey(id)); gerr == nil {
			var req domain.Request
			if json.Unmarshal(data, &req) == nil {
				if wantsHTML(r) {
					s.runPage(w, r, domain.Run{RunID: req.RunID, TraceID: req.TraceID, FlowID: req.FlowID, Status: domain.RunAccepted}, nil)
					return
				}
				writeJSON(w, http.StatusOK, RunView{RunID: req.RunID, TraceID: req.TraceID, FlowID: req.FlowID,
					Status: domain.RunAccepted, Orders: []OrderView{}})
				return
			}
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

func (s *Server) runEvents(w http.ResponseWriter, r *http.Request) {
	run, err := s.Store.GetRun(r.Context(), r.PathValue("run_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	events, err := s.Store.ListEvents(r.Context(), run.TraceID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"run_id": run.RunID, "trace_id": run.TraceID, "events": events})
}

func (s *Server) done(w http.ResponseWriter, r *http.Request) {
	data, err := s.Done.Get(r.Context(), blobs.DoneKey(r.PathValue("run_id")))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}
