package producers_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/producers"
)

// An env: location reads the server's own environment and sends the value as git credentials
// to a host the job picks: over HTTP it is refused unless the operator allowed that variable;
// a job file the operator runs may name any.
func TestEnvLocationsOverHTTPNeedTheOperatorsLeave(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		source   string
		allow    []string
		token    string
		sshKey   string
		wantPath string // "" wants the job accepted
	}{
		{name: "webhook token", source: "webhook", token: "env:IAC_CI_GITHUB_TOKEN", wantPath: "git_token_location"},
		{name: "webhook ssh key", source: "webhook", sshKey: "env:DEPLOY_KEY", wantPath: "git_ssh_key_location"},
		{name: "github event", source: "github", token: "env:HOME", wantPath: "git_token_location"},
		{name: "ssm endpoint", source: "ssm", token: "env:GITHUB_TOKEN", wantPath: "git_token_location"},
		{name: "another variable than the allowed one", source: "webhook", allow: []string{"CI_TOKEN"}, token: "env:GITHUB_TOKEN", wantPath: "git_token_location"},
		{name: "allowed variable", source: "webhook", allow: []string{"CI_TOKEN", "GITHUB_TOKEN"}, token: "env:GITHUB_TOKEN"},
		{name: "job file of iac-ci run", source: "cli", token: "env:GITHUB_TOKEN", sshKey: "env:DEPLOY_KEY"},
		{name: "a secret of the secrets file", source: "webhook", token: "aws:::ssm:/ci/github-token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := &producers.Accepter{Embedded: true, AllowEnv: tc.allow}
			s := producers.Submission{Source: tc.source, Job: domain.Job{
				Username: "hostile", GitRepo: "attacker/repo", GitTokenLocation: tc.token, GitSSHKeyLocation: tc.sshKey,
				Orders: []domain.Order{{OrderName: "a", Cmds: []string{"true"}, Timeout: 30}},
			}}
			err := a.Prepare(&s)
			if tc.wantPath == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *domain.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) != 1 {
				t.Fatalf("got %v, want one problem at %s", err, tc.wantPath)
			}
			p := ve.Problems[0]
			if p.Path != tc.wantPath || !strings.Contains(p.Message, "--allow-env") || !strings.Contains(p.Message, "aws:::ssm:") {
				t.Errorf("problem %s: %s; want it at %s, saying how to allow the variable or what to use instead", p.Path, p.Message, tc.wantPath)
			}
		})
	}
}
