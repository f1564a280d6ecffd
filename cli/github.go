package cli

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/vcs"
	"github.com/iac-ci/iac-ci/vcs/github"
)

// oneRunRetry bounds how long `iac-ci run` retries a final comment GitHub could not take: the
// command waits for it before it exits, and nobody else would write it after.
const oneRunRetry = 30 * time.Second

// githubTimeout bounds each GitHub API call.
const githubTimeout = 30 * time.Second

// githubFlags connect iac-ci to GitHub: with a token, every run that names a repository and a
// pull request (or issue) gets one comment kept up to date and a commit status, and `serve`
// turns GitHub's own pull-request events into runs.
type githubFlags struct {
	token, apiURL, gitURL *string
	getenv                Env
	// oneRun is set by `iac-ci run`, whose server ends with its one run: the comment links to no
	// status page (the link would soon be dead), GitHub events are not served, and a final
	// comment is retried for oneRunRetry at most.
	oneRun bool
}

func addGitHubFlags(fs *flag.FlagSet, getenv Env) *githubFlags {
	return &githubFlags{
		token:  fs.String("github-token", "", "GitHub token for pull-request events, comments and statuses (default $IAC_CI_GITHUB_TOKEN, which keeps it out of the process list)"),
		apiURL: fs.String("github-api-url", "", "GitHub REST API base URL (default https://api.github.com/; GitHub Enterprise: https://HOST/api/v3/)"),
		gitURL: fs.String("git-base-url", "", "where git_repo is cloned from (default https://github.com)"),
		getenv: getenv,
	}
}

// tokenValue is the GitHub token: --github-token, or else $IAC_CI_GITHUB_TOKEN.
func (g *githubFlags) tokenValue() string {
	if *g.token != "" {
		return *g.token
	}
	return g.getenv("IAC_CI_GITHUB_TOKEN")
}

// apply wires GitHub into o: the reporter as a watcher, a finisher and a runner, and the source
// of jobs for GitHub events. Without a token it wires nothing but the clone URL.
func (g *githubFlags) apply(o *Options, log *slog.Logger) error {
	o.GitBaseURL = *g.gitURL
	token := g.tokenValue()
	if token == "" {
		if *g.apiURL != "" {
			return usagef("--github-api-url needs a token: pass --github-token or set IAC_CI_GITHUB_TOKEN")
		}
		return nil
	}
	// A bounded wait: a publish holds up the finalization of its run, and GitHub that stops
	// answering must not hold it for ever.
	client, err := github.New(*g.apiURL, token, &http.Client{Timeout: githubTimeout})
	if err != nil {
		return usagef("--github-api-url: %v", err)
	}
	o.GitHubToken = token

	opts := vcs.ReporterOptions{Log: log}
	if g.oneRun {
		opts.RetryFor = oneRunRetry
	}
	reporter := vcs.NewReporter(client, opts)
	o.Watchers = append(o.Watchers, reporter)
	o.Finishers = append(o.Finishers, reporter)
	oneRun := g.oneRun
	o.Runners = append(o.Runners, func(ctx context.Context, s *assembly.System) {
		var statusURL func(string) string
		if !oneRun {
			// The link carries a read-only capability for its one run, so that people on the
			// pull request open its status without the API token.
			statusURL = func(runID string) string {
				return s.PublicURL() + "/runs/" + url.PathEscape(runID) + s.Server.RunLinkQuery(runID)
			}
		}
		reporter.Run(ctx, s.Engine.Store, statusURL)
	})
	if !oneRun {
		o.GitHub = jobsFromEvents(client)
	}

	api := *g.apiURL
	if api == "" {
		api = "https://api.github.com/"
	}
	log.Info("GitHub connected: pull-request runs are reported there", "api", api, "events", !oneRun)
	return nil
}

// jobsFromEvents makes GitHub events into jobs with client. A body that is not the event its
// header names is the sender's mistake, answered 400 like a rejected job, not 500.
func jobsFromEvents(client *github.Client) func(ctx context.Context, event string, body []byte) (*domain.Job, string, error) {
	return func(ctx context.Context, event string, body []byte) (*domain.Job, string, error) {
		res, err := client.JobFromEvent(ctx, event, body)
		if errors.Is(err, vcs.ErrBadEvent) {
			return nil, res.Reason, &domain.ValidationError{Problems: []domain.Problem{{Path: "body", Message: err.Error()}}}
		}
		return res.Job, res.Reason, err
	}
}
