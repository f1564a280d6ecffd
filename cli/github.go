package cli

import (
	"flag"
	"log/slog"
)

type githubFlags struct {
	token, apiURL, gitURL *string
	getenv                Env
}

func addGitHubFlags(fs *flag.FlagSet, getenv Env) *githubFlags {
	return &githubFlags{
		token:  fs.String("github-token", "", "GitHub token for pull-request events, comments and statuses (default $IAC_CI_GITHUB_TOKEN)"),
		apiURL: fs.String("github-api-url", "", "GitHub REST API base URL (default https://api.github.com/; GitHub Enterprise: https://HOST/api/v3/)"),
		gitURL: fs.String("git-base-url", "", "where git_repo is cloned from (default https://github.com)"),
		getenv: getenv,
	}
}

func (g *githubFlags) apply(o *Options, log *slog.Logger) error {
	o.GitBaseURL = *g.gitURL
	return nil
}
