package github

import (
	"slices"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/domain"
)

func TestMatchGlob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		glob, file string
		want       bool
	}{
		{"network/**", "network/main.tf", true},
		{"network/**", "network/modules/vpc/main.tf", true},
		{"network/**", "networking/main.tf", false},
		{"network/", "network/a/b.tf", true},
		{"**/*.tf", "main.tf", true},
		{"**/*.tf", "a/b/c/main.tf", true},
		{"**/*.tf", "a/b/c/main.tfvars", false},
		{"app/**/*.tf", "app/main.tf", true},
		{"app/**/*.tf", "app/x/y/main.tf", true},
		{"app/**/*.tf", "other/app/main.tf", false},
		{"*.tf", "main.tf", true},
		{"*.tf", "dir/main.tf", false}, // globs match from the repository root
		{"./docs/*.md", "docs/a.md", true},
		{"/docs/*.md", "docs/a.md", true},
		{"**", "anything/at/all", true},
		{"a/**/**/b", "a/b", true},
		{"modules/[ab]*/main.tf", "modules/alpha/main.tf", true},
		{"modules/[ab]*/main.tf", "modules/gamma/main.tf", false},
	}
	for _, tt := range tests {
		if got := matchGlob(tt.glob, tt.file); got != tt.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tt.glob, tt.file, got, tt.want)
		}
	}
}

func TestCheckGlob(t *testing.T) {
	t.Parallel()
	for _, good := range []string{"a/**", "**/*.tf", "x/[ab]/y", "docs/"} {
		if msg := checkGlob(good); msg != "" {
			t.Errorf("checkGlob(%q) = %q, want no problem", good, msg)
		}
	}
	for _, bad := range []string{"", "  ", "a/[ab", "a/b**/c", `a\`} {
		if msg := checkGlob(bad); msg == "" {
			t.Errorf("checkGlob(%q) found no problem", bad)
		}
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	cfg, problems := parseConfig([]byte(`
allow_forks: true
draft_prs: false
flow_label: pr
job_timeout: 1800
orders:
  - order_name: plan
    cmds: [tofu plan]
    timeout: 300
    when_modified: ["infra/**"]
`))
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	if !cfg.AllowForks || cfg.DraftPRs {
		t.Errorf("switches: got allow_forks %v draft_prs %v, want true false", cfg.AllowForks, cfg.DraftPRs)
	}
	if cfg.Job.FlowLabel != "pr" || cfg.Job.JobTimeout != 1800 || len(cfg.Job.Orders) != 1 {
		t.Fatalf("job: got %+v", cfg.Job)
	}
	if got := cfg.Job.Orders[0].WhenModified; !slices.Equal(got, []string{"infra/**"}) {
		t.Errorf("when_modified: got %v", got)
	}

	// JSON is YAML too.
	cfg, problems = parseConfig([]byte(`{"draft_prs": true, "orders": [{"cmds": ["x"], "timeout": 5}]}`))
	if len(problems) != 0 || !cfg.DraftPRs || len(cfg.Job.Orders) != 1 {
		t.Fatalf("JSON config: got %+v, problems %v", cfg, problems)
	}
}

func TestParseConfigProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		want       []string // paths, in order
	}{
		{"syntax", "orders: [\n", []string{""}},
		{"empty", "", []string{""}},
		{"not a mapping", "- a\n- b\n", []string{""}},
		{"switch not a bool", "allow_forks: \"yes\"\norders: []\n", []string{"allow_forks"}},
		{"switch twice", "draft_prs: true\ndraft_prs: false\norders: []\n", []string{"draft_prs"}},
		{"field from the PR", "git_repo: a/b\ncommit_hash: abc\norders: []\n", []string{"git_repo", "commit_hash"}},
		{"unknown field", "orders:\n  - cmd: [x]\n    timeout: 5\n", []string{"orders[0].cmd"}},
		{"wrong type", "orders:\n  - cmds: [x]\n    timeout: soon\n", []string{"orders[0].timeout"}},
		{"bad glob", "orders:\n  - cmds: [x]\n    timeout: 5\n    when_modified: [\"a/[b\"]\n", []string{"orders[0].when_modified[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, problems := parseConfig([]byte(tt.text))
			var got []string
			for _, p := range problems {
				got = append(got, p.Path)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("problem paths: got %q, want %q (%v)", got, tt.want, problems)
			}
			for _, p := range problems {
				if strings.TrimSpace(p.Message) == "" {
					t.Errorf("problem at %q has no message", p.Path)
				}
			}
		})
	}
}

func TestSelectOrders(t *testing.T) {
	t.Parallel()
	orders := []domain.Order{
		{QueueID: "vpc", WhenModified: []string{"vpc/**"}},
		{QueueID: "db", Dependencies: []string{"vpc"}, WhenModified: []string{"db/**"}},
		{QueueID: "app", Dependencies: []string{"db"}, WhenModified: []string{"app/**"}},
		{QueueID: "docs", WhenModified: []string{"docs/**"}},
		{QueueID: "lint"},
	}
	tests := []struct {
		changed []string
		want    []int
	}{
		{[]string{"app/main.tf"}, []int{0, 1, 2, 4}}, // app pulls in db, which pulls in vpc
		{[]string{"docs/index.md"}, []int{3, 4}},
		{[]string{"README.md"}, []int{4}},
		{nil, []int{4}},
	}
	for _, tt := range tests {
		if got := selectOrders(orders, tt.changed); !slices.Equal(got, tt.want) {
			t.Errorf("selectOrders(%v) = %v, want %v", tt.changed, got, tt.want)
		}
	}
	if got := selectOrders(orders[:4], []string{"README.md"}); len(got) != 0 {
		t.Errorf("no glob matches: got %v, want none", got)
	}
}
