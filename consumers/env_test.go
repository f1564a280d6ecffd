package consumers

import (
	"slices"
	"strings"
	"testing"
)

// The commands' environment: the order's variables over the worker's, one entry per name (the
// last, of a name the worker's gives twice), sorted by name.
func TestMergeEnv(t *testing.T) {
	base := []string{"PATH=/bin", "HOME=/root", "TRACE_ID=from-the-worker", "LANG=C", "LANG=C.UTF-8", "NOEQUALS"}
	env := map[string]string{"TRACE_ID": "t-1", "RUN_ID": "r-1", "EMPTY": ""}
	got := mergeEnv(base, env)
	want := []string{"EMPTY=", "HOME=/root", "LANG=C.UTF-8", "PATH=/bin", "RUN_ID=r-1", "TRACE_ID=t-1"}
	if !slices.Equal(got, want) {
		t.Fatalf("mergeEnv:\n got %q\nwant %q", got, want)
	}
	if got := mergeEnv(nil, nil); len(got) != 0 {
		t.Fatalf("mergeEnv(nil, nil) = %q", got)
	}
}

// The commands start from this process's shell variables and none of its others: not iac-ci's
// settings, not a token the operator exported.
func TestLocalEnvKeepsOnlyTheShellsVariables(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	t.Setenv("LC_TIME", "C")
	t.Setenv("GITHUB_TOKEN", "ghp_operators_own")
	t.Setenv("IAC_CI_WEBHOOK_SECRET", "whsec")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
	t.Setenv("CODEBUILD_BUILD_ID", "build:1")
	got := LocalEnv("CODEBUILD_*")
	for _, want := range []string{"PATH=/usr/bin:/bin", "LC_TIME=C", "CODEBUILD_BUILD_ID=build:1"} {
		if !slices.Contains(got, want) {
			t.Errorf("LocalEnv lacks %q: %q", want, got)
		}
	}
	for _, kv := range got {
		for _, secret := range []string{"ghp_operators_own", "whsec", "aws-secret"} {
			if strings.Contains(kv, secret) {
				t.Errorf("LocalEnv passes %q on", kv)
			}
		}
	}
}
