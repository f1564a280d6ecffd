package producers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/store"
)

// runsSetup is a real HTTP server over a SQLite store holding three runs of one repository.
type runsSetup struct {
	srv   *httptest.Server
	store store.Store
	runs  []domain.Run // oldest first
}

func setupRuns(t *testing.T) runsSetup {
	t.Helper()
	dir := t.TempDir()
	_, st := sqlitedbtest.Ports(t, sqlitedbtest.Open(t, dir))
	internal, err := folderblobs.New(filepath.Join(dir, "blobs"), "internal", folderblobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &producers.Server{Accepter: &producers.Accepter{Blobs: internal}, Store: st, Done: internal, Insecure: true,
		GitHubWebURL: "https://git.example"}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var runs []domain.Run
	for i := range 3 {
		trace := domain.NewTraceID()
		run := domain.Run{RunID: domain.NewRunID(base) + "-" + trace, TraceID: trace, FlowID: domain.FlowID("ada", trace, "exec"),
			Username: "ada", GitRepo: "acme/infra", PRNumber: 40 + i, Status: domain.RunRunning, OrderCount: 2, Open: 2,
			CreatedAt: base.Add(time.Duration(i) * time.Minute), Deadline: base.Add(2 * time.Hour)}
		exit := 3
		orders := []domain.OrderRecord{
			{RunID: run.RunID, OrderNum: 1, TraceID: trace, OrderName: "plan", QueueID: "plan", Target: domain.TargetLambda,
				MustSucceed: true, Timeout: 60, Status: domain.OrderFailed, Attempt: 1, ExitCode: &exit,
				StartedAt: run.CreatedAt, FinishedAt: run.CreatedAt.Add(1500 * time.Millisecond),
				Reason: "command 2 exited with 3", LogTail: "Error: <script>alert(1)</script> bucket not found\n", Dependents: []int{2}},
			{RunID: run.RunID, OrderNum: 2, TraceID: trace, OrderName: "apply", QueueID: "apply", Target: domain.TargetCodeBuild,
				MustSucceed: true, Timeout: 60, Status: domain.OrderWaiting, Deps: []int{1}, DueAt: base.Add(time.Hour)},
		}
		if err := st.CreateRun(t.Context(), run, orders); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run)
	}
	if err := st.UpdateRun(t.Context(), store.RunChange{RunID: runs[0].RunID, From: []domain.RunStatus{domain.RunRunning},
		To: domain.RunFailed, FinishedAt: base.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	runs[0].Status = domain.RunFailed
	return runsSetup{srv: srv, store: st, runs: runs}
}

func get(t *testing.T, url, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestListRunsPagesNewestFirstWithFilters(t *testing.T) {
	t.Parallel()
	s := setupRuns(t)
	var ids []string
	next := s.srv.URL + "/runs?username=ada&limit=2"
	for next != "" {
		resp, body := get(t, next, "")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET %s: %d %s: %s", next, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var list producers.RunList
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatal(err)
		}
		for _, r := range list.Runs {
			ids = append(ids, r.RunID)
		}
		next = ""
		if list.NextURL != "" {
			if !strings.Contains(list.NextURL, "username=ada") || !strings.Contains(list.NextURL, "limit=2") {
				t.Errorf("next_url %q drops the filters", list.NextURL)
			}
			next = s.srv.URL + list.NextURL
		}
	}
	want := []string{s.runs[2].RunID, s.runs[1].RunID, s.runs[0].RunID}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("GET /runs pages: got %v, want %v", ids, want)
	}

	for query, want := range map[string][]string{
		"status=failed":            {s.runs[0].RunID},
		"repo=acme/infra&pr=41":    {s.runs[1].RunID},
		"username=nobody":          {},
		"status=running&limit=500": {s.runs[2].RunID, s.runs[1].RunID},
	} {
		_, body := get(t, s.srv.URL+"/runs?"+query, "application/json")
		var list producers.RunList
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("%s: %v: %s", query, err, body)
		}
		var got []string
		for _, r := range list.Runs {
			got = append(got, r.RunID)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("GET /runs?%s: got %v, want %v", query, got, want)
		}
	}
}

func TestListRunsRefusesABadQueryNamingTheParameter(t *testing.T) {
	t.Parallel()
	s := setupRuns(t)
	for query, param := range map[string]string{
		"status=done": "status", "pr=x": "pr", "pr=0": "pr", "limit=0": "limit", "limit=501": "limit", "after=nope": "after",
	} {
		resp, body := get(t, s.srv.URL+"/runs?"+query, "")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"path": "`+param+`"`) {
			t.Errorf("GET /runs?%s: got %d %s, want 400 naming %s", query, resp.StatusCode, body, param)
		}
	}
}

func TestRunPageForABrowser(t *testing.T) {
	t.Parallel()
	s := setupRuns(t)
	run := s.runs[1]
	resp, body := get(t, s.srv.URL+"/runs/"+run.RunID, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /runs/{id} as a browser: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		run.RunID, `data-order="plan" data-status="failed"`, `data-order="apply" data-status="waiting"`,
		"command 2 exited with 3", "&lt;script&gt;alert(1)&lt;/script&gt; bucket not found", // the log tail, escaped
		`href="/runs/` + run.RunID + `/orders/plan/log"`, `href="https://git.example/acme/infra/pull/41"`,
		`data-live="true"`, "1.5s", "lambda", "codebuild",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the run page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert(1)") {
		t.Errorf("the run page carries an order's output unescaped")
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "src=\"https:") {
		t.Errorf("the run page loads something from elsewhere")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy: got %q", csp)
	}

	_, body = get(t, s.srv.URL+"/runs/"+s.runs[0].RunID, "text/html")
	if !strings.Contains(body, `data-live="false"`) {
		t.Errorf("the page of an ended run still refreshes itself")
	}

	// A running order's log link follows its output.
	for _, to := range []domain.OrderStatus{domain.OrderQueued, domain.OrderRunning} {
		change := store.OrderChange{RunID: run.RunID, OrderNum: 2, From: []domain.OrderStatus{domain.OrderWaiting, domain.OrderQueued},
			Attempt: store.AnyAttempt, To: to, DueAt: time.Now().Add(time.Hour), NextAttempt: to == domain.OrderRunning}
		if to == domain.OrderRunning {
			change.StartedAt = time.Now() // as a claim sets it
		}
		if _, err := s.store.UpdateOrder(t.Context(), change); err != nil {
			t.Fatal(err)
		}
	}
	_, body = get(t, s.srv.URL+"/runs/"+run.RunID, "text/html")
	if want := `href="/runs/` + run.RunID + `/orders/apply/log?follow=true"`; !strings.Contains(body, want) {
		t.Errorf("the page of a running order lacks %s", want)
	}

	resp, body = get(t, s.srv.URL+"/runs/"+run.RunID, "")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(body, `"run_id": "`+run.RunID) {
		t.Errorf("GET /runs/{id} without Accept: got %s: %s", resp.Header.Get("Content-Type"), body)
	}
}

func TestRunsPageForABrowser(t *testing.T) {
	t.Parallel()
	s := setupRuns(t)
	resp, body := get(t, s.srv.URL+"/runs?limit=2", "text/html")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /runs as a browser: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`href="/runs/` + s.runs[2].RunID + `"`, `href="/runs/` + s.runs[1].RunID + `"`, `id="next"`, "#42"} {
		if !strings.Contains(body, want) {
			t.Errorf("the runs page lacks %q", want)
		}
	}
	if strings.Contains(body, s.runs[0].RunID) {
		t.Errorf("the runs page shows more than a page")
	}
}
