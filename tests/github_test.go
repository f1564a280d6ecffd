package tests

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/vcs/github/githubtest"
)

// The fixtures' pull request: Codertocat/Hello-World#2, head ec26c3e, base f95f852.
const (
	ghRepo   = "Codertocat/Hello-World"
	ghPR     = 2
	ghHead   = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	ghBase   = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
	ghSecret = "e2e-github-secret"
)

// ghConfig is the repository's .iac-ci.yml: app depends on network, docs runs alone. app sleeps,
// so that its run is still going when the comment is first written. The orders name no
// git_folder: they run without cloning, which the fake GitHub cannot serve.
const ghConfig = `
orders:
  - order_name: network
    cmds: ["echo planning network"]
    timeout: 60
    when_modified: ["network/**"]
  - order_name: app
    cmds: ["sleep 1", "echo planning app"]
    timeout: 60
    dependencies: [network]
    when_modified: ["app/**"]
  - order_name: docs
    cmds: ["echo building docs"]
    timeout: 60
    when_modified: ["docs/**"]
`

// ghDelivery reads a stored GitHub delivery, letting edit change it first when not nil.
func ghDelivery(t *testing.T, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(repoRoot, "..", "shared", "fixtures", "github", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	if edit == nil {
		return body
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode fixture %s: %v", name, err)
	}
	edit(m)
	if body, err = json.Marshal(m); err != nil {
		t.Fatalf("encode fixture %s: %v", name, err)
	}
	return body
}

// deliver posts a GitHub event as GitHub does, signed with secret.
func (s *server) deliver(event, delivery string, body []byte, secret string) (int, map[string]any) {
	s.t.Helper()
	return s.post("/webhook", body, secret, map[string]string{
		"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json",
	})
}

// runExists reports whether GET /runs/{id} knows the run.
func (s *server) runExists(runID string) bool {
	s.t.Helper()
	resp, err := get(s.url + "/runs/" + runID)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// orderNames lists a run's orders by name, sorted.
func orderNames(v runView) []string {
	var names []string
	for _, o := range v.Orders {
		names = append(names, o.OrderName)
	}
	slices.Sort(names)
	return names
}

// ghComment returns the comment of a run on the fixtures' pull request, found by its marker.
func ghComment(t *testing.T, fake *githubtest.Server, runID string) githubtest.Comment {
	t.Helper()
	var found []githubtest.Comment
	for _, c := range fake.Comments(ghRepo, ghPR) {
		if strings.Contains(c.Body, "iac-ci:run run_id="+runID+" ") {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("comments of run %s: got %d, want 1: %+v", runID, len(found), fake.Comments(ghRepo, ghPR))
	}
	return found[0]
}

// runStatuses returns the commit statuses set for a run on the head commit, oldest first; the
// run is told by its link, or, when linked is false, by having none.
func runStatuses(fake *githubtest.Server, runID string, linked bool) []githubtest.Status {
	var out []githubtest.Status
	for _, st := range fake.Statuses(ghRepo, ghHead) {
		if (linked && strings.Contains(st.TargetURL, "/runs/"+runID+"?t=")) || (!linked && st.TargetURL == "") {
			out = append(out, st)
		}
	}
	return out
}

func waitForCondition(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkReported checks what a finished run left on the pull request: exactly one comment,
// created once and then only edited, showing the final summary; and statuses that were pending
// until the last, which is success.
func checkReported(t *testing.T, fake *githubtest.Server, runID string, linked, wantPatch bool, orders ...string) {
	t.Helper()
	comment := ghComment(t, fake, runID)
	commentsPath := "/repos/" + ghRepo + "/issues/2/comments"
	editPath := "/repos/" + ghRepo + "/issues/comments/" + jsonNumber(comment.ID)
	created, firstEdit, edits := -1, -1, 0
	for i, c := range fake.Calls() {
		switch {
		case c.Method == http.MethodPost && c.Path == commentsPath:
			if created < 0 {
				created = i
			}
		case c.Method == http.MethodPatch && c.Path == editPath:
			edits++
			if firstEdit < 0 {
				firstEdit = i
			}
		}
	}
	if created < 0 {
		t.Fatalf("run %s: no comment was created", runID)
	}
	if wantPatch && edits == 0 {
		t.Fatalf("run %s: its comment was never edited; calls: %+v", runID, fake.Calls())
	}
	if firstEdit >= 0 && firstEdit < created {
		t.Fatalf("run %s: comment edited (call %d) before it was created (call %d)", runID, firstEdit, created)
	}
	for _, want := range append([]string{"### ✅ iac-ci run succeeded", "| order | target | status | attempt | duration |"}, orders...) {
		if !strings.Contains(comment.Body, want) {
			t.Fatalf("run %s: final comment lacks %q:\n%s", runID, want, comment.Body)
		}
	}
	if got, want := strings.Count(comment.Body, "✅ succeeded"), len(orders); got != want {
		t.Fatalf("run %s: final comment shows %d succeeded orders, want %d:\n%s", runID, got, want, comment.Body)
	}

	statuses := runStatuses(fake, runID, linked)
	if len(statuses) < 2 {
		t.Fatalf("run %s: statuses %+v, want pending then success", runID, statuses)
	}
	for i, st := range statuses {
		want := "pending"
		if i == len(statuses)-1 {
			want = "success"
		}
		if st.State != want || st.Context != "iac-ci" {
			t.Fatalf("run %s: status %d of %d is %s (context %s), want %s (context iac-ci): %+v", runID, i+1, len(statuses), st.State, st.Context, want, statuses)
		}
	}
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// countCalls counts the fake's calls with a method and path.
func countCalls(fake *githubtest.Server, method, path string) int {
	n := 0
	for _, c := range fake.Calls() {
		if c.Method == method && c.Path == path {
			n++
		}
	}
	return n
}

// TestGitHubPullRequestEvents replays real GitHub deliveries through `iac-ci serve` pointed at a
// fake GitHub, one after the other, since each step reads what the ones before left there.
func TestGitHubPullRequestEvents(t *testing.T) {
	t.Parallel()
	fake := githubtest.NewServer(t)
	fake.SetFile(ghRepo, ghHead, ".iac-ci.yml", ghConfig)
	fake.SetFile(ghRepo, ghBase, ".iac-ci.yml", ghConfig) // what a fork's pull request is read with
	fake.SetPRFiles(ghRepo, ghPR, []string{"app/main.tf", "README.md"})
	s := startServer(t, t.TempDir(), nil,
		"--webhook-secret", ghSecret, "--github-token", githubtest.Token, "--github-api-url", fake.URL())
	commentsPath := "/repos/" + ghRepo + "/issues/2/comments"

	t.Run("ping is answered", func(t *testing.T) {
		code, body := s.deliver("ping", "d-ping", ghDelivery(t, "ping.json", nil), ghSecret)
		if code != http.StatusOK {
			t.Fatalf("ping: got %d %v, want 200", code, body)
		}
	})

	t.Run("a wrong signature runs nothing", func(t *testing.T) {
		before := len(fake.Calls())
		code, body := s.deliver("pull_request", "d-forged", ghDelivery(t, "pull_request_opened.json", nil), "not-the-secret")
		if code != http.StatusUnauthorized {
			t.Fatalf("forged delivery: got %d %v, want 401", code, body)
		}
		code, body = s.post("/webhook", ghDelivery(t, "pull_request_opened.json", nil), "", map[string]string{
			"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-unsigned"})
		if code != http.StatusUnauthorized {
			t.Fatalf("unsigned delivery: got %d %v, want 401", code, body)
		}
		if got := len(fake.Calls()); got != before {
			t.Fatalf("GitHub was called %d times for deliveries with a wrong signature, want 0: %+v", got-before, fake.Calls()[before:])
		}
		for _, d := range []string{"d-forged", "d-unsigned"} {
			if s.runExists(producers.GitHubRunID(d)) {
				t.Fatalf("delivery %s started a run", d)
			}
		}
	})

	t.Run("a body that is not its event is rejected", func(t *testing.T) {
		code, body := s.deliver("pull_request", "d-garbled", []byte(`["not", "a", "pull request"]`), ghSecret)
		if code != http.StatusBadRequest {
			t.Fatalf("garbled delivery: got %d %v, want 400", code, body)
		}
		if s.runExists(producers.GitHubRunID("d-garbled")) {
			t.Fatalf("a garbled delivery started a run")
		}
	})

	t.Run("closed and push are ignored", func(t *testing.T) {
		for _, d := range []struct{ event, file, delivery string }{
			{"pull_request", "pull_request_closed.json", "d-closed"},
			{"push", "push.json", "d-push"},
		} {
			code, body := s.deliver(d.event, d.delivery, ghDelivery(t, d.file, nil), ghSecret)
			if code != http.StatusAccepted || body["status"] != "ignored" {
				t.Fatalf("%s: got %d %v, want 202 ignored", d.file, code, body)
			}
			if s.runExists(producers.GitHubRunID(d.delivery)) {
				t.Fatalf("%s started a run", d.file)
			}
		}
	})

	t.Run("a fork does not run by default", func(t *testing.T) {
		body := ghDelivery(t, "pull_request_opened.json", func(m map[string]any) {
			head := m["pull_request"].(map[string]any)["head"].(map[string]any)
			head["repo"].(map[string]any)["full_name"] = "forker/Hello-World"
		})
		code, answer := s.deliver("pull_request", "d-fork", body, ghSecret)
		reason, _ := answer["reason"].(string)
		if code != http.StatusAccepted || answer["status"] != "ignored" || !strings.Contains(reason, "fork") {
			t.Fatalf("fork pull request: got %d %v, want 202 ignored for being a fork", code, answer)
		}
		if s.runExists(producers.GitHubRunID("d-fork")) {
			t.Fatalf("the fork's pull request started a run")
		}
		if n := countCalls(fake, http.MethodPost, commentsPath); n != 0 {
			t.Fatalf("comments created before any run: %d", n)
		}
	})

	var openedRun string
	t.Run("opened runs the matching orders and reports them", func(t *testing.T) {
		opened := ghDelivery(t, "pull_request_opened.json", nil)
		code, body := s.deliver("pull_request", "d-opened", opened, ghSecret)
		if code != http.StatusAccepted {
			t.Fatalf("opened: got %d %v, want 202", code, body)
		}
		openedRun, _ = body["run_id"].(string)
		if want := producers.GitHubRunID("d-opened"); openedRun != want {
			t.Fatalf("opened: run id %q, want %q", openedRun, want)
		}
		code, again := s.deliver("pull_request", "d-opened", opened, ghSecret)
		if code != http.StatusOK || again["run_id"] != openedRun || again["duplicate"] != true {
			t.Fatalf("redelivery: got %d %v, want 200 naming run %s as a duplicate", code, again, openedRun)
		}

		v := s.waitRun(openedRun, time.Minute)
		if v.Status != "succeeded" {
			t.Fatalf("run %s: %+v", v.Status, v.Orders)
		}
		if got, want := orderNames(v), []string{"app", "network"}; !slices.Equal(got, want) {
			t.Fatalf("orders of the run: got %v, want %v (app changed, and it depends on network)", got, want)
		}
		waitForCondition(t, "the success status", 15*time.Second, func() bool {
			st := runStatuses(fake, openedRun, true)
			return len(st) > 0 && st[len(st)-1].State == "success"
		})
		checkReported(t, fake, openedRun, true, true, "network", "app")
		if got := countCalls(fake, http.MethodPost, commentsPath); got != 1 {
			t.Fatalf("comments created for one run and one redelivery: got %d, want 1", got)
		}
		// The comment's link opens the run's status without the API token, and no other run.
		m := regexp.MustCompile(`\((http[^)\s]*/runs/` + regexp.QuoteMeta(openedRun) + `(\?t=[^)\s]+))\)`).FindStringSubmatch(ghComment(t, fake, openedRun).Body)
		if m == nil {
			t.Fatalf("final comment does not link to the run's status page with a signed link:\n%s", ghComment(t, fake, openedRun).Body)
		}
		link, capability := m[1], m[2]
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), openedRun) {
			t.Fatalf("GET %s without a token: %d %s, want the run", link, resp.StatusCode, page)
		}
		for _, other := range []string{"/runs/" + producers.GitHubRunID("d-other") + capability, "/runs/" + openedRun} {
			resp, err := http.Get(s.url + other)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET %s: %d, want 401 (the link opens its own run only, and nothing opens without one)", other, resp.StatusCode)
			}
		}
	})

	t.Run("synchronize runs the orders of the new changes", func(t *testing.T) {
		if openedRun == "" {
			t.Fatalf("no run to follow: the opened delivery did not start one")
		}
		fake.SetPRFiles(ghRepo, ghPR, []string{"network/vpc.tf"})
		code, body := s.deliver("pull_request", "d-synchronize", ghDelivery(t, "pull_request_synchronize.json", nil), ghSecret)
		if code != http.StatusAccepted {
			t.Fatalf("synchronize: got %d %v, want 202", code, body)
		}
		runID, _ := body["run_id"].(string)
		v := s.waitRun(runID, time.Minute)
		if v.Status != "succeeded" {
			t.Fatalf("run %s: %+v", v.Status, v.Orders)
		}
		if got, want := orderNames(v), []string{"network"}; !slices.Equal(got, want) {
			t.Fatalf("orders of the run: got %v, want %v", got, want)
		}
		waitForCondition(t, "the success status", 15*time.Second, func() bool {
			st := runStatuses(fake, runID, true)
			return len(st) > 0 && st[len(st)-1].State == "success"
		})
		checkReported(t, fake, runID, true, false, "network")
		if got := countCalls(fake, http.MethodPost, commentsPath); got != 2 {
			t.Fatalf("comments created for two runs: got %d, want 2", got)
		}
	})
}

// TestGitHubRunCommandReportsOnThePullRequest runs a job file naming a pull request with
// `iac-ci run`, which must leave the final comment and status before it exits.
func TestGitHubRunCommandReportsOnThePullRequest(t *testing.T) {
	t.Parallel()
	fake := githubtest.NewServer(t)
	job := filepath.Join(t.TempDir(), "job.yaml")
	err := os.WriteFile(job, []byte(`
username: e2e
git_repo: `+ghRepo+`
pr_number: 2
commit_hash: `+ghHead+`
orders:
  - order_name: plan
    cmds: ["sleep 1", "echo planned"]
    timeout: 60
  - order_name: apply
    cmds: ["echo applied"]
    timeout: 60
    dependencies: [plan]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	r := iacci(t, []string{"IAC_CI_GITHUB_TOKEN=" + githubtest.Token}, "run", "--json", "--github-api-url", fake.URL(), job)
	if r.code != 0 {
		t.Fatalf("iac-ci run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	v := parseView(t, r.stdout)
	comments := fake.Comments(ghRepo, ghPR)
	if len(comments) != 1 {
		t.Fatalf("comments: got %d, want 1", len(comments))
	}
	if !strings.Contains(comments[0].Body, "iac-ci:run run_id="+v.RunID+" ") {
		t.Fatalf("the comment is not run %s's:\n%s", v.RunID, comments[0].Body)
	}
	// The run's server ends with it, so the comment and statuses carry no link to it.
	checkReported(t, fake, v.RunID, false, true, "plan", "apply")
	if strings.Contains(comments[0].Body, "/runs/") {
		t.Fatalf("the comment links to a status page that ended with the command:\n%s", comments[0].Body)
	}
}

// TestGitHubCommentShowsAFailureWithItsSecretsMasked fails an order that prints a secret: the
// final comment shows the order's log tail, with the secret masked, and the status is failure.
func TestGitHubCommentShowsAFailureWithItsSecretsMasked(t *testing.T) {
	t.Parallel()
	const value = "s3cr3t-db-password-e2e"
	fake := githubtest.NewServer(t)
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(secrets, []byte(`{"/team/db-password": "`+value+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(dir, "job.yaml")
	err := os.WriteFile(job, []byte(`
username: e2e
git_repo: `+ghRepo+`
pr_number: 2
commit_hash: `+ghHead+`
orders:
  - order_name: migrate
    timeout: 60
    ssm_paths: [/team/db-password]
    cmds: ['echo "connecting with $DB_PASSWORD"; echo "migration 42 failed"; exit 3']
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	r := iacci(t, []string{"IAC_CI_GITHUB_TOKEN=" + githubtest.Token}, "run", "--json",
		"--secrets", secrets, "--github-api-url", fake.URL(), job)
	if r.code != 1 {
		t.Fatalf("iac-ci run: exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	comments := fake.Comments(ghRepo, ghPR)
	if len(comments) != 1 {
		t.Fatalf("comments: got %d, want 1", len(comments))
	}
	body := comments[0].Body
	for _, want := range []string{"### ❌ iac-ci run failed", "<details>", "connecting with ***", "migration 42 failed", "(exit 3)"} {
		if !strings.Contains(body, want) {
			t.Fatalf("final comment lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, value) {
		t.Fatalf("final comment shows the secret's value:\n%s", body)
	}
	statuses := fake.Statuses(ghRepo, ghHead)
	if len(statuses) == 0 || statuses[len(statuses)-1].State != "failure" {
		t.Fatalf("statuses: got %+v, want failure last", statuses)
	}
	for _, st := range statuses {
		if strings.Contains(st.Description, value) {
			t.Fatalf("a status shows the secret's value: %+v", st)
		}
	}
}

// The pull-request comment, the log tail and the stored log show no form of a secret: not the
// lines of a multi-line key printed line by line, nor a value in base64, URL-encoded or
// JSON-escaped, each printed by a real tool (coreutils base64, Python's json and urllib).
func TestGitHubCommentMasksEveryFormOfASecret(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed to print secrets the way another language does: install it (apt-get install python3)")
	}
	const (
		key = "-----BEGIN OPENSSH PRIVATE KEY-----\n" +
			"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" +
			"QyNTUxOQAAACDz1k0Qd4H2G9Tq3LxXjT3nqF0lYkz0f5f8u6vVw2bJ8wAAAJj0sW6b9LFu\n" +
			"-----END OPENSSH PRIVATE KEY-----\n"
		password = "p@ss w/rd&x=1+2?<e2e>"
	)
	fake := githubtest.NewServer(t)
	dir := t.TempDir()
	values, err := json.Marshal(map[string]string{"/team/deploy-key": key, "/team/db-password": password})
	if err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(secrets, values, 0o600); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(dir, "job.yaml")
	err = os.WriteFile(job, []byte(`
username: e2e
git_repo: `+ghRepo+`
pr_number: 2
commit_hash: `+ghHead+`
orders:
  - order_name: deploy
    timeout: 60
    ssm_paths: [/team/deploy-key, /team/db-password]
    cmds:
      - seq 1 1500
      - printf '%s' "$DEPLOY_KEY" | sed 's/^/      /'
      - printf 'b64=%s\n' "$(printf %s "$DB_PASSWORD" | base64 -w0)"
      - printf %s "$DEPLOY_KEY" | base64
      - python3 -c 'import os, json, urllib.parse as u; s = os.environ["DB_PASSWORD"]; print("json=" + json.dumps(s), "keyjson=" + json.dumps(os.environ["DEPLOY_KEY"]), "q=" + u.quote_plus(s), "path=" + u.quote(s, safe=""), sep="\n")'
      - exit 3
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	r := iacci(t, []string{"IAC_CI_GITHUB_TOKEN=" + githubtest.Token}, "run", "--json", "--data", data,
		"--secrets", secrets, "--github-api-url", fake.URL(), job)
	if r.code != 1 {
		t.Fatalf("iac-ci run: exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	v := parseView(t, r.stdout)
	if len(v.Orders) != 1 || v.Orders[0].LogKey == "" {
		t.Fatalf("want one order with a stored log: %+v", v.Orders)
	}
	comments := fake.Comments(ghRepo, ghPR)
	if len(comments) != 1 {
		t.Fatalf("comments: got %d, want 1", len(comments))
	}
	leaks := []string{
		base64.StdEncoding.EncodeToString([]byte(password))[:20],
		base64.StdEncoding.EncodeToString([]byte(key))[:40],
		url.QueryEscape(password), strings.ReplaceAll(url.QueryEscape(password), "+", "%20"),
		`p@ss w/rd&x=1+2?<e2e>`, `\nQyNTUxOQ`,
	}
	for line := range strings.SplitSeq(strings.TrimSpace(key), "\n") {
		leaks = append(leaks, line)
	}
	places := map[string]string{
		"comment":    comments[0].Body,
		"log tail":   v.Orders[0].LogTail,
		"stored log": string(internalBlob(t, data, v.Orders[0].LogKey)),
	}
	for where, text := range places {
		for _, leak := range leaks {
			if strings.Contains(text, leak) {
				t.Errorf("the %s shows %q:\n%s", where, leak, text[max(0, len(text)-3000):])
			}
		}
		for _, want := range []string{"      ***", "b64=***", `json="***"`, `keyjson="***"`, "q=***", "path=***"} {
			if !strings.Contains(text, want) {
				t.Errorf("the %s lacks %q:\n%s", where, want, text[max(0, len(text)-3000):])
			}
		}
	}
}
