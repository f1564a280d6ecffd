package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/iac-ci/iac-ci/producers"
)

// runLink is the signed, read-only link to one run that a pull-request comment carries: what a
// person clicks, who has no API token.
func runLink(s *server, runID string) string {
	return s.url + "/runs/" + runID + (&producers.Server{APIToken: []byte(apiToken)}).RunLinkQuery(runID)
}

// asOperator sends the API token with every request the browser makes, as an operator's
// browser behind an authenticating proxy would.
func asOperator() chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders,
			network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": "Bearer " + apiToken}})
		return chromedp.Void{}, err
	}
}

// chromiumPath finds Debian's chromium (what .ci/run installs), or fails the test saying how to
// get it: the status page is tested in a real browser or not at all.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is missing: the status page is tested in a headless browser; install it with " +
		"`apt-get update && apt-get install -y chromium` (.ci/run does this)")
	return ""
}

// browser starts a headless chromium that reaches nothing but loopback: no network is there to
// reach, and without these flags it tries (updates, sync, first-run pages). It is stopped at
// cleanup.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser now, so a failure names it
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// within runs an action in the browser within d and returns its value.
func within[T any](t *testing.T, ctx context.Context, d time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// attr reads an attribute of the first element matching a CSS selector.
func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	return within(t, ctx, 10*time.Second, "read "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return within(t, ctx, 10*time.Second, "read the text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// TestStatusPageInABrowser opens a running run's page in headless chromium and watches it: it
// shows the orders and the failed order's log tail while another order still runs, and
// updates by itself when the run ends. With IAC_CI_SCREENSHOT=FILE it saves the ended page
// there (docs/status-page.png is made so).
func TestStatusPageInABrowser(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	gate := filepath.Join(openDir(t), "gate")
	job, _ := json.Marshal(map[string]any{
		"username": "ada", "git_repo": "acme/infra", "pr_number": 42,
		"orders": []map[string]any{
			{"order_name": "plan", "timeout": 60, "execution_target": "lambda",
				"cmds": []string{"echo 'Initializing the backend...'", "echo 'Error: bucket acme-tf-state does not exist' >&2; exit 3"}},
			{"order_name": "lint", "timeout": 60, "execution_target": "codebuild", "env_vars": map[string]string{"GATE": gate},
				"cmds": []string{"echo linting", "while [ ! -e \"$GATE\" ]; do sleep 0.05; done", "echo lint clean"}},
			{"order_name": "apply", "timeout": 60, "dependencies": []string{"plan", "lint"}, "cmds": []string{"echo applying"}},
		},
	})
	code, body := s.post("/webhook", job, secret, nil)
	if code != 202 {
		t.Fatalf("POST /webhook: %d %v", code, body)
	}
	runID := body["run_id"].(string)

	ctx := browser(t, 1000, 800)
	const wait = time.Minute
	within(t, ctx, wait, "open the running run's page", chromedp.Steps(
		chromedp.Navigate(runLink(s, runID)),
		// The page refreshes itself: the failure section appears once plan has failed.
		chromedp.WaitVisible(chromedp.CSS(`#failure-1 pre.log`)),
	))
	live, planStatus, lintStatus := attr(t, ctx, `#page`, "data-live"), attr(t, ctx, `tr[data-order="plan"]`, "data-status"),
		attr(t, ctx, `tr[data-order="lint"]`, "data-status")
	tail, prLink := text(t, ctx, `#failure-1 pre.log`), attr(t, ctx, `#pr-link`, "href")
	if live != "true" || planStatus != "failed" || lintStatus != "running" {
		t.Errorf("while lint runs: page live %q, plan %q, lint %q; want true, failed, running", live, planStatus, lintStatus)
	}
	if !strings.Contains(tail, "Error: bucket acme-tf-state does not exist") {
		t.Errorf("the failed order's log tail on the page: %q", tail)
	}
	if prLink != "https://github.com/acme/infra/pull/42" {
		t.Errorf("pull request link: %q", prLink)
	}

	// End the run: the open page must notice by itself, without a reload.
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, wait, "see the run end", chromedp.WaitVisible(chromedp.CSS(`#page[data-live="false"]`)))
	runStatus, applyStatus := text(t, ctx, `#run-status`), attr(t, ctx, `tr[data-order="apply"]`, "data-status")
	lintStatus = attr(t, ctx, `tr[data-order="lint"]`, "data-status")
	rows := within(t, ctx, wait, "count the orders", chromedp.Evaluate[int](`document.querySelectorAll("tr.order").length`))
	if runStatus != "failed" || lintStatus != "succeeded" || applyStatus != "skipped" || rows != 3 {
		t.Errorf("after the run ended: run %q, lint %q, apply %q, %d order rows; want failed, succeeded, skipped, 3",
			runStatus, lintStatus, applyStatus, rows)
	}
	shot := within(t, ctx, wait, "screenshot", chromedp.FullScreenshot(100))
	if _, err := png.Decode(bytes.NewReader(shot)); err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if path := os.Getenv("IAC_CI_SCREENSHOT"); path != "" {
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The runs list links the run.
	within(t, ctx, wait, "open the runs list", chromedp.Steps(asOperator(), chromedp.Navigate(s.url+"/runs")))
	href := attr(t, ctx, `tr[data-run="`+runID+`"] a`, "href")
	if href != "/runs/"+runID {
		t.Errorf("runs list link: %q", href)
	}
}

// TestStatusPageFitsAPhone opens an ended run's page at a phone's width: the page itself never
// scrolls sideways (wide tables scroll inside their own box).
func TestStatusPageFitsAPhone(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	code, body := s.post("/webhook", []byte(goodJob), secret, nil)
	if code != 202 {
		t.Fatalf("POST /webhook: %d %v", code, body)
	}
	runID := body["run_id"].(string)
	s.waitRun(runID, time.Minute)
	ctx := browser(t, 390, 844)
	for _, page := range []string{runLink(s, runID), s.url + "/runs"} {
		path := strings.TrimPrefix(page, s.url)
		within(t, ctx, time.Minute, "open "+path, chromedp.Steps(asOperator(), chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`#page`))))
		scrollWidth := within(t, ctx, time.Minute, "page width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		innerWidth := within(t, ctx, time.Minute, "window width", chromedp.Evaluate[int](`window.innerWidth`))
		if innerWidth > 500 || scrollWidth > innerWidth {
			t.Errorf("%s at a phone's width: the page is %d px wide in a %d px window", path, scrollWidth, innerWidth)
		}
	}
}
