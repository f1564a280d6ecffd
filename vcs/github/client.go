// Package github is the GitHub adapter of vcs: it keeps one comment and one commit status per
// run on a pull request up to date (PublishRun), and turns GitHub's native pull-request events
// into jobs from the repository's .iac-ci.yml (JobFromEvent). It speaks the REST API through
// go-github, to github.com or to a GitHub Enterprise Server, and reports failures with the
// sentinel errors of package vcs.
//
// It neither checks webhook signatures nor deduplicates deliveries: its caller does both.
package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"

	gh "github.com/google/go-github/v60/github"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/vcs"
)

// StatusContext names iac-ci's commit status among a commit's checks.
const StatusContext = "iac-ci"

// maxStatusDescription is GitHub's limit on a commit status description; a longer one is
// rejected with 422 "description is too long (maximum is 140 characters)".
const maxStatusDescription = 140

// Client talks to one GitHub API with one token. It remembers, in memory, the comment it keeps
// for each run and the last status it set on each commit, so that publishing an unchanged run
// costs no call and publishing a changed one costs one.
type Client struct {
	gh *gh.Client

	mu       sync.Mutex
	comments map[string]commentRef // commentKey → the comment last written
	statuses map[string]string     // repo@sha → the status last set, as statusKey
	locks    map[string]*keyLock   // commentKey → lock held while the comment is found or written
}

type commentRef struct {
	id   int64
	body string
}

type keyLock struct {
	mu    sync.Mutex
	users int
}

// New returns a Client for the REST API at baseURL ("" for api.github.com; for GitHub Enterprise
// Server, https://HOST/api/v3/), authenticated with token. httpClient may be nil; its transport
// is used as it is, with the token added to each request.
func New(baseURL, token string, httpClient *http.Client) (*Client, error) {
	if token == "" {
		return nil, errors.New("github client: the token is empty: give a token that can read contents and pull requests and write issues and statuses")
	}
	client := gh.NewClient(httpClient).WithAuthToken(token)
	if baseURL != "" {
		u, err := url.Parse(baseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("github client: base URL %q is not an http(s) URL", baseURL)
		}
		// go-github resolves every path against BaseURL, which must end in a slash.
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		client.BaseURL = u
	}
	return &Client{
		gh:       client,
		comments: map[string]commentRef{},
		statuses: map[string]string{},
		locks:    map[string]*keyLock{},
	}, nil
}

// PublishRun shows a run on GitHub: on issue or pull request number of repo ("owner/name"), one
// comment with body, found by the run's vcs.Marker at its start (added when body lacks it), created the first time and edited in place
// when the body changed; and, when sha is not empty, a commit status on sha with context
// "iac-ci": pending while the run is accepted or running, then success or failure (error for a
// status it does not know), linking to v.StatusURL. A number of 0 skips the comment.
//
// The comment of one run is never written by two calls at once, so concurrent publishes of a run
// cannot create two comments. Both the comment and the status are attempted; the error joins
// what failed.
func (c *Client) PublishRun(ctx context.Context, repo string, number int, sha string, v vcs.RunView, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	marker := vcs.Marker(v.Run.RunID, v.Run.CommentTag)
	if !strings.HasPrefix(body, marker) {
		body = marker + "\n" + body
	}
	var errs []error
	if number > 0 {
		if err := c.upsertComment(ctx, owner, name, number, marker, body); err != nil {
			errs = append(errs, fmt.Errorf("publish run %s comment on %s#%d: %w", v.Run.RunID, repo, number, err))
		}
	}
	if sha != "" {
		if err := c.setStatus(ctx, owner, name, sha, v); err != nil {
			errs = append(errs, fmt.Errorf("publish run %s status on %s@%s: %w", v.Run.RunID, repo, sha, err))
		}
	}
	if len(errs) == 0 && v.Run.Status.Terminal() {
		// A finished run is not published again in the normal course; forgetting it keeps the
		// memory to the runs in flight. A later publish finds the comment by listing.
		c.mu.Lock()
		delete(c.comments, commentKey(repo, number, marker))
		delete(c.statuses, repo+"@"+sha)
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}

func commentKey(repo string, number int, marker string) string {
	return fmt.Sprintf("%s#%d\x00%s", repo, number, marker)
}

// upsertComment makes the comment of issue number that starts with marker read body: it edits the
// remembered comment, or finds it by listing the issue's comments, or creates it.
func (c *Client) upsertComment(ctx context.Context, owner, name string, number int, marker, body string) error {
	key := commentKey(owner+"/"+name, number, marker)
	unlock := c.lock(key)
	defer unlock()

	c.mu.Lock()
	ref, known := c.comments[key]
	c.mu.Unlock()
	if known {
		if ref.body == body {
			return nil
		}
		err := c.editComment(ctx, owner, name, ref.id, body)
		if err == nil {
			c.remember(key, commentRef{ref.id, body})
			return nil
		}
		if !errors.Is(err, vcs.ErrNotFound) {
			return err
		}
		// Someone deleted the comment: find another with the marker, or start again.
		c.forget(key)
	}

	found, err := c.findComment(ctx, owner, name, number, marker)
	if err != nil {
		return err
	}
	if found != nil {
		if found.GetBody() != body {
			if err := c.editComment(ctx, owner, name, found.GetID(), body); err != nil {
				return err
			}
		}
		c.remember(key, commentRef{found.GetID(), body})
		return nil
	}
	created, _, err := c.gh.Issues.CreateComment(ctx, owner, name, number, &gh.IssueComment{Body: &body})
	if err != nil {
		return fmt.Errorf("create comment: %w", mapError(err))
	}
	c.remember(key, commentRef{created.GetID(), body})
	return nil
}

func (c *Client) editComment(ctx context.Context, owner, name string, id int64, body string) error {
	if _, _, err := c.gh.Issues.EditComment(ctx, owner, name, id, &gh.IssueComment{Body: &body}); err != nil {
		return fmt.Errorf("edit comment %d: %w", id, mapError(err))
	}
	return nil
}

// findComment returns the first comment of the issue that starts with marker, reading every
// page. Only a comment's start counts, so a comment that quotes or pastes a marker is never
// taken for ours.
func (c *Client) findComment(ctx context.Context, owner, name string, number int, marker string) (*gh.IssueComment, error) {
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		page, resp, err := c.gh.Issues.ListComments(ctx, owner, name, number, opts)
		if err != nil {
			return nil, fmt.Errorf("list comments: %w", mapError(err))
		}
		for _, comment := range page {
			if strings.HasPrefix(comment.GetBody(), marker) {
				return comment, nil
			}
		}
		if resp.NextPage == 0 {
			return nil, nil
		}
		opts.Page = resp.NextPage
	}
}

func (c *Client) remember(key string, ref commentRef) {
	c.mu.Lock()
	c.comments[key] = ref
	c.mu.Unlock()
}

func (c *Client) forget(key string) {
	c.mu.Lock()
	delete(c.comments, key)
	c.mu.Unlock()
}

// lock holds key's lock until the returned function is called. Locks exist only while used.
func (c *Client) lock(key string) func() {
	c.mu.Lock()
	l := c.locks[key]
	if l == nil {
		l = &keyLock{}
		c.locks[key] = l
	}
	l.users++
	c.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		c.mu.Lock()
		if l.users--; l.users == 0 {
			delete(c.locks, key)
		}
		c.mu.Unlock()
	}
}

// setStatus sets the run's commit status, unless the same status was the last one set on sha.
func (c *Client) setStatus(ctx context.Context, owner, name, sha string, v vcs.RunView) error {
	state, description := statusOf(v)
	st := &gh.RepoStatus{
		State:       gh.String(state),
		Description: gh.String(description),
		Context:     gh.String(StatusContext),
	}
	if v.StatusURL != "" {
		st.TargetURL = gh.String(v.StatusURL)
	}
	key := owner + "/" + name + "@" + sha
	unlock := c.lock("status\x00" + key)
	defer unlock()
	last := state + "\x00" + description + "\x00" + v.StatusURL
	c.mu.Lock()
	same := c.statuses[key] == last
	c.mu.Unlock()
	if same {
		return nil
	}
	if _, _, err := c.gh.Repositories.CreateStatus(ctx, owner, name, sha, st); err != nil {
		return fmt.Errorf("create status: %w", mapError(err))
	}
	c.mu.Lock()
	c.statuses[key] = last
	c.mu.Unlock()
	return nil
}

// statusOf maps a run onto a commit status state and a short description.
func statusOf(v vcs.RunView) (state, description string) {
	total, ended, failed := len(v.Orders), 0, 0
	for _, o := range v.Orders {
		if o.Status.Terminal() {
			ended++
		}
		if o.Status == domain.OrderFailed || o.Status == domain.OrderTimedOut {
			failed++
		}
	}
	if total == 0 {
		total = v.Run.OrderCount
	}
	switch v.Run.Status {
	case domain.RunAccepted, "":
		state, description = "pending", fmt.Sprintf("accepted: %d orders to run", total)
	case domain.RunRunning:
		state, description = "pending", fmt.Sprintf("running: %d of %d orders done", ended, total)
	case domain.RunSucceeded:
		state, description = "success", fmt.Sprintf("succeeded: %d orders", total)
	case domain.RunFailed:
		state, description = "failure", fmt.Sprintf("failed: %d of %d orders failed or timed out", failed, total)
	case domain.RunTimedOut:
		state, description = "failure", fmt.Sprintf("timed out: %d of %d orders done", ended, total)
	default:
		state, description = "error", "unknown run status "+string(v.Run.Status)
	}
	if utf8.RuneCountInString(description) > maxStatusDescription {
		description = string([]rune(description)[:maxStatusDescription-1]) + "…"
	}
	return state, description
}

func splitRepo(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("repository %q is not of the form owner/name: %w", repo, vcs.ErrRejected)
	}
	return owner, name, nil
}

// httpErrors maps GitHub's answers onto the vcs sentinels; other 4xx answers are ErrRejected
// and 5xx ErrUnavailable.
var httpErrors = map[int]error{
	http.StatusUnauthorized:        vcs.ErrDenied,
	http.StatusForbidden:           vcs.ErrDenied,
	http.StatusNotFound:            vcs.ErrNotFound,
	http.StatusGone:                vcs.ErrNotFound,
	http.StatusUnprocessableEntity: vcs.ErrRejected,
	http.StatusTooManyRequests:     vcs.ErrRateLimited,
}

// mapError is the one place GitHub errors become vcs sentinels. The result wraps both, so a
// caller can branch on the sentinel and a log still shows GitHub's message.
func mapError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var (
		rate  *gh.RateLimitError
		abuse *gh.AbuseRateLimitError
		resp  *gh.ErrorResponse
	)
	switch {
	case errors.As(err, &rate), errors.As(err, &abuse):
		return fmt.Errorf("%w: %w", vcs.ErrRateLimited, err)
	case errors.As(err, &resp) && resp.Response != nil:
		code := resp.Response.StatusCode
		if sentinel, ok := httpErrors[code]; ok {
			return fmt.Errorf("%w: %w", sentinel, err)
		}
		if code >= 500 {
			return fmt.Errorf("%w: %w", vcs.ErrUnavailable, err)
		}
		return fmt.Errorf("%w: %w", vcs.ErrRejected, err)
	}
	// No answer from GitHub: the network or the server failed.
	return fmt.Errorf("%w: %w", vcs.ErrUnavailable, err)
}
