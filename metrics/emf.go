package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Namespace is the CloudWatch namespace of the EMF lines.
const Namespace = "iac-ci"

// stateFamilies are the figures read, not counted (stateCollector's).
var stateFamilies = map[string]bool{
	"iac_ci_queue_messages": true, "iac_ci_queue_messages_in_flight": true, "iac_ci_queue_messages_delayed": true,
	"iac_ci_queue_oldest_message_age_seconds": true, "iac_ci_dead_letters": true, "iac_ci_orders": true,
	"iac_ci_orders_counted_all": true,
}

// WriteEMF writes the figures as CloudWatch Embedded Metric Format lines (namespace iac-ci, one
// JSON object a line, each series' labels as its dimensions), for a Lambda function whose output
// CloudWatch Logs reads. Counters and histograms are written as what they gained since the
// last call (a histogram as <name>_count and <name>_sum), and not at all when they gained
// nothing, since CloudWatch sums what it is sent; gauges as they are. With states it reads the
// queues and open orders first and writes them too: the sweeper's function does, once a pass,
// so that no other function pays a call per queue.
func (m *Metrics) WriteEMF(ctx context.Context, w io.Writer, states bool) error {
	if states {
		m.mu.Lock()
		m.read = m.read.Add(-m.opts.CacheFor) // always read afresh
		m.mu.Unlock()
		m.Refresh(ctx)
	}
	families, err := m.reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	now := m.opts.Now().UnixMilli()
	m.emfMu.Lock()
	defer m.emfMu.Unlock()
	if m.emfLast == nil {
		m.emfLast = map[string]float64{}
	}
	var out strings.Builder
	for _, f := range families {
		name := f.GetName()
		if stateFamilies[name] && !states {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			var dims []string
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
				dims = append(dims, l.GetName())
			}
			slices.Sort(dims)
			key := seriesKey(name, s)
			var values []emfValue
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				if d := m.gained(key, s.GetCounter().GetValue()); d > 0 {
					values = append(values, emfValue{name, unitOf(name, "Count"), d})
				}
			case dto.MetricType_HISTOGRAM:
				h := s.GetHistogram()
				if d := m.gained(key+"#count", float64(h.GetSampleCount())); d > 0 {
					values = append(values, emfValue{name + "_count", "Count", d},
						emfValue{name + "_sum", unitOf(name, "None"), m.gained(key+"#sum", h.GetSampleSum())})
				}
			case dto.MetricType_GAUGE:
				values = append(values, emfValue{name, unitOf(name, "Count"), s.GetGauge().GetValue()})
			}
			for _, v := range values {
				line, err := emfLine(now, dims, labels, v)
				if err != nil {
					return err
				}
				out.Write(line)
				out.WriteByte('\n')
			}
		}
	}
	_, err = io.WriteString(w, out.String())
	return err
}

type emfValue struct {
	name, unit string
	value      float64
}

// gained is what a cumulative figure gained since the last EMF write (all of it the first time).
func (m *Metrics) gained(key string, v float64) float64 {
	d := v - m.emfLast[key]
	m.emfLast[key] = v
	return math.Max(d, 0)
}

func seriesKey(name string, s *dto.Metric) string {
	var b strings.Builder
	b.WriteString(name)
	for _, l := range s.GetLabel() {
		b.WriteString("\x00" + l.GetName() + "=" + l.GetValue())
	}
	return b.String()
}

func unitOf(name, otherwise string) string {
	if strings.HasSuffix(name, "_seconds") {
		return "Seconds"
	}
	return otherwise
}

func emfLine(ts int64, dims []string, labels map[string]string, v emfValue) ([]byte, error) {
	if dims == nil {
		dims = []string{}
	}
	doc := map[string]any{
		"_aws": map[string]any{
			"Timestamp": ts,
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  Namespace,
				"Dimensions": [][]string{dims},
				"Metrics":    []any{map[string]string{"Name": v.name, "Unit": v.unit}},
			}},
		},
		v.name: v.value,
	}
	for k, val := range labels {
		doc[k] = val
	}
	return json.Marshal(doc)
}
