package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	gh "github.com/google/go-github/v60/github"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/vcs"
)

// RunCommand, at the start of a pull-request comment, runs the pull request again.
const RunCommand = "/iac-ci run"

// configMarker finds the comment that reports a pull request's config problems.
const configMarker = "<!-- iac-ci:config -->"

// Caps on the config-problems comment: a config with thousands of problems still gets a short,
// readable comment well within GitHub's size limit.
const (
	maxListedProblems = 100
	maxProblemChars   = 500
)

// EventResult is what a GitHub event asks iac-ci to do.
type EventResult struct {
	Job    *domain.Job // the job to run; nil when there is nothing to run
	Reason string      // why there is nothing to run
}

// runActions are the pull_request actions that run a pull request: it is new, has new commits,
// is open again, or stopped being a draft.
var runActions = map[string]bool{"opened": true, "synchronize": true, "reopened": true, "ready_for_review": true}

// runAuthors are the comment author associations that may start a run with RunCommand. Anyone
// can comment on a public repository; only people the repository trusts may spend its runners.
var runAuthors = map[string]bool{"OWNER": true, "MEMBER": true, "COLLABORATOR": true}

// JobFromEvent turns a GitHub webhook delivery (event is the X-GitHub-Event header) into a job.
//
// A pull_request event that opens, updates, reopens or readies a pull request reads .iac-ci.yml
// at the head commit and keeps the orders whose when_modified globs match a changed file (an
// order without when_modified always runs), with every order they depend on. A comment starting
// with "/iac-ci run" on a pull request, by an owner, member or collaborator, does the same for
// the pull request's current head. Other events and actions give no job and a Reason.
//
// Pull requests from forks read .iac-ci.yml from the base commit instead, so a fork can neither
// let itself run (allow_forks) nor change the commands that run; when allowed, their jobs carry
// NoSecrets. Drafts run only with draft_prs.
//
// A missing or invalid .iac-ci.yml gives no job and one comment on the pull request listing every
// problem with its path (edited in place on later events). An error means GitHub could not be
// read or written (a vcs sentinel) or the body is not the event it claims (vcs.ErrBadEvent); the
// result may still carry a Reason then.
func (c *Client) JobFromEvent(ctx context.Context, event string, body []byte) (EventResult, error) {
	switch event {
	case "ping":
		return EventResult{Reason: "ping"}, nil
	case "pull_request":
		var ev gh.PullRequestEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			return EventResult{}, fmt.Errorf("%w: pull_request: %w", vcs.ErrBadEvent, err)
		}
		if !runActions[ev.GetAction()] {
			return EventResult{Reason: fmt.Sprintf("pull_request action %q ignored", ev.GetAction())}, nil
		}
		if ev.PullRequest == nil {
			return EventResult{}, fmt.Errorf("%w: pull_request event without a pull_request", vcs.ErrBadEvent)
		}
		return c.jobFromPullRequest(ctx, ev.PullRequest)
	case "issue_comment":
		var ev gh.IssueCommentEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			return EventResult{}, fmt.Errorf("%w: issue_comment: %w", vcs.ErrBadEvent, err)
		}
		return c.jobFromComment(ctx, &ev)
	}
	return EventResult{Reason: fmt.Sprintf("event %q ignored", event)}, nil
}

func (c *Client) jobFromComment(ctx context.Context, ev *gh.IssueCommentEvent) (EventResult, error) {
	switch {
	case ev.GetAction() != "created":
		return EventResult{Reason: fmt.Sprintf("issue_comment action %q ignored", ev.GetAction())}, nil
	case ev.Issue == nil || !ev.Issue.IsPullRequest():
		return EventResult{Reason: "comment on an issue, not a pull request: ignored"}, nil
	case !isRunCommand(ev.GetComment().GetBody()):
		return EventResult{Reason: "comment is not a " + RunCommand + " command: ignored"}, nil
	case !runAuthors[ev.GetComment().GetAuthorAssociation()]:
		return EventResult{Reason: fmt.Sprintf("%s by %s ignored: only the repository's owners, members and collaborators may start runs (author association %s)",
			RunCommand, ev.GetComment().GetUser().GetLogin(), ev.GetComment().GetAuthorAssociation())}, nil
	}
	repo := ev.GetRepo().GetFullName()
	owner, name, err := splitRepo(repo)
	if err != nil {
		return EventResult{}, fmt.Errorf("%w: issue_comment repository: %w", vcs.ErrBadEvent, err)
	}
	number := ev.Issue.GetNumber()
	pr, _, err := c.gh.PullRequests.Get(ctx, owner, name, number)
	if err != nil {
		return EventResult{}, fmt.Errorf("get pull request %s#%d: %w", repo, number, mapError(err))
	}
	if pr.GetState() == "closed" {
		return EventResult{Reason: fmt.Sprintf("pull request %s#%d is closed", repo, number)}, nil
	}
	return c.jobFromPullRequest(ctx, pr)
}

// isRunCommand reports whether a comment asks for a run: RunCommand as its first word pair.
func isRunCommand(body string) bool {
	rest, ok := strings.CutPrefix(strings.TrimLeftFunc(body, unicode.IsSpace), RunCommand)
	return ok && (rest == "" || unicode.IsSpace([]rune(rest)[0]))
}

func (c *Client) jobFromPullRequest(ctx context.Context, pr *gh.PullRequest) (EventResult, error) {
	base := pr.GetBase().GetRepo().GetFullName()
	owner, name, err := splitRepo(base)
	if err != nil {
		return EventResult{}, fmt.Errorf("%w: pull request base repository: %w", vcs.ErrBadEvent, err)
	}
	number, headSHA := pr.GetNumber(), pr.GetHead().GetSHA()
	if number <= 0 || headSHA == "" {
		return EventResult{}, fmt.Errorf("%w: pull request without a number or head sha", vcs.ErrBadEvent)
	}
	headRepo := pr.GetHead().GetRepo().GetFullName() // empty when the fork was deleted
	fork := !strings.EqualFold(headRepo, base)

	// A fork's own .iac-ci.yml is written by whoever opened it: read the base's instead.
	configRef := headSHA
	if fork {
		configRef = pr.GetBase().GetSHA()
		if configRef == "" {
			configRef = pr.GetBase().GetRef()
		}
	}
	cfg, problems, err := c.readConfig(ctx, owner, name, configRef)
	if err != nil {
		return EventResult{}, err
	}
	var job domain.Job
	if len(problems) == 0 || cfg.Read {
		// Validated even beside the config's own problems, so that a typo hides no cycle.
		job, problems = configJob(cfg, problems, base, number, headSHA, pr.GetUser().GetLogin())
	}
	if len(problems) > 0 {
		reason := fmt.Sprintf("%s at %s has %d problems, listed in a comment on the pull request", ConfigPath, shortSHA(configRef), len(problems))
		if err := c.upsertComment(ctx, owner, name, number, configMarker, renderProblems(configRef, fork, problems)); err != nil {
			return EventResult{Reason: reason}, fmt.Errorf("comment on %s#%d: %w", base, number, err)
		}
		return EventResult{Reason: reason}, nil
	}
	if err := c.clearProblems(ctx, owner, name, number, configRef); err != nil {
		return EventResult{}, err
	}

	switch {
	case fork && !cfg.AllowForks:
		return EventResult{Reason: fmt.Sprintf("pull request from fork %s: forks run only with allow_forks: true in %s of %s, and then without secrets",
			orDeleted(headRepo), ConfigPath, base)}, nil
	case pr.GetDraft() && !cfg.DraftPRs:
		return EventResult{Reason: fmt.Sprintf("draft pull request: drafts run only with draft_prs: true in %s", ConfigPath)}, nil
	}

	changed, err := c.changedFiles(ctx, owner, name, number)
	if err != nil {
		return EventResult{}, err
	}
	picked := selectOrders(job.Orders, changed)
	if len(picked) == 0 {
		return EventResult{Reason: "no order matches the changed files"}, nil
	}
	orders := make([]domain.Order, 0, len(picked))
	for _, i := range picked {
		o := job.Orders[i]
		o.WhenModified = nil
		orders = append(orders, o)
	}
	job.Orders = orders
	job.NoSecrets = fork
	return EventResult{Job: &job}, nil
}

// configJob makes a config into the job of a pull request: base is the repository, number and
// headSHA the pull request's, author who opened it. It returns the job normalized, and every
// problem Validate finds in it.
func configJob(cfg repoConfig, prior []domain.Problem, base string, number int, headSHA, author string) (domain.Job, []domain.Problem) {
	job := cfg.Job
	if job.Username == "" {
		job.Username = author
	}
	job.GitRepo, job.PRNumber, job.CommitHash = base, number, headSHA
	for i := range job.Orders {
		o := &job.Orders[i]
		if o.GitFolder != "" && o.GitRepo == "" {
			o.GitRepo = base
		}
		if o.GitFolder != "" && o.CommitHash == "" && strings.EqualFold(o.GitRepo, base) {
			o.CommitHash = headSHA
		}
	}
	job.Normalize(false)
	var decoded error
	if len(prior) > 0 {
		decoded = &domain.ValidationError{Problems: prior}
	}
	var invalid *domain.ValidationError
	if err := domain.JoinProblems(decoded, domain.Validate(job)); errors.As(err, &invalid) {
		return job, invalid.Problems
	} else if err != nil {
		return job, []domain.Problem{{Message: err.Error()}}
	}
	return job, nil
}

// CheckConfig checks a .iac-ci.yml without GitHub, as a pull request's event would check it,
// and returns every problem. The fields a pull request supplies (the repository, the number,
// the head commit, the author) are filled with stand-ins, so what is checked is the file alone.
func CheckConfig(text []byte) []domain.Problem {
	if len(text) > domain.MaxBodyBytes {
		return []domain.Problem{{Message: fmt.Sprintf("the file is %d bytes: keep it under %d bytes", len(text), domain.MaxBodyBytes)}}
	}
	cfg, problems := parseConfig(text)
	if len(problems) > 0 && !cfg.Read {
		return problems
	}
	_, problems = configJob(cfg, problems, "owner/repository", 1, strings.Repeat("0", 40), "author")
	return problems
}

// readConfig reads and checks .iac-ci.yml at ref. A file that is missing, not a file or unreadable
// is a problem, not an error; an error means GitHub could not be asked.
func (c *Client) readConfig(ctx context.Context, owner, name, ref string) (repoConfig, []domain.Problem, error) {
	file, dir, _, err := c.gh.Repositories.GetContents(ctx, owner, name, ConfigPath, &gh.RepositoryContentGetOptions{Ref: ref})
	err = mapError(err)
	switch {
	case errors.Is(err, vcs.ErrNotFound):
		return repoConfig{}, []domain.Problem{{Message: fmt.Sprintf("there is no %s at %s: add one that lists the orders to run", ConfigPath, shortSHA(ref))}}, nil
	case err != nil:
		return repoConfig{}, nil, fmt.Errorf("read %s of %s/%s at %s: %w", ConfigPath, owner, name, ref, err)
	case file == nil || dir != nil:
		return repoConfig{}, []domain.Problem{{Message: ConfigPath + " is a folder: make it a file"}}, nil
	}
	text, err := file.GetContent()
	if err != nil {
		// GitHub sends no content for files over 1 MB, far beyond any config.
		return repoConfig{}, []domain.Problem{{Message: fmt.Sprintf("cannot be read (%d bytes): keep it under %d bytes", file.GetSize(), domain.MaxBodyBytes)}}, nil
	}
	cfg, problems := parseConfig([]byte(text))
	return cfg, problems, nil
}

// clearProblems marks a config-problems comment this client wrote as resolved, once the config
// reads well again. Comments written before a restart are left as they are.
func (c *Client) clearProblems(ctx context.Context, owner, name string, number int, ref string) error {
	c.mu.Lock()
	_, wrote := c.comments[commentKey(owner+"/"+name, number, configMarker)]
	c.mu.Unlock()
	if !wrote {
		return nil
	}
	body := fmt.Sprintf("%s\n### ✅ iac-ci: %s is valid again\n\nAs of %s, it has no problems.\n", configMarker, ConfigPath, shortSHA(ref))
	if err := c.upsertComment(ctx, owner, name, number, configMarker, body); err != nil {
		return fmt.Errorf("comment on %s/%s#%d: %w", owner, name, number, err)
	}
	return nil
}

// changedFiles lists the files a pull request changes, every page of them; a renamed file counts
// under both its names, since it left one folder and entered another.
func (c *Client) changedFiles(ctx context.Context, owner, name string, number int) ([]string, error) {
	var files []string
	opts := &gh.ListOptions{PerPage: 100}
	for {
		page, resp, err := c.gh.PullRequests.ListFiles(ctx, owner, name, number, opts)
		if err != nil {
			return nil, fmt.Errorf("list files of %s/%s#%d: %w", owner, name, number, mapError(err))
		}
		for _, f := range page {
			files = append(files, f.GetFilename())
			if prev := f.GetPreviousFilename(); prev != "" {
				files = append(files, prev)
			}
		}
		if resp.NextPage == 0 {
			return files, nil
		}
		opts.Page = resp.NextPage
	}
}

// renderProblems writes the comment that tells a pull request's author what is wrong with the
// config, every problem with its path.
func renderProblems(ref string, fork bool, problems []domain.Problem) string {
	var b strings.Builder
	b.WriteString(configMarker)
	b.WriteString("\n### ⚠️ iac-ci cannot run this pull request\n\n")
	where := "at"
	if fork {
		where = "on the base branch, at" // a fork runs with the base's config
	}
	fmt.Fprintf(&b, "`%s` %s `%s` has %d problem", ConfigPath, where, shortSHA(ref), len(problems))
	if len(problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString(":\n\n")
	for i, p := range problems {
		if i == maxListedProblems {
			fmt.Fprintf(&b, "- … and %d more\n", len(problems)-i)
			break
		}
		msg := htmlText.Replace(clip(strings.Join(strings.Fields(p.Message), " "), maxProblemChars))
		if p.Path == "" {
			fmt.Fprintf(&b, "- %s\n", msg)
			continue
		}
		fmt.Fprintf(&b, "- `%s`: %s\n", strings.ReplaceAll(clip(p.Path, maxProblemChars), "`", "'"), msg)
	}
	fmt.Fprintf(&b, "\nFix the file and push a commit, or comment `%s` once it is fixed.\n", RunCommand)
	return b.String()
}

// htmlText keeps a message from opening HTML tags in a comment; quotes stay as they are, since
// they mean nothing outside a tag.
var htmlText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func clip(s string, limit int) string {
	r := []rune(s)
	if len(r) <= limit {
		return s
	}
	return string(r[:limit]) + "…"
}

func shortSHA(ref string) string {
	if len(ref) == 40 {
		return ref[:12]
	}
	return ref
}

func orDeleted(repo string) string {
	if repo == "" {
		return "(deleted)"
	}
	return repo
}
