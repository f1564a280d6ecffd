package assembly

import (
	"context"
	"strings"
	"time"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/sealing"
)

// The Lambda functions, by the name IAC_CI_FUNCTION gives them. Those that consume queues serve
// the routes whose Function is their name.
const (
	FunctionWebhook      = "webhook"      // API Gateway: POST /webhook, POST /ssm and the status routes
	FunctionIntake       = "intake"       // the intake queue
	FunctionWorker       = "worker"       // orders-lambda: runs lambda orders
	FunctionLauncher     = "launcher"     // orders-codebuild and orders-ssm: starts builds and commands
	FunctionOrchestrator = "orchestrator" // the results queue
	FunctionDeadLetters  = "deadletters"  // every dead-letter queue that has a consumer
	FunctionSweeper      = "sweeper"      // EventBridge Scheduler, every minute
)

// Functions lists every function, in the order the documentation gives them.
var Functions = []string{FunctionWebhook, FunctionIntake, FunctionWorker, FunctionLauncher,
	FunctionOrchestrator, FunctionDeadLetters, FunctionSweeper}

// Route is one queue's consumer: which handler takes its messages, and how a host consumes it.
type Route struct {
	Queue   string
	Handler consumers.Handler
	// Function is the Lambda function whose event source mapping hands it this queue.
	Function string
	// How a long-running host (Serve) consumes the queue: Loops loops, each receiving up to
	// Batch messages and handling Handlers of them at once, keeping each hidden for KeepHidden
	// while its handler runs (see consumers.Loop). In Lambda the event source mapping owns the
	// message: the queue's visibility timeout outlasts the function, so nothing is extended.
	Loops, Batch, Handlers int
	KeepHidden             time.Duration
}

// RoutesOf returns the routes a Lambda function serves.
func (s *System) RoutesOf(function string) []Route {
	var out []Route
	for _, r := range s.Routes {
		if r.Function == function {
			out = append(out, r)
		}
	}
	return out
}

// routes is the route table: every queue of queues.Topology that has a consumer, and its
// handler. It is the one place that says which code handles the messages of a queue.
//
//	queue              handler                                   function
//	intake             producers.Intake: package, seal, insert   intake
//	intake-dlq         producers.IntakeDeadLetters: end the run  deadletters
//	orders-<target>    consumers.Worker: run the order here,     worker (lambda)
//	                   or consumers.Launcher where the target
//	                   has a Starter (CodeBuild, SSM)            launcher (codebuild, ssm)
//	orders-<target>-dlq consumers.DeadLetters: fail the order    deadletters
//	results            consumers.Orchestrator: record, wake      orchestrator
//	results-dlq        consumers.ResultDeadLetters: keep it; the sweeper  deadletters
//	                   times the order out at its deadline unless redriven
//
// Every dead-letter consumer keeps what died in the dead-letter book (package deadletters), and
// every other handler's failures are noted there, so a dead letter is kept with the last error
// that killed it.
func (s *System) routes() []Route {
	p := s.Ports
	var table []Route
	add := func(r Route) {
		r.Loops, r.Batch, r.Handlers = max(r.Loops, 1), max(r.Batch, 1), max(r.Handlers, 1)
		if !strings.HasSuffix(r.Queue, queues.DeadLetterSuffix) {
			r.Handler = s.noteFailures(r.Queue, r.Handler)
		}
		table = append(table, r)
	}
	// Intake of a large job can outlast the queue's visibility timeout: its message is kept
	// hidden. Two loops, so that one slow job does not hold up the next.
	add(Route{Queue: queues.Intake, Handler: s.Intake.Handle, Function: FunctionIntake,
		Loops: 2, Batch: 1, KeepHidden: p.visibility(queues.Intake)})
	add(Route{Queue: queues.Results, Handler: s.Orchestrator.Handle, Function: FunctionOrchestrator,
		Loops: 2, Batch: queues.MaxBatch})
	opener := sealing.NewOpener(openerKeys)
	for _, spec := range queues.Topology() {
		target, ok := ordersTarget(spec.Name)
		if !ok {
			continue
		}
		if starter := p.Starters[target]; starter != nil {
			// A launch is quick: one loop keeps up. The worker at the target delivers the
			// result.
			l := &consumers.Launcher{Engine: s.Engine, Starter: starter, RunKeyParameter: p.RunKeyParameter,
				DefaultDocument: p.SSMDocument}
			add(Route{Queue: spec.Name, Handler: l.Handle, Function: FunctionLauncher, Batch: queues.MaxBatch})
		} else {
			// Each order's message is kept hidden while it runs, so only a dead worker's comes
			// back. Where results go to the queue (on AWS), one receive feeds every idle worker,
			// as a Lambda event source mapping hands the function batches: a receive is a billed
			// request. Embedded, where a receive is a row read in this process, a loop per worker
			// receives its next order itself: handing each message from one receiving loop to a
			// handler cost about 0.1 ms a hop of the chain benchmark (interleaved rounds).
			r := Route{Queue: spec.Name, Handler: s.worker(opener).Handle, Function: FunctionWorker,
				Batch: queues.MaxBatch, Handlers: s.Opts.Workers, KeepHidden: p.visibility(spec.Name)}
			if s.Opts.ResultsInProcess {
				r.Batch, r.Handlers, r.Loops = 1, 1, s.Opts.Workers
			}
			add(r)
		}
		d := &consumers.DeadLetters{Engine: s.Engine, MaxReceives: spec.MaxReceives, Queue: spec.Name,
			DeadLetterQueue: spec.DeadLetter, Book: s.DeadLetters}
		add(Route{Queue: spec.DeadLetter, Handler: d.Handle, Function: FunctionDeadLetters, Batch: queues.MaxBatch})
	}
	add(Route{Queue: queues.Intake + queues.DeadLetterSuffix, Function: FunctionDeadLetters, Batch: queues.MaxBatch,
		Handler: (&producers.IntakeDeadLetters{Intake: s.Intake, MaxReceives: queues.MaxReceivesDefault, Book: s.DeadLetters}).Handle})
	add(Route{Queue: queues.Results + queues.DeadLetterSuffix, Function: FunctionDeadLetters, Batch: queues.MaxBatch,
		Handler: (&consumers.ResultDeadLetters{MaxReceives: queues.MaxReceivesDefault, Queue: queues.Results,
			DeadLetterQueue: queues.Results + queues.DeadLetterSuffix, Book: s.DeadLetters}).Handle})
	return table
}

// noteFailures notes in the dead-letter book each failure of h on queue, so that a message that
// ends in a dead-letter queue is kept with the last error that killed it. A failure because the
// host is stopping is no failure of the message.
func (s *System) noteFailures(queue string, h consumers.Handler) consumers.Handler {
	return func(ctx context.Context, m queues.Message) error {
		err := h(ctx, m)
		if err != nil && ctx.Err() == nil {
			if nerr := s.DeadLetters.Failed(ctx, queue, m, err); nerr != nil {
				s.Engine.Logger().WarnContext(ctx, "note a failed message", "queue", queue, "err", nerr)
			}
		}
		return err
	}
}

// ordersTarget is the target whose orders queue name is.
func ordersTarget(name string) (domain.Target, bool) {
	for _, t := range domain.Targets {
		if name == queues.Orders(string(t)) {
			return t, true
		}
	}
	return "", false
}
