package github

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/vcs"
	"github.com/iac-ci/iac-ci/vcs/github/githubtest"
)

func runView(status domain.RunStatus, orders ...domain.OrderStatus) vcs.RunView {
	v := vcs.RunView{
		Run: domain.Run{
			RunID: "20240501T120000Z-0011223344556677", FlowID: "Codertocat:ab12c-exec", CommentTag: "t1",
			GitRepo: fixtureRepo, PRNumber: fixturePR, CommitHash: fixtureHead, Status: status, OrderCount: len(orders),
		},
		StatusURL: "https://ci.example.com/runs/20240501T120000Z-0011223344556677",
	}
	for i, s := range orders {
		v.Orders = append(v.Orders, domain.OrderRecord{
			OrderNum: i + 1, OrderName: fmt.Sprintf("order-%d", i+1), Target: domain.TargetCodeBuild, Status: s,
		})
	}
	return v
}

// commentCalls counts the calls to the comment endpoints, by method.
func commentCalls(calls []githubtest.Call) map[string]int {
	n := map[string]int{}
	for _, c := range calls {
		if strings.Contains(c.Path, "/comments") {
			n[c.Method]++
		}
	}
	return n
}

func TestPublishRunKeepsOneComment(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "")
	ctx := t.Context()

	running := runView(domain.RunRunning, domain.OrderRunning, domain.OrderQueued)
	if err := s.client.PublishRun(ctx, fixtureRepo, fixturePR, fixtureHead, running, vcs.RenderComment(running, nil)); err != nil {
		t.Fatalf("first PublishRun: %v", err)
	}
	comments := s.gh.Comments(fixtureRepo, fixturePR)
	if len(comments) != 1 {
		t.Fatalf("comments after the first publish: got %d, want 1", len(comments))
	}
	if got := commentCalls(s.gh.Calls()); got["GET"] != 1 || got["POST"] != 1 || got["PATCH"] != 0 {
		t.Errorf("first publish: comment calls %v, want one list and one create", got)
	}

	before := len(s.gh.Calls())
	done := runView(domain.RunSucceeded, domain.OrderSucceeded, domain.OrderSucceeded)
	body := vcs.RenderComment(done, nil)
	if err := s.client.PublishRun(ctx, fixtureRepo, fixturePR, fixtureHead, done, body); err != nil {
		t.Fatalf("second PublishRun: %v", err)
	}
	if got := commentCalls(s.gh.Calls()[before:]); got["GET"] != 0 || got["POST"] != 0 || got["PATCH"] != 1 {
		t.Errorf("second publish: comment calls %v, want exactly one edit", got)
	}
	comments = s.gh.Comments(fixtureRepo, fixturePR)
	if len(comments) != 1 || comments[0].Body != body {
		t.Fatalf("after the second publish: got %d comments, want 1 with the new body", len(comments))
	}

	statuses := s.gh.Statuses(fixtureRepo, fixtureHead)
	if len(statuses) != 2 {
		t.Fatalf("statuses: got %d, want 2 (%v)", len(statuses), statuses)
	}
	for i, want := range []string{"pending", "success"} {
		st := statuses[i]
		if st.State != want || st.Context != StatusContext || st.TargetURL != running.StatusURL || st.Description == "" {
			t.Errorf("status %d: got %+v, want state %s, context %s, target %s and a description", i, st, want, StatusContext, running.StatusURL)
		}
	}
}

func TestPublishRunSkipsWhatDidNotChange(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "")
	v := runView(domain.RunRunning, domain.OrderRunning)
	body := vcs.RenderComment(v, nil)
	for range 3 {
		if err := s.client.PublishRun(t.Context(), fixtureRepo, fixturePR, fixtureHead, v, body); err != nil {
			t.Fatalf("PublishRun: %v", err)
		}
	}
	if calls := s.gh.Calls(); len(calls) != 3 { // list, create, status
		t.Errorf("calls for three identical publishes: got %v, want 3", calls)
	}
	if got := len(s.gh.Statuses(fixtureRepo, fixtureHead)); got != 1 {
		t.Errorf("statuses: got %d, want 1", got)
	}
}

func TestPublishRunFindsItsCommentOnAnyPage(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "")
	v := runView(domain.RunRunning, domain.OrderRunning)
	for i := range 150 {
		s.gh.AddComment(fixtureRepo, fixturePR, fmt.Sprintf("comment %d", i))
	}
	// Someone else's run, then ours from before a restart, on the second page of 100.
	s.gh.AddComment(fixtureRepo, fixturePR, vcs.Marker("another-run", "t1")+"\nother")
	s.gh.AddComment(fixtureRepo, fixturePR, "> quoting "+vcs.Marker(v.Run.RunID, v.Run.CommentTag))
	id := s.gh.AddComment(fixtureRepo, fixturePR, vcs.Marker(v.Run.RunID, v.Run.CommentTag)+"\nold body")

	body := vcs.RenderComment(v, nil)
	if err := s.client.PublishRun(t.Context(), fixtureRepo, fixturePR, "", v, body); err != nil {
		t.Fatalf("PublishRun: %v", err)
	}
	comments := s.gh.Comments(fixtureRepo, fixturePR)
	if len(comments) != 153 {
		t.Fatalf("comments: got %d, want 153 (no new one)", len(comments))
	}
	last := comments[len(comments)-1]
	if last.ID != id || last.Body != body {
		t.Fatalf("our comment: got id %d body %q, want id %d edited", last.ID, last.Body, id)
	}
	if !strings.HasSuffix(comments[150].Body, "\nother") || !strings.HasPrefix(comments[151].Body, "> quoting") {
		t.Errorf("another run's comment, or one quoting our marker, was changed")
	}
	if got := s.gh.Statuses(fixtureRepo, fixtureHead); len(got) != 0 {
		t.Errorf("statuses without a sha: got %v, want none", got)
	}
}

func TestPublishRunRecreatesADeletedComment(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "")
	v := runView(domain.RunRunning, domain.OrderRunning)
	if err := s.client.PublishRun(t.Context(), fixtureRepo, fixturePR, "", v, vcs.RenderComment(v, nil)); err != nil {
		t.Fatalf("PublishRun: %v", err)
	}
	id := s.gh.Comments(fixtureRepo, fixturePR)[0].ID
	s.gh.DeleteComment(fixtureRepo, fixturePR, id)

	v.Orders[0].Status = domain.OrderSucceeded
	body := vcs.RenderComment(v, nil)
	if err := s.client.PublishRun(t.Context(), fixtureRepo, fixturePR, "", v, body); err != nil {
		t.Fatalf("PublishRun after the comment was deleted: %v", err)
	}
	comments := s.gh.Comments(fixtureRepo, fixturePR)
	if len(comments) != 1 || comments[0].ID == id || comments[0].Body != body {
		t.Fatalf("after the deletion: got %v, want one new comment with the new body", comments)
	}
}

func TestPublishRunStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status domain.RunStatus
		want   string
	}{
		{domain.RunAccepted, "pending"},
		{domain.RunRunning, "pending"},
		{domain.RunSucceeded, "success"},
		{domain.RunFailed, "failure"},
		{domain.RunTimedOut, "failure"},
		{domain.RunStatus("lost"), "error"},
	}
	for _, tt := range tests {
		state, description := statusOf(runView(tt.status, domain.OrderSucceeded, domain.OrderFailed))
		if state != tt.want {
			t.Errorf("%s: state %q, want %q", tt.status, state, tt.want)
		}
		if description == "" || len([]rune(description)) > maxStatusDescription {
			t.Errorf("%s: description %q is empty or too long", tt.status, description)
		}
	}
}

func TestPublishRunErrors(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "")
	v := runView(domain.RunRunning, domain.OrderRunning)
	s.gh.Fail("POST", "/repos/Codertocat/Hello-World/statuses/"+fixtureHead, http.StatusForbidden)
	err := s.client.PublishRun(t.Context(), fixtureRepo, fixturePR, fixtureHead, v, vcs.RenderComment(v, nil))
	if !errors.Is(err, vcs.ErrDenied) {
		t.Fatalf("status forbidden: got %v, want ErrDenied", err)
	}
	if got := len(s.gh.Comments(fixtureRepo, fixturePR)); got != 1 {
		t.Errorf("a failed status must not stop the comment: got %d comments, want 1", got)
	}

	s.gh.Fail("POST", "/repos/Codertocat/Hello-World/statuses/"+fixtureHead, http.StatusServiceUnavailable)
	if err := s.client.PublishRun(t.Context(), fixtureRepo, fixturePR, fixtureHead, v, vcs.RenderComment(v, nil)); !errors.Is(err, vcs.ErrUnavailable) {
		t.Errorf("GitHub down: got %v, want ErrUnavailable", err)
	}
	s.gh.Fail("POST", "/repos/Codertocat/Hello-World/statuses/"+fixtureHead, http.StatusTooManyRequests)
	if err := s.client.PublishRun(t.Context(), fixtureRepo, fixturePR, fixtureHead, v, vcs.RenderComment(v, nil)); !errors.Is(err, vcs.ErrRateLimited) {
		t.Errorf("too many requests: got %v, want ErrRateLimited", err)
	}
	if err := s.client.PublishRun(t.Context(), "not-a-repo", fixturePR, "", v, "x"); !errors.Is(err, vcs.ErrRejected) {
		t.Errorf("bad repo: got %v, want ErrRejected", err)
	}
}

// A rendered comment of a run with huge logs is accepted by GitHub's size check, and the secret
// masked out of the logs never reaches GitHub.
func TestPublishRunWithHugeLogs(t *testing.T) {
	t.Parallel()
	const secret = "ghp_not-a-real-token-0123456789"
	s := newSetup(t, "")
	v := runView(domain.RunFailed, domain.OrderFailed, domain.OrderFailed, domain.OrderTimedOut)
	for i := range v.Orders {
		v.Orders[i].LogTail = strings.Repeat("Error: ```"+secret+"``` é\n", 1<<20/40)
	}
	mask := func(s string) string { return strings.ReplaceAll(s, secret, "***") }
	if err := s.client.PublishRun(t.Context(), fixtureRepo, fixturePR, fixtureHead, v, vcs.RenderComment(v, mask)); err != nil {
		t.Fatalf("PublishRun: %v", err)
	}
	comments := s.gh.Comments(fixtureRepo, fixturePR)
	if len(comments) != 1 || strings.Contains(comments[0].Body, secret) {
		t.Fatalf("got %d comments, or the secret in the comment", len(comments))
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := New("", "", nil); err == nil {
		t.Errorf("New with no token: got nil error")
	}
	if _, err := New("ftp://example.com", "x", nil); err == nil {
		t.Errorf("New with an ftp URL: got nil error")
	}
	c, err := New("", "x", nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := c.gh.BaseURL.String(); got != "https://api.github.com/" {
		t.Errorf("default base URL: got %q", got)
	}
	c, err = New("https://ghe.example.com/api/v3", "x", &http.Client{Timeout: time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := c.gh.BaseURL.String(); got != "https://ghe.example.com/api/v3/" {
		t.Errorf("enterprise base URL: got %q", got)
	}
}
