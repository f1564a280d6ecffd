package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/secrets"
)

// mapSource is a Source over two maps whose errors name the path, as the adapters' do.
type mapSource struct {
	params, secrets map[string]string
	calls           []string
}

func (s *mapSource) Parameter(_ context.Context, path string) (string, error) {
	s.calls = append(s.calls, "ssm:"+path)
	if v, ok := s.params[path]; ok {
		return v, nil
	}
	return "", fmt.Errorf("parameter %s: %w", path, secrets.ErrNotFound)
}

func (s *mapSource) Secret(_ context.Context, name string) (string, error) {
	s.calls = append(s.calls, "secretd:"+name)
	if v, ok := s.secrets[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("secret %s: %w", name, secrets.ErrNotFound)
}

func newSource() *mapSource {
	return &mapSource{
		params:  map[string]string{"/team/db-password": "pw-value", "/team/git.token": "ssm-token"},
		secrets: map[string]string{"prod/api-key": "sm-value", "x/db-password": "sm-value", "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-token": "arn-value"},
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	getenv := func(name string) string {
		if name == "GITHUB_TOKEN" {
			return "env-token"
		}
		return ""
	}
	tests := []struct {
		loc     string
		getenv  func(string) string
		want    string
		wantErr error
	}{
		{"aws:::ssm:/team/git.token", getenv, "ssm-token", nil},
		{"aws:::secretd:prod/api-key", getenv, "sm-value", nil},
		{"env:GITHUB_TOKEN", getenv, "env-token", nil},
		{"env:UNSET_TOKEN", getenv, "", secrets.ErrNotFound},
		{"env:GITHUB_TOKEN", nil, "", secrets.ErrEnvUnavailable},
		{"aws:::ssm:/team/absent", getenv, "", secrets.ErrNotFound},
		{"aws:::secretd:absent", getenv, "", secrets.ErrNotFound},
	}
	for _, tt := range tests {
		loc, err := domain.ParseSecretLocation(tt.loc)
		if err != nil {
			t.Fatalf("ParseSecretLocation(%q): %v", tt.loc, err)
		}
		got, err := secrets.Resolve(t.Context(), newSource(), loc, tt.getenv)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("Resolve(%s): got err %v, want %v", tt.loc, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("Resolve(%s): got %q, want %q", tt.loc, got, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), loc.Ref) {
			t.Errorf("Resolve(%s): error %q does not name %s", tt.loc, err, loc.Ref)
		}
	}
	if _, err := secrets.Resolve(t.Context(), newSource(), domain.SecretLocation{Kind: "vault", Ref: "x"}, getenv); err == nil {
		t.Errorf("Resolve of an unknown kind: got nil error")
	}
}

func TestFetchOrderSecrets(t *testing.T) {
	t.Parallel()
	src := newSource()
	o := domain.Order{
		SSMPaths:           []string{"/team/db-password", "/team/git.token"},
		SecretManagerPaths: []string{"prod/api-key", "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-token"},
	}
	got, err := secrets.FetchOrderSecrets(t.Context(), src, o)
	if err != nil {
		t.Fatalf("FetchOrderSecrets: %v", err)
	}
	want := map[string]string{
		"DB_PASSWORD": "pw-value",
		"GIT_TOKEN":   "ssm-token",
		"API_KEY":     "sm-value",
		"CI_TOKEN":    "arn-value",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("FetchOrderSecrets: got variables %v, want %v", slicesKeys(got), slicesKeys(want))
	}
	wantCalls := []string{"ssm:/team/db-password", "ssm:/team/git.token", "secretd:prod/api-key",
		"secretd:arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-token"}
	if strings.Join(src.calls, ",") != strings.Join(wantCalls, ",") {
		t.Errorf("source calls: got %v, want %v (ssm_paths via Parameter, secret_manager_paths via Secret)", src.calls, wantCalls)
	}

	none, err := secrets.FetchOrderSecrets(t.Context(), newSource(), domain.Order{})
	if err != nil || len(none) != 0 {
		t.Errorf("FetchOrderSecrets of an order without secrets: got %d values, %v", len(none), err)
	}
}

func TestFetchOrderSecretsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		order    domain.Order
		wantIn   []string
		notFound bool
	}{
		{"missing parameter", domain.Order{SSMPaths: []string{"/team/db-password", "/team/absent"}},
			[]string{"ssm_paths[1]", "/team/absent"}, true},
		{"missing secret", domain.Order{SSMPaths: []string{"/team/db-password"}, SecretManagerPaths: []string{"nope"}},
			[]string{"secret_manager_paths[0]", "nope"}, true},
		{"two secrets, one variable", domain.Order{SSMPaths: []string{"/team/db-password"}, SecretManagerPaths: []string{"x/db-password"}},
			[]string{"secret_manager_paths[0]", "DB_PASSWORD"}, false},
	}
	for _, tt := range tests {
		_, err := secrets.FetchOrderSecrets(t.Context(), newSource(), tt.order)
		if err == nil {
			t.Errorf("%s: got nil error", tt.name)
			continue
		}
		if errors.Is(err, secrets.ErrNotFound) != tt.notFound {
			t.Errorf("%s: got %v, want ErrNotFound: %v", tt.name, err, tt.notFound)
		}
		for _, s := range tt.wantIn {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not mention %s", tt.name, err, s)
			}
		}
		for _, v := range []string{"pw-value", "sm-value"} {
			if strings.Contains(err.Error(), v) {
				t.Errorf("%s: error holds a value", tt.name)
			}
		}
	}
}

func slicesKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
