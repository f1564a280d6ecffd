package github

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestExampleConfig reads the repository's sample .iac-ci.yml as a pull request would: it must
// have no problems, and pick the orders its comments promise.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", ConfigPath))
	if err != nil {
		t.Fatalf("read the example: %v", err)
	}
	if _, problems := parseConfig(example); len(problems) != 0 {
		t.Fatalf("the example has problems: %v", problems)
	}
	cases := []struct {
		changed []string
		want    []string
	}{
		{[]string{"app/main.tf"}, []string{"network-plan", "app-plan"}},
		{[]string{"modules/vpc/main.tf"}, []string{"network-plan", "app-plan"}},
		{[]string{"network/vpc.tf"}, []string{"network-plan"}},
		{[]string{"README.md"}, []string{"docs-lint"}},
	}
	for _, tc := range cases {
		s := newSetup(t, string(example), tc.changed...)
		res, err := s.client.JobFromEvent(t.Context(), "pull_request", fixture(t, "pull_request_opened.json"))
		if err != nil {
			t.Fatalf("%v: JobFromEvent: %v", tc.changed, err)
		}
		if res.Job == nil {
			t.Fatalf("%v: no job: %s", tc.changed, res.Reason)
		}
		if got := orderNames(res.Job); !slices.Equal(got, tc.want) {
			t.Errorf("%v: orders %v, want %v", tc.changed, got, tc.want)
		}
		if res.Job.GitRepo != fixtureRepo || res.Job.PRNumber != fixturePR || res.Job.Orders[0].CommitHash != fixtureHead {
			t.Errorf("%v: job reports to %s#%d and checks out %s, want %s#%d at %s", tc.changed,
				res.Job.GitRepo, res.Job.PRNumber, res.Job.Orders[0].CommitHash, fixtureRepo, fixturePR, fixtureHead)
		}
	}
}
