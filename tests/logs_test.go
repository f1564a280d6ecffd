package tests

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
)

// iac-ci logs prints every line of an order that wrote 10,000 lines, from the server and from
// its data folder, and GET /runs/{id}/orders/{order}/log answers the same; -f shows a running
// order's lines before it ends, and ends with it.
func TestLogsAreWholeAndFollowARunningOrder(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data, nil, "--webhook-secret", secret)
	job := []byte(`{"username": "logs", "orders": [
		{"order_name": "many", "execution_target": "lambda", "timeout": 60, "cmds": ["seq 1 10000"]},
		{"order_name": "slow", "execution_target": "lambda", "timeout": 60,
		 "cmds": ["echo first", "sleep 3", "echo second"]}]}`)
	code, acc := s.post("/webhook", job, secret, nil)
	if code != http.StatusAccepted {
		t.Fatalf("POST /webhook: %d %v", code, acc)
	}
	runID := acc["run_id"].(string)

	// Follow the slow order from its start: its first line comes while it still runs.
	follow := exec.Command(binary, "logs", runID, "slow", "-f", "--server", s.url)
	follow.Dir, follow.Env = repoRoot, append(os.Environ(), "IAC_CI_API_TOKEN="+apiToken)
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb lockedBuffer
	follow.Stderr = &errb
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	sawFirst := false
	for lines.Scan() {
		if lines.Text() == "first" {
			sawFirst = true
			break
		}
	}
	if !sawFirst {
		t.Fatalf("logs -f ended without the first line: %s", errb.String())
	}
	resp, err := get(s.url + "/runs/" + runID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, o := range parseView(t, string(body)).Orders {
		if o.OrderName == "slow" && o.Status != domain.OrderRunning {
			t.Fatalf("the first line of the slow order came when it was %s, not while it ran", o.Status)
		}
	}
	rest, _ := io.ReadAll(out)
	if err := follow.Wait(); err != nil || !strings.Contains(string(rest), "second") {
		t.Fatalf("logs -f after the first line: %v, %q\n%s", err, rest, errb.String())
	}

	v := s.waitRun(runID, time.Minute)
	if v.Status != domain.RunSucceeded {
		t.Fatalf("run %s %+v", v.Status, v.Orders)
	}
	whole := func(where, text string) {
		t.Helper()
		n := 0
		for _, l := range strings.Split(text, "\n") {
			if _, err := strconv.Atoi(l); err == nil {
				n++
				if l != strconv.Itoa(n) {
					t.Fatalf("%s: line %q where %d belongs", where, l, n)
				}
			}
		}
		if n != 10000 {
			t.Fatalf("%s: %d of the 10000 lines", where, n)
		}
	}
	r := iacci(t, nil, "logs", runID, "many", "--server", s.url)
	if r.code != 0 {
		t.Fatalf("logs --server: exit %d\n%s", r.code, r.stderr)
	}
	whole("iac-ci logs --server", r.stdout)
	resp, err = get(s.url + "/runs/" + runID + "/orders/many/log")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET log: %d %s", resp.StatusCode, body)
	}
	whole("GET /runs/{id}/orders/many/log", string(body))
	if resp, err := http.Get(s.url + "/runs/" + runID + "/orders/many/log"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET log without the token: %v %v", resp.StatusCode, err)
	}
	if resp, err := get(s.url + "/runs/" + runID + "/orders/nope/log"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET log of an order the run does not have: %v %v", resp.StatusCode, err)
	}
	s.stop()
	r = iacci(t, nil, "logs", runID, "many", "--data", data)
	if r.code != 0 {
		t.Fatalf("logs --data: exit %d\n%s", r.code, r.stderr)
	}
	whole("iac-ci logs --data", r.stdout)
}

// iac-ci run shows the last lines of a failed order's output under its table, and with --logs
// every order's output, each line after its order's name.
func TestRunShowsWhatFailedOrdersPrinted(t *testing.T) {
	t.Parallel()
	r := iacci(t, nil, "run", "examples/blocked-failure.yaml")
	if r.code != 1 || !strings.Contains(r.stdout, "--- plan: the last lines of its output ---") ||
		!strings.Contains(r.stdout, "error: provider credentials missing") {
		t.Fatalf("run of a failing job: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = iacci(t, nil, "run", "examples/diamond.yaml", "--logs")
	if r.code != 0 || !strings.Contains(r.stdout, "apply | applying run ") || !strings.Contains(r.stdout, "plan | + ") {
		t.Fatalf("run --logs: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
