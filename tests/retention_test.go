package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/domain"
)

// A data folder keeps an ended run for --retention, then drops it with its history and objects:
// a folder no longer grows by every run it ever ran.
func TestServePrunesRunsPastTheRetention(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data, nil, "--webhook-secret", secret)
	code, acc := s.post("/webhook", []byte(goodJob), secret, nil)
	if code != http.StatusAccepted {
		t.Fatalf("POST /webhook: %d %v", code, acc)
	}
	runID := acc["run_id"].(string)
	if v := s.waitRun(runID, time.Minute); v.Status != domain.RunSucceeded {
		t.Fatalf("run %s", v.Status)
	}
	s.stop()
	// The default keeps it.
	s = startServer(t, data, nil, "--webhook-secret", secret)
	if resp, err := get(s.url + "/runs/" + runID); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the run with the default retention: %v %v", resp.StatusCode, err)
	}
	if r := iacci(t, nil, "logs", runID, "plan", "--server", s.url); r.code != 0 || !strings.Contains(r.stdout, "planning") {
		t.Fatalf("the log of a kept run: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	s.stop()
	s = startServer(t, data, nil, "--webhook-secret", secret, "--retention", "1ms")
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := get(s.url + "/runs/" + runID)
		if err == nil && resp.StatusCode == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run past its retention is still kept: %v %v", resp.StatusCode, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, path := range []string{"/done/" + runID, "/runs/" + runID + "/events"} {
		if resp, err := get(s.url + path); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s of a pruned run: %v %v, want 404", path, resp.StatusCode, err)
		}
	}
	if r := iacci(t, nil, "logs", runID, "plan", "--server", s.url); r.code == 0 {
		t.Errorf("the log of a pruned run is still there:\n%s", r.stdout)
	}
}
