package lambdafn

import (
	"context"
	"io"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/iac-ci/iac-ci/metrics"
)

// WithMetrics writes m's figures to w as CloudWatch Embedded Metric Format lines after every
// invocation of h (see metrics.WriteEMF): a function's output is where CloudWatch reads them.
// With states, each invocation also reads and writes the queues' depths and the open orders;
// the sweeper's function is given that, once a pass.
func WithMetrics(h lambda.Handler, m *metrics.Metrics, w io.Writer, states bool, log *slog.Logger) lambda.Handler {
	return emfHandler{h: h, m: m, w: w, states: states, log: log}
}

type emfHandler struct {
	h      lambda.Handler
	m      *metrics.Metrics
	w      io.Writer
	states bool
	log    *slog.Logger
}

func (e emfHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := e.h.Invoke(ctx, payload)
	// A figure lost is no reason to fail the invocation (and have its work retried).
	if werr := e.m.WriteEMF(ctx, e.w, e.states); werr != nil {
		e.log.WarnContext(ctx, "write metrics", "err", werr)
	}
	return out, err
}
