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
	return After(h, func(ctx context.Context) {
		// A figure lost is no reason to fail the invocation (and have its work retried).
		if err := m.WriteEMF(ctx, w, states); err != nil {
			log.WarnContext(ctx, "write metrics", "err", err)
		}
	})
}
