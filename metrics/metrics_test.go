package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/metrics"
	"github.com/iac-ci/iac-ci/queues"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// scrape GETs /metrics from a real HTTP server and parses it with Prometheus's own text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("GET /metrics does not parse: %v\n%s", err, body)
	}
	return families
}

// value is the value of the series of family with exactly these labels; ok false when absent.
func value(families map[string]*dto.MetricFamily, family string, labels map[string]string) (float64, bool) {
	f := families[family]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			match = match && labels[l.GetName()] == l.GetValue()
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func want(t *testing.T, families map[string]*dto.MetricFamily, family string, labels map[string]string, v float64) {
	t.Helper()
	got, ok := value(families, family, labels)
	if !ok || got != v {
		t.Errorf("%s%v: got %v (present %v), want %v", family, labels, got, ok, v)
	}
}

func TestMetricsCarryEveryFigure(t *testing.T) {
	t.Parallel()
	broker, st := sqlitedbtest.Ports(t, sqlitedbtest.Open(t, ""))
	clk := &clock{now: time.Now()}
	var names []string
	for _, s := range queues.Topology() {
		names = append(names, s.Name)
	}
	m := metrics.New(metrics.Options{Queues: broker, QueueNames: names, Store: st, Now: clk.Now})
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)

	intake, _ := broker.Queue(queues.Intake)
	dlq, _ := broker.Queue(queues.Results + queues.DeadLetterSuffix)
	for _, q := range []queues.Queue{intake, intake, dlq} {
		if err := q.Send(t.Context(), queues.Outgoing{Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	run := domain.Run{RunID: "r-metrics", TraceID: "t1", Status: domain.RunRunning, OrderCount: 2, Open: 2, CreatedAt: now, Deadline: now.Add(time.Hour)}
	orders := []domain.OrderRecord{
		{RunID: run.RunID, OrderNum: 1, TraceID: "t1", OrderName: "a", Target: domain.TargetLambda, Status: domain.OrderRunning, DueAt: now.Add(time.Hour)},
		{RunID: run.RunID, OrderNum: 2, TraceID: "t1", OrderName: "b", Target: domain.TargetCodeBuild, Status: domain.OrderWaiting, DueAt: now.Add(time.Hour)},
	}
	if err := st.CreateRun(t.Context(), run, orders); err != nil {
		t.Fatal(err)
	}
	m.OrderEnded(domain.OrderRecord{Target: domain.TargetSSM, Status: domain.OrderFailed, StartedAt: now, FinishedAt: now.Add(90 * time.Second)})
	m.RunEnded(domain.Run{Status: domain.RunFailed, CreatedAt: now, FinishedAt: now.Add(2 * time.Minute)})
	m.ObserveRequest("webhook", 202, 30*time.Millisecond)
	m.ObserveRequest("webhook", 401, time.Millisecond)
	m.Swept(consumers.SweepPass{Actions: map[string]int{"resent": 2}})
	m.Swept(consumers.SweepPass{Actions: map[string]int{}, Errors: 1})

	f := scrape(t, srv.URL)
	want(t, f, "iac_ci_queue_messages", map[string]string{"queue": "intake"}, 2)
	want(t, f, "iac_ci_queue_messages", map[string]string{"queue": "orders-lambda"}, 0)
	want(t, f, "iac_ci_queue_messages_in_flight", map[string]string{"queue": "intake"}, 0)
	if age, ok := value(f, "iac_ci_queue_oldest_message_age_seconds", map[string]string{"queue": "intake"}); !ok || age < 0 {
		t.Errorf("embedded queue age: %v, present %v", age, ok)
	}
	want(t, f, "iac_ci_dead_letters", map[string]string{"queue": "results"}, 1)
	want(t, f, "iac_ci_dead_letters", map[string]string{"queue": "intake"}, 0)
	want(t, f, "iac_ci_orders", map[string]string{"target": "lambda", "state": "running"}, 1)
	want(t, f, "iac_ci_orders", map[string]string{"target": "codebuild", "state": "waiting"}, 1)
	want(t, f, "iac_ci_orders", map[string]string{"target": "ssm", "state": "queued"}, 0)
	want(t, f, "iac_ci_orders_counted_all", map[string]string{}, 1)
	want(t, f, "iac_ci_orders_ended_total", map[string]string{"target": "ssm", "state": "failed"}, 1)
	want(t, f, "iac_ci_order_duration_seconds", map[string]string{"target": "ssm", "state": "failed"}, 1)
	want(t, f, "iac_ci_run_duration_seconds", map[string]string{"status": "failed"}, 1)
	want(t, f, "iac_ci_http_requests_total", map[string]string{"route": "webhook", "code": "202"}, 1)
	want(t, f, "iac_ci_http_requests_total", map[string]string{"route": "webhook", "code": "401"}, 1)
	want(t, f, "iac_ci_http_request_duration_seconds", map[string]string{"route": "webhook"}, 2)
	want(t, f, "iac_ci_sweeper_passes_total", map[string]string{"result": "ok"}, 1)
	want(t, f, "iac_ci_sweeper_passes_total", map[string]string{"result": "errors"}, 1)
	want(t, f, "iac_ci_sweeper_passes_total", map[string]string{"result": "failed"}, 0)
	want(t, f, "iac_ci_sweeper_actions_total", map[string]string{"action": "resent"}, 2)
	if h := f["iac_ci_order_duration_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleSum() != 90 {
		t.Errorf("order duration sum: %v, want 90", h.GetSampleSum())
	}

	// Within CacheFor a scrape reads nothing again; after it, it does.
	if err := intake.Send(t.Context(), queues.Outgoing{Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, srv.URL), "iac_ci_queue_messages", map[string]string{"queue": "intake"}, 2)
	clk.Advance(metrics.DefaultCacheFor)
	want(t, scrape(t, srv.URL), "iac_ci_queue_messages", map[string]string{"queue": "intake"}, 3)
}
