package producers

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/store"
)

// The status page is server-rendered: html/template escapes everything an order wrote (its log
// tail is code from a pull request), and the page's CSS and script are inlined from the binary,
// so it loads nothing from anywhere else and works with a signed link alone. While a run goes,
// the script fetches the same address again every few seconds and swaps the page's <main>.
//
//go:embed statuspage
var statusPageFiles embed.FS

// The page's style and script, read once: an open page fetches itself every few seconds.
var (
	pageCSS = template.CSS(mustRead("statuspage/page.css"))
	pageJS  = template.JS(mustRead("statuspage/page.js"))
)

var statusPage = template.Must(template.New("").Funcs(template.FuncMap{
	"css":  func() template.CSS { return pageCSS },
	"js":   func() template.JS { return pageJS },
	"list": func(v ...string) []string { return v },
}).ParseFS(statusPageFiles, "statuspage/*.html"))

func mustRead(name string) string {
	b, err := statusPageFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// contentPolicy lets the page run its own inline script and style and fetch its own origin,
// nothing else.
const contentPolicy = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'"

// RefreshInterval is how often an open status page of a running run reloads itself.
const RefreshInterval = 2 * time.Second

// wantsHTML reports whether the caller asked for a page (a browser) rather than JSON.
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.TrimSpace(mt) {
		case "text/html", "application/xhtml+xml":
			return true
		}
	}
	return false
}

// pageOrder is one order as the run page shows it.
type pageOrder struct {
	Num       int
	Name      string
	QueueID   string
	Target    domain.Target
	Status    domain.OrderStatus
	Attempt   int
	Duration  string
	Exit      string
	Deps      []string
	Reason    string
	LogTail   string // shown for an order that failed or timed out
	LogURL    string
	Failed    bool
	MustPass  bool
	Level     int
	Started   bool
	Succeeded bool
}

// pageRun is what the run page shows.
type pageRun struct {
	RunID, TraceID, FlowID, Username, GitRepo string
	Status                                    domain.RunStatus
	PRNumber                                  int
	PRURL                                     string
	Created, Duration                         string
	Live                                      bool
	RefreshMillis                             int64
	Orders                                    []pageOrder
	Levels                                    [][]pageOrder // the dependency graph, one column per depth
	Counts                                    map[domain.OrderStatus]int
}

func fmtDuration(start, end time.Time, now time.Time) string {
	if start.IsZero() {
		return "-"
	}
	if end.IsZero() {
		end = now
	}
	d := end.Sub(start)
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// pullRequestURL is the web address of a run's pull request, "" without one.
func (s *Server) pullRequestURL(repo string, number int) string {
	if repo == "" || number == 0 {
		return ""
	}
	base := strings.TrimRight(s.GitHubWebURL, "/")
	if base == "" {
		base = "https://github.com"
	}
	return fmt.Sprintf("%s/%s/pull/%d", base, repo, number)
}

// pageOf builds the run page's view of a run.
func (s *Server) pageOf(run domain.Run, orders []domain.OrderRecord, now time.Time) pageRun {
	p := pageRun{RunID: run.RunID, TraceID: run.TraceID, FlowID: run.FlowID, Username: run.Username, GitRepo: run.GitRepo,
		Status: run.Status, PRNumber: run.PRNumber, PRURL: s.pullRequestURL(run.GitRepo, run.PRNumber),
		Live: !run.Status.Terminal(), RefreshMillis: RefreshInterval.Milliseconds(), Counts: map[domain.OrderStatus]int{}}
	if !run.CreatedAt.IsZero() {
		p.Created = run.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC")
		p.Duration = fmtDuration(run.CreatedAt, run.FinishedAt, now)
	}
	byNum := make(map[int]domain.OrderRecord, len(orders))
	for _, o := range orders {
		byNum[o.OrderNum] = o
	}
	// An order's level is the length of the longest chain of dependencies below it; the
	// validated job has no cycle, and the guard stops a corrupt record from looping.
	level := map[int]int{}
	var depth func(n, guard int) int
	depth = func(n, guard int) int {
		if l, ok := level[n]; ok || guard > len(orders) {
			return l
		}
		l := 0
		for _, d := range byNum[n].Deps {
			if _, ok := byNum[d]; ok {
				l = max(l, depth(d, guard+1)+1)
			}
		}
		level[n] = l
		return l
	}
	for _, o := range orders {
		po := pageOrder{Num: o.OrderNum, Name: o.OrderName, QueueID: o.QueueID, Target: o.Target, Status: o.Status,
			Attempt: o.Attempt, Duration: fmtDuration(o.StartedAt, o.FinishedAt, now), Exit: "-", Reason: o.Reason,
			MustPass: o.MustSucceed, Level: depth(o.OrderNum, 0), Started: !o.StartedAt.IsZero(),
			Succeeded: o.Status == domain.OrderSucceeded,
			Failed:    o.Status == domain.OrderFailed || o.Status == domain.OrderTimedOut,
			LogURL:    "/runs/" + url.PathEscape(run.RunID) + "/orders/" + url.PathEscape(o.OrderName) + "/log"}
		if o.Status == domain.OrderRunning {
			// A running order's log link follows its output as it is written.
			po.LogURL += "?follow=true"
		}
		if o.ExitCode != nil {
			po.Exit = fmt.Sprint(*o.ExitCode)
		}
		if po.Failed {
			po.LogTail = o.LogTail
		}
		for _, d := range o.Deps {
			if dep, ok := byNum[d]; ok {
				po.Deps = append(po.Deps, dep.OrderName)
			}
		}
		p.Counts[o.Status]++
		p.Orders = append(p.Orders, po)
		for len(p.Levels) <= po.Level {
			p.Levels = append(p.Levels, nil)
		}
		p.Levels[po.Level] = append(p.Levels[po.Level], po)
	}
	return p
}

// render writes a page, or a plain error when the template fails (before anything is sent).
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var buf bytes.Buffer
	if err := statusPage.ExecuteTemplate(&buf, name, data); err != nil {
		s.fail(w, r, fmt.Errorf("render %s: %w", name, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", contentPolicy)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // a signed link in the address must not leak to the PR's site
	_, _ = w.Write(buf.Bytes())
}

// runPage is GET /runs/{run_id} for a browser.
func (s *Server) runPage(w http.ResponseWriter, r *http.Request, run domain.Run, orders []domain.OrderRecord) {
	p := s.pageOf(run, orders, time.Now())
	// A page opened with a signed link to its run (a pull request's) passes the link on to the
	// logs it links, which belong to the same run.
	if link := r.URL.Query().Get(linkParam); link != "" {
		for i := range p.Orders {
			sep := "?"
			if strings.Contains(p.Orders[i].LogURL, "?") {
				sep = "&"
			}
			p.Orders[i].LogURL += sep + linkParam + "=" + url.QueryEscape(link)
		}
	}
	s.render(w, r, "run.html", p)
}

// pageRuns is what the runs page shows.
type pageRuns struct {
	Filter        store.RunFilter
	Runs          []pageRunRow
	NextURL       string
	Live          bool
	RefreshMillis int64
}

type pageRunRow struct {
	RunSummary
	URL, PRURL, Created, Duration string
}

func (s *Server) renderRunsPage(w http.ResponseWriter, r *http.Request, f store.RunFilter, list RunList) {
	now := time.Now()
	p := pageRuns{Filter: f, NextURL: list.NextURL, RefreshMillis: RefreshInterval.Milliseconds() * 5 / 2}
	for _, run := range list.Runs {
		row := pageRunRow{RunSummary: run, URL: "/runs/" + url.PathEscape(run.RunID), PRURL: s.pullRequestURL(run.GitRepo, run.PRNumber)}
		if run.CreatedAt != nil {
			row.Created = run.CreatedAt.UTC().Format("2006-01-02 15:04:05")
			var end time.Time
			if run.FinishedAt != nil {
				end = *run.FinishedAt
			}
			row.Duration = fmtDuration(*run.CreatedAt, end, now)
		}
		p.Live = p.Live || !run.Status.Terminal()
		p.Runs = append(p.Runs, row)
	}
	s.render(w, r, "runs.html", p)
}
