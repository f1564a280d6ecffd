package producers

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/store"
)

// RunSummary is one run in a list of runs (GET /runs, `iac-ci runs`).
type RunSummary struct {
	RunID      string           `json:"run_id"`
	TraceID    string           `json:"trace_id"`
	FlowID     string           `json:"flow_id"`
	Status     domain.RunStatus `json:"status"`
	Username   string           `json:"username"`
	GitRepo    string           `json:"git_repo,omitempty"`
	PRNumber   int              `json:"pr_number,omitempty"`
	Source     string           `json:"source,omitempty"`
	OrderCount int              `json:"order_count"`
	Open       int              `json:"open"`
	CreatedAt  *time.Time       `json:"created_at,omitempty"`
	FinishedAt *time.Time       `json:"finished_at,omitempty"`
}

// RunList is a page of runs, newest first, as GET /runs answers it.
type RunList struct {
	Runs []RunSummary `json:"runs"`
	// Next is the cursor of the next page (the after parameter), empty on the last page;
	// NextURL is the same page's address with it.
	Next    string `json:"next,omitempty"`
	NextURL string `json:"next_url,omitempty"`
}

// SummaryOf is a run as a list shows it.
func SummaryOf(r domain.Run) RunSummary {
	return RunSummary{RunID: r.RunID, TraceID: r.TraceID, FlowID: r.FlowID, Status: r.Status, Username: r.Username,
		GitRepo: r.GitRepo, PRNumber: r.PRNumber, Source: r.Source, OrderCount: r.OrderCount, Open: r.Open,
		CreatedAt: timePtr(r.CreatedAt), FinishedAt: timePtr(r.FinishedAt)}
}

// ListOf is a page of the store's listing as GET /runs answers it; query is the request's, so
// that the next page keeps its filters.
func ListOf(page store.RunPage, path string, query url.Values) RunList {
	l := RunList{Runs: make([]RunSummary, 0, len(page.Runs)), Next: page.Next}
	for _, r := range page.Runs {
		l.Runs = append(l.Runs, SummaryOf(r))
	}
	if page.Next != "" {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("after", page.Next)
		l.NextURL = path + "?" + q.Encode()
	}
	return l
}

var runStatuses = []domain.RunStatus{domain.RunAccepted, domain.RunRunning, domain.RunSucceeded, domain.RunFailed, domain.RunTimedOut}

// RunFilterOf reads GET /runs's query: status, repo, pr, username, limit, after. Every
// malformed parameter is a problem named after it.
func RunFilterOf(q url.Values) (store.RunFilter, error) {
	f := store.RunFilter{GitRepo: q.Get("repo"), Username: q.Get("username"), After: q.Get("after")}
	var problems []domain.Problem
	if s := q.Get("status"); s != "" {
		f.Status = domain.RunStatus(s)
		known := false
		for _, st := range runStatuses {
			known = known || st == f.Status
		}
		if !known {
			problems = append(problems, domain.Problem{Path: "status",
				Message: strconv.Quote(s) + " is not a run status: use accepted, running, succeeded, failed or timed_out"})
		}
	}
	if s := q.Get("pr"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			problems = append(problems, domain.Problem{Path: "pr", Message: strconv.Quote(s) + " is not a pull request number: give a positive integer"})
		}
		f.PRNumber = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxRunPage {
			problems = append(problems, domain.Problem{Path: "limit",
				Message: strconv.Quote(s) + " is not a page size: give an integer from 1 to " + strconv.Itoa(store.MaxRunPage)})
		}
		f.Limit = n
	}
	if f.After != "" {
		if _, _, err := store.ParseRunCursor(f.After); err != nil {
			problems = append(problems, domain.Problem{Path: "after", Message: err.Error()})
		}
	}
	if len(problems) > 0 {
		return f, &domain.ValidationError{Problems: problems}
	}
	return f, nil
}

// listRuns is GET /runs: a page of runs as JSON, or the runs page for a browser.
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	f, err := RunFilterOf(r.URL.Query())
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "bad query: " + ve.Problems[0].String(), "problems": ve.Problems})
		return
	}
	page, err := s.Store.ListRuns(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list := ListOf(page, r.URL.Path, r.URL.Query())
	if wantsHTML(r) {
		s.renderRunsPage(w, r, f, list)
		return
	}
	writeJSON(w, http.StatusOK, list)
}
