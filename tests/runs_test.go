package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/producers"
)

func runList(t *testing.T, r result) producers.RunList {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("iac-ci runs: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var l producers.RunList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatalf("iac-ci runs --json: %v\n%s", err, r.stdout)
	}
	return l
}

func listedIDs(l producers.RunList) []string {
	var ids []string
	for _, r := range l.Runs {
		ids = append(ids, r.RunID)
	}
	return ids
}

// TestRunsAndStatusOnADataFolder runs two jobs into one data folder with `iac-ci run --data`,
// then lists and shows them from the folder.
func TestRunsAndStatusOnADataFolder(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	good := writeJob(t, t.TempDir(), `{"username": "ada", "git_repo": "acme/infra", "orders": [{"order_name": "plan", "timeout": 30, "cmds": ["echo ok"]}]}`)
	bad := writeJob(t, t.TempDir(), `{"username": "ada", "git_repo": "acme/infra", "pr_number": 7, "orders": [
	  {"order_name": "plan", "timeout": 30, "cmds": ["echo fine"]},
	  {"order_name": "apply", "timeout": 30, "dependencies": ["plan"], "cmds": ["echo nope; exit 4"]}]}`)
	first := parseView(t, iacci(t, nil, "run", "--data", data, "--json", good).stdout)
	second := parseView(t, iacci(t, nil, "run", "--data", data, "--json", bad).stdout)
	if first.Status != "succeeded" || second.Status != "failed" {
		t.Fatalf("runs: %s, %s; want succeeded, failed", first.Status, second.Status)
	}

	l := runList(t, iacci(t, nil, "runs", "--data", data, "--json"))
	if got := strings.Join(listedIDs(l), " "); got != second.RunID+" "+first.RunID {
		t.Errorf("iac-ci runs: got %s, want the failed run then the first", got)
	}
	l = runList(t, iacci(t, nil, "runs", "--data", data, "--json", "--status", "failed"))
	if got := listedIDs(l); len(got) != 1 || got[0] != second.RunID || l.Runs[0].PRNumber != 7 {
		t.Errorf("iac-ci runs --status failed: got %+v", l.Runs)
	}
	l = runList(t, iacci(t, nil, "runs", "--data", data, "--json", "--limit", "1"))
	if len(l.Runs) != 1 || l.Next == "" {
		t.Fatalf("iac-ci runs --limit 1: got %d runs, next %q", len(l.Runs), l.Next)
	}
	l = runList(t, iacci(t, nil, "runs", "--data", data, "--json", "--limit", "1", "--after", l.Next))
	if got := listedIDs(l); len(got) != 1 || got[0] != first.RunID || l.Next != "" {
		t.Errorf("iac-ci runs, second page: got %v, next %q", got, l.Next)
	}

	table := iacci(t, nil, "runs", "--data", data)
	if table.code != 0 || !strings.Contains(table.stdout, second.RunID) || !strings.Contains(table.stdout, "#7") ||
		!strings.Contains(table.stdout, "acme/infra") {
		t.Errorf("iac-ci runs table: exit %d\n%s%s", table.code, table.stdout, table.stderr)
	}

	st := iacci(t, nil, "status", "--data", data, second.RunID)
	if st.code != 0 || !strings.Contains(st.stdout, "apply") || !strings.Contains(st.stdout, "run "+second.RunID+" failed") ||
		!strings.Contains(st.stdout, "exited with 4") {
		t.Errorf("iac-ci status: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
	js := iacci(t, nil, "status", "--data", data, "--json", first.RunID)
	if v := parseView(t, js.stdout); v.RunID != first.RunID || v.Status != "succeeded" || len(v.Orders) != 1 {
		t.Errorf("iac-ci status --json: %+v", v)
	}
}

func TestRunsRefusesWhatItCannotRead(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nothing-here")
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"runs", "--data", missing}, 3, "no iac-ci data in " + missing},
		{[]string{"runs", "--data", missing, "--status", "done"}, 2, "status"},
		{[]string{"runs", "--data", missing, "--limit", "0"}, 2, "limit"},
		{[]string{"runs", "--server", "ftp://x"}, 2, "--server"},
		{[]string{"status", "--data", missing}, 2, "one run id"},
		{[]string{"status", "--data", t.TempDir(), "r-1"}, 3, "no iac-ci data"},
	} {
		r := iacci(t, nil, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.says) {
			t.Errorf("iac-ci %s: exit %d, stderr %q; want exit %d saying %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.says)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("iac-ci runs made the data folder it was pointed at: %v", err)
	}
}

// TestRunsAndStatusOfARunningServer asks a running `iac-ci serve` over HTTP.
func TestRunsAndStatusOfARunningServer(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	code, body := s.post("/webhook", []byte(goodJob), secret, nil)
	if code != 202 {
		t.Fatalf("POST /webhook: %d %v", code, body)
	}
	runID := body["run_id"].(string)
	s.waitRun(runID, time.Minute)

	l := runList(t, iacci(t, nil, "runs", "--server", s.url, "--json", "--username", "caller"))
	if got := listedIDs(l); len(got) != 1 || got[0] != runID {
		t.Errorf("iac-ci runs --server: got %v, want [%s]", got, runID)
	}
	st := iacci(t, nil, "status", "--server", s.url, runID)
	if st.code != 0 || !strings.Contains(st.stdout, "plan") || !strings.Contains(st.stdout, "run "+runID+" succeeded") {
		t.Errorf("iac-ci status --server: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
	missing := iacci(t, nil, "status", "--server", s.url, "no-such-run")
	if missing.code != 3 || !strings.Contains(missing.stderr, "404") {
		t.Errorf("iac-ci status --server of a missing run: exit %d, %s", missing.code, missing.stderr)
	}
	// The same folder, read beside the server that holds it.
	fromFolder := runList(t, iacci(t, nil, "runs", "--data", s.data, "--json"))
	if got := listedIDs(fromFolder); len(got) != 1 || got[0] != runID {
		t.Errorf("iac-ci runs --data of a served folder: got %v", got)
	}
}

// TestAWSRunsAndStatus reads runs from the DynamoDB tables of an emulated deployment, through
// the runs index, with the configuration `iac-ci serve --backend aws` uses.
func TestAWSRunsAndStatus(t *testing.T) {
	t.Parallel()
	st := newAWSStack(t)
	s := st.serve()
	job := []byte(`{"username": "grace", "git_repo": "acme/infra", "pr_number": 9, "orders": [
	  {"order_name": "plan", "timeout": 60, "execution_target": "lambda", "cmds": ["echo planned"]}]}`)
	runID := postJob(t, s, job)
	waitAWSRun(t, s, runID, 2*time.Minute)

	l := runList(t, iacci(t, st.env, "runs", "--backend", "aws", "--json", "--pr", "9"))
	if got := listedIDs(l); len(got) != 1 || got[0] != runID || l.Runs[0].Status != "succeeded" || l.Runs[0].GitRepo != "acme/infra" {
		t.Errorf("iac-ci runs --backend aws --pr 9: got %+v", l.Runs)
	}
	if l := runList(t, iacci(t, st.env, "runs", "--backend", "aws", "--json", "--status", "failed")); len(l.Runs) != 0 {
		t.Errorf("iac-ci runs --backend aws --status failed: got %+v", l.Runs)
	}
	r := iacci(t, st.env, "status", "--backend", "aws", runID)
	if r.code != 0 || !strings.Contains(r.stdout, "plan") || !strings.Contains(r.stdout, "run "+runID+" succeeded") {
		t.Errorf("iac-ci status --backend aws: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
