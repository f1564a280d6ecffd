package tests

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsOf reads GET /metrics with Prometheus's text parser.
func metricsOf(t *testing.T, s *server) map[string]*dto.MetricFamily {
	t.Helper()
	if resp, err := http.Get(s.url + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without the API token: %v, want 401", err)
	}
	resp, err := get(s.url + "/metrics") // as Prometheus scrapes it, with the token as its bearer
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	f, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("GET /metrics does not parse: %v\n%s", err, body)
	}
	return f
}

// sample is the value of a family's series with the given labels (a histogram's count).
func sample(f map[string]*dto.MetricFamily, family string, labels ...string) (float64, bool) {
	for _, m := range f[family].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := len(got) == len(labels)/2
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && got[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		default:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestMetricsOfARealServer runs a job with a failing order through `iac-ci serve` and reads
// what GET /metrics says of it.
func TestMetricsOfARealServer(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	job := `{"username": "ada", "orders": [
	  {"order_name": "plan", "timeout": 30, "execution_target": "lambda", "cmds": ["echo planning"]},
	  {"order_name": "apply", "timeout": 30, "dependencies": ["plan"], "cmds": ["echo no; exit 2"]}]}`
	code, body := s.post("/webhook", []byte(job), secret, nil)
	if code != http.StatusAccepted {
		t.Fatalf("POST /webhook: %d %v", code, body)
	}
	if code, _ := s.post("/webhook", []byte(job), "wrong secret", nil); code != http.StatusUnauthorized {
		t.Fatalf("a wrongly signed POST /webhook: %d", code)
	}
	s.waitRun(body["run_id"].(string), time.Minute)

	var f map[string]*dto.MetricFamily
	// The sweeper's first pass runs as the server starts; wait for it to be counted (and for
	// the read figures' cache to pass).
	waitForCondition(t, "a sweeper pass and fresh figures", 30*time.Second, func() bool {
		f = metricsOf(t, s)
		passes, _ := sample(f, "iac_ci_sweeper_passes_total", "result", "ok")
		running, _ := sample(f, "iac_ci_orders", "target", "codebuild", "state", "running")
		return passes >= 1 && running == 0
	})
	for _, c := range []struct {
		family string
		labels []string
		want   float64
	}{
		{"iac_ci_http_requests_total", []string{"route", "webhook", "code", "202"}, 1},
		{"iac_ci_http_requests_total", []string{"route", "webhook", "code", "401"}, 1},
		{"iac_ci_http_request_duration_seconds", []string{"route", "webhook"}, 2},
		{"iac_ci_orders_ended_total", []string{"target", "lambda", "state", "succeeded"}, 1},
		{"iac_ci_orders_ended_total", []string{"target", "codebuild", "state", "failed"}, 1},
		{"iac_ci_order_duration_seconds", []string{"target", "codebuild", "state", "failed"}, 1},
		{"iac_ci_run_duration_seconds", []string{"status", "failed"}, 1},
		{"iac_ci_queue_messages", []string{"queue", "intake"}, 0},
		{"iac_ci_queue_messages", []string{"queue", "results-dlq"}, 0},
		{"iac_ci_dead_letters", []string{"queue", "orders-codebuild"}, 0},
		{"iac_ci_orders", []string{"target", "lambda", "state", "waiting"}, 0},
	} {
		if got, ok := sample(f, c.family, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v: got %v (present %v), want %v", c.family, c.labels, got, ok, c.want)
		}
	}
	if _, ok := sample(f, "iac_ci_queue_oldest_message_age_seconds", "queue", "results"); !ok {
		t.Errorf("no age of the results queue's oldest message")
	}
}
