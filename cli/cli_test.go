package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/producers"
)

// invocation is what one call of Main did.
type invocation struct {
	code           int
	stdout, stderr string
}

// call runs Main with args, the environment env (nothing else) and stdin, in the package folder.
func call(t *testing.T, env map[string]string, stdin string, args ...string) invocation {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &stdout, &stderr)
	return invocation{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// writeFile writes a file in a new temporary folder and returns its path.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseFlagsTakesFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args       []string
		positional []string
		json       bool
		data       string
	}{
		{[]string{"job.yaml"}, []string{"job.yaml"}, false, ""},
		{[]string{"--json", "job.yaml"}, []string{"job.yaml"}, true, ""},
		{[]string{"job.yaml", "--json"}, []string{"job.yaml"}, true, ""},
		{[]string{"job.yaml", "--data", "d", "--json"}, []string{"job.yaml"}, true, "d"},
		{[]string{"a", "--json", "b"}, []string{"a", "b"}, true, ""},
		{[]string{"-", "--json"}, []string{"-"}, true, ""},
		{[]string{"--json", "--", "--data", "x"}, []string{"--data", "x"}, true, ""},
		{[]string{"a", "--", "--json"}, []string{"a", "--json"}, false, ""},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			asJSON := fs.Bool("json", false, "")
			data := fs.String("data", "", "")
			got, err := parseFlags(fs, tc.args, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.positional) || *asJSON != tc.json || *data != tc.data {
				t.Fatalf("got %q json=%v data=%q, want %q json=%v data=%q", got, *asJSON, *data, tc.positional, tc.json, tc.data)
			}
		})
	}
}

func TestRunTakesFlagsAfterTheJobFile(t *testing.T) {
	t.Parallel()
	r := call(t, nil, "", "run", "../examples/diamond.yaml", "--json")
	if r.code != ExitSucceeded {
		t.Fatalf("exit code %d, want 0\n%s", r.code, r.stderr)
	}
	var v producers.RunView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("--json after the file did not print JSON: %v\n%s", err, r.stdout)
	}
	if v.Status != domain.RunSucceeded || len(v.Orders) != 4 {
		t.Fatalf("got a run %s of %d orders, want succeeded with 4", v.Status, len(v.Orders))
	}
}

func TestEveryHelpShowsAnExample(t *testing.T) {
	t.Parallel()
	for _, name := range commands {
		for _, args := range [][]string{{"help", name}, {name, "-h"}, {name, "--help"}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				r := call(t, nil, "", args...)
				if r.code != 0 {
					t.Fatalf("exit code %d, want 0\n%s", r.code, r.stderr)
				}
				if !strings.Contains(r.stdout, "Usage: iac-ci "+name) || !strings.Contains(r.stdout, "Example") {
					t.Fatalf("want the usage of %s with an example on stdout, got:\n%s", name, r.stdout)
				}
			})
		}
	}
	r := call(t, nil, "", "help", "nope")
	if r.code != ExitRejected || !strings.Contains(r.stderr, `unknown command "nope"`) {
		t.Fatalf("help of an unknown command: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestBadFlagValuesAreRefusedWithTheAllowedValues(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--log-level", "loud", "../examples/diamond.yaml"}, `invalid value "loud" for flag -log-level: want one of debug, info, warn, error`},
		{[]string{"run", "--workers", "0", "../examples/diamond.yaml"}, `invalid value "0" for flag -workers: want a whole number of at least 1`},
		{[]string{"run", "../examples/diamond.yaml", "--workers", "many"}, `invalid value "many" for flag -workers`},
		{[]string{"serve", "--insecure-skip-signature", "--log-format", "xml"}, `invalid value "xml" for flag -log-format: want one of text, json`},
		{[]string{"serve", "--insecure-skip-signature", "--workers", "-1"}, `for flag -workers: want a whole number of at least 1`},
		{[]string{"serve", "--insecure-skip-signature", "--backend", "gcp"}, `want one of embedded, aws`},
		{[]string{"worker", "--log-level", "verbose"}, `want one of debug, info, warn, error`},
		{[]string{"run", "--no-such-flag", "x.yaml"}, `flag provided but not defined: -no-such-flag (iac-ci help run lists the flags)`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := call(t, nil, "", tc.args...)
			if r.code != ExitRejected || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 saying %q", r.code, r.stderr, tc.want)
			}
		})
	}
}

// badJob has an unknown field.
const badJob = `username: u
orders:
  - order_name: a
    timeout: 30
    cmds: ["true"]
    timout: 3
`

func TestValidate(t *testing.T) {
	t.Parallel()
	cyclic := writeFile(t, "cyclic.yaml", `username: u
orders:
  - {order_name: a, timeout: 30, cmds: ["true"], dependencies: [b]}
  - {order_name: b, timeout: 2000, execution_target: lambda, cmds: ["true"], dependencies: [a]}
`)
	badConfig := writeFile(t, ".iac-ci.yml", `allow_forks: "yes"
orders:
  - order_name: plan
    cmds: ["tofu plan"]
    timeout: 900
    when_modified: ["a/[", "b/**"]
`)
	cases := []struct {
		name  string
		args  []string
		stdin string
		code  int
		want  []string // in stdout
	}{
		{"a job", []string{"../examples/diamond.yaml"}, "", 0, []string{"../examples/diamond.yaml: a valid job of 4 orders"}},
		{"a config", []string{"../examples/.iac-ci.yml"}, "", 0, []string{"../examples/.iac-ci.yml: a valid .iac-ci.yml"}},
		{"both", []string{"../examples/.iac-ci.yml", "../examples/timeout.yaml"}, "", 0, []string{"valid .iac-ci.yml", "timeout.yaml: a valid job"}},
		{"a job from stdin", []string{"-"}, "orders: [{cmds: [\"true\"], timeout: 5}]", 0, []string{"standard input: a valid job of 1 order"}},
		{"an unknown field", []string{"-"}, badJob, 2, []string{"standard input: 1 problem:", `orders[0].timout: unknown field (did you mean "timeout"?)`}},
		{"a cycle and a limit", []string{cyclic}, "", 2, []string{"2 problems:", "dependency cycle", "orders[1].timeout: 2000 exceeds the lambda limit of 840"}},
		{"a bad config", []string{badConfig}, "", 2, []string{"2 problems:", "allow_forks: want true or false", "orders[0].when_modified[0]"}},
		{"a config named otherwise", []string{"-"}, "allow_forks: true\norders: [{cmds: [\"true\"], timeout: 5}]\n", 2, []string{"allow_forks: unknown field in a job; if this is a repository's .iac-ci.yml, name it so or pass --config"}},
		{"a config by flag", []string{"--config", "-"}, "allow_forks: maybe\norders: []\n", 2, []string{"allow_forks: want true or false"}},
		{"a missing file", []string{"no-such.yaml"}, "", 2, []string{"no-such.yaml: 1 problem:", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := call(t, nil, tc.stdin, append([]string{"validate"}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Fatalf("stdout does not say %q:\n%s", w, r.stdout)
				}
			}
		})
	}
	// The config that iac-ci run refuses, since its switches are no job's fields, points to validate.
	if r := call(t, nil, "", "run", "../examples/.iac-ci.yml"); r.code != ExitRejected || !strings.Contains(r.stderr, "allow_forks: unknown field") ||
		!strings.Contains(r.stderr, "check it with: iac-ci validate ../examples/.iac-ci.yml") {
		t.Fatalf("run of a config: exit %d, stderr %q", r.code, r.stderr)
	}
}

// problemsJSON is the JSON a rejected job prints with --json.
type problemsJSON struct {
	Problems []struct {
		File    string `json:"file"`
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"problems"`
}

func TestRejectedJobWithJSONPrintsProblemsOnStdout(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"run", "validate"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			r := call(t, nil, badJob, cmd, "--json", "-")
			if r.code != ExitRejected {
				t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
			}
			var got problemsJSON
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
			}
			if len(got.Problems) != 1 || got.Problems[0].Path != "orders[0].timout" || !strings.Contains(got.Problems[0].Message, "unknown field") {
				t.Fatalf("problems: got %+v", got.Problems)
			}
		})
	}
	r := call(t, nil, "", "validate", "--json", "../examples/diamond.yaml")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "{\n  \"problems\": []\n}" {
		t.Fatalf("a valid job with --json: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestRunReadsTheJobFromStandardInput(t *testing.T) {
	t.Parallel()
	job := "username: u\norders: [{order_name: hello, timeout: 30, cmds: [\"echo hello from stdin\"]}]\n"
	r := call(t, nil, job, "run", "-", "--json")
	if r.code != ExitSucceeded {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	var v producers.RunView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Orders) != 1 || v.Orders[0].OrderName != "hello" || !strings.Contains(v.Orders[0].LogTail, "hello from stdin") {
		t.Fatalf("got %+v", v.Orders)
	}
}

func TestRunDefaultsTheUsernameToTheCurrentUser(t *testing.T) {
	t.Parallel()
	u, err := user.Current()
	if err != nil {
		t.Fatalf("this test needs the current user's account: %v", err)
	}
	r := call(t, nil, `{"orders": [{"timeout": 30, "cmds": ["true"]}]}`, "run", "--json", "-")
	if r.code != ExitSucceeded {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	var v producers.RunView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.FlowID, u.Username+":") {
		t.Fatalf("flow_id %q, want it to start with %q", v.FlowID, u.Username+":")
	}
	// A username in the job still wins.
	r = call(t, nil, `{"username": "alice", "orders": [{"timeout": 30, "cmds": ["true"]}]}`, "run", "--json", "-")
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || !strings.HasPrefix(v.FlowID, "alice:") {
		t.Fatalf("flow_id %q (%v), want it to start with alice:", v.FlowID, err)
	}
}

func TestRunSaysAPullRequestGetsNoCommentWithoutAToken(t *testing.T) {
	t.Parallel()
	const says = "there is no GitHub token"
	withPR := "username: u\ngit_repo: acme/network\npr_number: 12\norders: [{timeout: 30, cmds: [\"true\"]}]\n"
	r := call(t, nil, withPR, "run", "-")
	if r.code != ExitSucceeded || !strings.Contains(r.stderr, "the job names acme/network#12, but "+says) {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	withIssue := strings.Replace(withPR, "pr_number", "issue_number", 1)
	if r := call(t, nil, withIssue, "run", "-"); !strings.Contains(r.stderr, "acme/network#12, but "+says) {
		t.Fatalf("an issue: stderr %q", r.stderr)
	}
	if r := call(t, nil, "username: u\norders: [{timeout: 30, cmds: [\"true\"]}]\n", "run", "-"); strings.Contains(r.stderr, says) {
		t.Fatalf("a job without a pull request: stderr %q", r.stderr)
	}
}

func TestLiveTableFitsTheTerminal(t *testing.T) {
	t.Parallel()
	statuses := []domain.OrderStatus{domain.OrderSucceeded, domain.OrderRunning, domain.OrderQueued, domain.OrderWaiting}
	v := producers.RunView{RunID: "20261206T000000Z-0123456789abcdef", Status: domain.RunRunning}
	for i := range 40 {
		v.Orders = append(v.Orders, producers.OrderView{
			OrderName: fmt.Sprintf("order-with-a-rather-long-name-%02d", i), Target: domain.TargetCodeBuild,
			Status: statuses[i%len(statuses)], Attempt: 1,
		})
	}
	for _, size := range []struct{ height, width int }{{18, 59}, {3, 20}, {60, 200}} {
		for _, color := range []bool{false, true} {
			lines := liveTable(v, 1500*time.Millisecond, size.height, size.width, color)
			if len(lines) > size.height {
				t.Fatalf("%dx%d: %d lines", size.height, size.width, len(lines))
			}
			for _, l := range lines {
				plain := strings.NewReplacer("\033[33m", "", "\033[32m", "", "\033[0m", "").Replace(l)
				if n := utf8.RuneCountInString(plain); n > size.width {
					t.Fatalf("%dx%d: a line of %d characters: %q", size.height, size.width, n, plain)
				}
				if !color && strings.Contains(l, "\033") {
					t.Fatalf("colour without colour: %q", l)
				}
			}
			footer := lines[len(lines)-1]
			if size.width > 100 && !strings.Contains(footer, "10 succeeded, 10 running, 10 queued, 10 waiting") {
				t.Fatalf("the footer does not count the orders: %q", footer)
			}
		}
	}
	// In 18 lines, the running orders come first, in the job's order, and the rest is counted.
	lines := liveTable(v, time.Second, 18, 200, false)
	if !strings.Contains(lines[1], "order-with-a-rather-long-name-01") || !strings.Contains(lines[1], "running") {
		t.Fatalf("the first order shown is not the first running one: %q", lines[1])
	}
	if got := lines[len(lines)-2]; got != "... and 25 more orders" {
		t.Fatalf("want a line counting the orders left out, got %q", got)
	}
	// Colour marks the status and nothing else.
	colored := liveTable(v, time.Second, 18, 200, true)
	if !strings.Contains(colored[1], "\033[33mrunning\033[0m") {
		t.Fatalf("a running order is not yellow: %q", colored[1])
	}
}
