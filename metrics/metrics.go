// Package metrics is what operators and alarms read of iac-ci: the depth and oldest message's
// age of every queue, dead letters per queue, orders by target and state, order and run
// durations, how webhook requests were answered and how fast, and what the sweeper's passes
// did. Metrics serves them in the Prometheus text format (GET /metrics), from a registry of its
// own, and writes the same figures as CloudWatch Embedded Metric Format lines where a Lambda
// function's output is its only channel (emf.go).
//
// Figures come two ways. Events are counted as they happen: the engine tells it of each order
// and run it ends (engine.Observer), the HTTP server of each answer (producers.RequestObserver),
// the sweeper of each pass (consumers.SweepObserver); these are the figures of this process
// since it started, as Prometheus counters and histograms are. States are read when asked: the
// queues' counts (one call per queue: GetQueueAttributes on SQS) and the orders not yet ended
// (the store's DueOrders, which the sweeper reads anyway), kept for CacheFor so that frequent
// scrapes cost nothing more.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/store"
)

// DefaultCacheFor is how long read figures are kept.
const DefaultCacheFor = 5 * time.Second

// maxOpenOrders bounds the orders one reading counts; iac_ci_orders_counted_all says whether
// the reading saw them all.
const maxOpenOrders = 10000

// Options are what Metrics reads.
type Options struct {
	Queues queues.Broker
	// QueueNames are the queues to report (queues.Topology's, dead-letter queues included).
	QueueNames []string
	Store      store.Store
	// CacheFor is how long read figures are kept; zero is DefaultCacheFor.
	CacheFor time.Duration
	Log      *slog.Logger
	Now      func() time.Time
}

// Metrics holds iac-ci's figures. Its methods are safe for concurrent use.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	ordersEnded   *prometheus.CounterVec
	orderDuration *prometheus.HistogramVec
	runDuration   *prometheus.HistogramVec
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	passes        *prometheus.CounterVec
	actions       *prometheus.CounterVec

	mu     sync.Mutex // guards the reading below and serializes refreshes
	read   time.Time
	states states

	emfMu   sync.Mutex
	emfLast map[string]float64 // cumulative figures as the last EMF write saw them
}

// states is one reading of the figures that are read, not counted.
type states struct {
	queues     map[string]queues.Stats // by queue name; a queue whose read failed is absent
	open       map[[2]string]int       // non-terminal orders by target and state
	countedAll bool
	openRead   bool
}

// New makes the figures and registers them in a registry of their own.
func New(o Options) *Metrics {
	if o.CacheFor <= 0 {
		o.CacheFor = DefaultCacheFor
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	durations := prometheus.ExponentialBuckets(1, 2.5, 12) // 1 s to about 16 h
	m := &Metrics{opts: o, reg: prometheus.NewRegistry(),
		ordersEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iac_ci_orders_ended_total",
			Help: "Orders this process ended, by execution target and terminal state."}, []string{"target", "state"}),
		orderDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "iac_ci_order_duration_seconds",
			Help: "How long ended orders ran, from their start to their end, by target and state.", Buckets: durations},
			[]string{"target", "state"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "iac_ci_run_duration_seconds",
			Help: "How long finalized runs took, from acceptance to their end, by status.", Buckets: durations}, []string{"status"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iac_ci_http_requests_total",
			Help: "Webhook and SSM requests answered, by route and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "iac_ci_http_request_duration_seconds",
			Help: "How long webhook and SSM requests took to answer, by route.", Buckets: prometheus.DefBuckets}, []string{"route"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iac_ci_sweeper_passes_total",
			Help: "Sweeper passes, by result: ok, errors (some repairs failed), failed (nothing could be read)."}, []string{"result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iac_ci_sweeper_actions_total",
			Help: "What sweeper passes repaired: resent, rechecked, recorded, timed_out (orders); reported, deadline, finalized (runs)."},
			[]string{"action"}),
	}
	m.reg.MustRegister(m.ordersEnded, m.orderDuration, m.runDuration, m.requests, m.latency, m.passes, m.actions, stateCollector{m})
	for _, r := range []string{"ok", "errors", "failed"} {
		m.passes.WithLabelValues(r) // every result shows, at zero, from the start
	}
	return m
}

// Registry is the registry the figures are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves GET /metrics: it refreshes the read figures when they are older than
// CacheFor, then writes everything in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slogErrors{m.opts.Log}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Refresh(r.Context())
		h.ServeHTTP(w, r)
	})
}

type slogErrors struct{ log *slog.Logger }

func (l slogErrors) Println(v ...any) {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strings.TrimSpace(slogString(x))
	}
	l.log.Warn("metrics", "err", strings.Join(parts, " "))
}

func slogString(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// Refresh reads the queues and the open orders again, unless the last reading is younger than
// CacheFor. A figure that cannot be read is left out (and logged), never reported as zero.
func (m *Metrics) Refresh(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	if !m.read.IsZero() && now.Sub(m.read) < m.opts.CacheFor {
		return
	}
	st := states{queues: map[string]queues.Stats{}, open: map[[2]string]int{}}
	if m.opts.Queues != nil {
		for _, name := range m.opts.QueueNames {
			q, err := m.opts.Queues.Queue(name)
			if err == nil {
				var s queues.Stats
				if s, err = q.Stats(ctx); err == nil {
					st.queues[name] = s
					continue
				}
			}
			m.opts.Log.WarnContext(ctx, "metrics: queue stats", "queue", name, "err", err)
		}
	}
	if m.opts.Store != nil {
		// Every non-terminal order has a due time, so all of them are due by the end of time.
		open, err := m.opts.Store.DueOrders(ctx, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), maxOpenOrders)
		if err != nil {
			m.opts.Log.WarnContext(ctx, "metrics: open orders", "err", err)
		} else {
			st.openRead, st.countedAll = true, len(open) < maxOpenOrders
			for _, o := range open {
				st.open[[2]string{string(o.Target), string(o.Status)}]++
			}
		}
	}
	m.states, m.read = st, now
}

// OrderEnded counts an ended order and its duration (engine.Observer).
func (m *Metrics) OrderEnded(o domain.OrderRecord) {
	m.ordersEnded.WithLabelValues(string(o.Target), string(o.Status)).Inc()
	if !o.StartedAt.IsZero() && !o.FinishedAt.IsZero() && !o.FinishedAt.Before(o.StartedAt) {
		m.orderDuration.WithLabelValues(string(o.Target), string(o.Status)).Observe(o.FinishedAt.Sub(o.StartedAt).Seconds())
	}
}

// RunEnded observes a finalized run's duration (engine.Observer).
func (m *Metrics) RunEnded(run domain.Run) {
	if !run.CreatedAt.IsZero() && !run.FinishedAt.IsZero() && !run.FinishedAt.Before(run.CreatedAt) {
		m.runDuration.WithLabelValues(string(run.Status)).Observe(run.FinishedAt.Sub(run.CreatedAt).Seconds())
	}
}

// ObserveRequest counts a webhook or SSM answer (producers.RequestObserver).
func (m *Metrics) ObserveRequest(route string, code int, took time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(took.Seconds())
}

// Swept counts a sweeper pass (consumers.SweepObserver).
func (m *Metrics) Swept(p consumers.SweepPass) {
	switch {
	case p.Failed:
		m.passes.WithLabelValues("failed").Inc()
	case p.Errors > 0:
		m.passes.WithLabelValues("errors").Inc()
	default:
		m.passes.WithLabelValues("ok").Inc()
	}
	for action, n := range p.Actions {
		m.actions.WithLabelValues(action).Add(float64(n))
	}
}

// The read figures' descriptions.
var (
	descMessages = prometheus.NewDesc("iac_ci_queue_messages",
		"Messages waiting to be received, by queue (dead-letter queues included).", []string{"queue"}, nil)
	descInFlight = prometheus.NewDesc("iac_ci_queue_messages_in_flight",
		"Messages received and not yet deleted, by queue.", []string{"queue"}, nil)
	descDelayed = prometheus.NewDesc("iac_ci_queue_messages_delayed",
		"Messages sent with a delay not yet passed, by queue.", []string{"queue"}, nil)
	descAge = prometheus.NewDesc("iac_ci_queue_oldest_message_age_seconds",
		"Age of the oldest waiting message, by queue; embedded only (on SQS it is CloudWatch's ApproximateAgeOfOldestMessage).",
		[]string{"queue"}, nil)
	descDeadLetters = prometheus.NewDesc("iac_ci_dead_letters",
		"Messages in the dead-letter queue of each queue (intake, orders-*, results), by that queue's name.", []string{"queue"}, nil)
	descOrders = prometheus.NewDesc("iac_ci_orders",
		"Orders not yet ended, by execution target and state (waiting, queued, running).", []string{"target", "state"}, nil)
	descCountedAll = prometheus.NewDesc("iac_ci_orders_counted_all",
		"1 when iac_ci_orders counts every open order, 0 when there were more than it reads at once.", nil, nil)
)

// stateCollector reports the last reading (Refresh makes it).
type stateCollector struct{ m *Metrics }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMessages, descInFlight, descDelayed, descAge, descDeadLetters, descOrders, descCountedAll} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	st := c.m.states
	c.m.mu.Unlock()
	for name, s := range st.queues {
		ch <- prometheus.MustNewConstMetric(descMessages, prometheus.GaugeValue, float64(s.Visible), name)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(s.InFlight), name)
		ch <- prometheus.MustNewConstMetric(descDelayed, prometheus.GaugeValue, float64(s.Delayed), name)
		if s.AgeKnown {
			ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, s.OldestAge.Seconds(), name)
		}
		if source, ok := strings.CutSuffix(name, queues.DeadLetterSuffix); ok {
			ch <- prometheus.MustNewConstMetric(descDeadLetters, prometheus.GaugeValue, float64(s.Visible+s.InFlight+s.Delayed), source)
		}
	}
	if st.openRead {
		// Every open state of every target shows, at zero when empty, so an alarm has a series.
		for _, t := range domain.Targets {
			for _, state := range []domain.OrderStatus{domain.OrderWaiting, domain.OrderQueued, domain.OrderRunning} {
				ch <- prometheus.MustNewConstMetric(descOrders, prometheus.GaugeValue, float64(st.open[[2]string{string(t), string(state)}]),
					string(t), string(state))
			}
		}
		all := 0.0
		if st.countedAll {
			all = 1
		}
		ch <- prometheus.MustNewConstMetric(descCountedAll, prometheus.GaugeValue, all)
	}
}
