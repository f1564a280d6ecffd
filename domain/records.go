package domain

import "time"

// Run is the stored record of one job's execution. Its counters let the engine decide how the
// run ended without reading every order: each order's move to a terminal status updates them in
// the same atomic write (see store.OrderChange).
type Run struct {
	RunID       string    `json:"run_id"`
	TraceID     string    `json:"trace_id"`
	FlowID      string    `json:"flow_id"`
	Username    string    `json:"username"`
	GitRepo     string    `json:"git_repo,omitempty"`
	PRNumber    int       `json:"pr_number,omitempty"`
	IssueNumber int       `json:"issue_number,omitempty"`
	CommitHash  string    `json:"commit_hash,omitempty"`
	CommentTag  string    `json:"pr_comment_search_tag,omitempty"`
	Source      string    `json:"source,omitempty"` // webhook, ssm, github, cli
	Status      RunStatus `json:"status"`
	OrderCount  int       `json:"order_count"`
	Open        int       `json:"open"`      // orders not yet terminal
	Failed      int       `json:"failed"`    // orders that must succeed and failed or were skipped
	TimedOut    int       `json:"timed_out"` // orders that must succeed and timed out
	CreatedAt   time.Time `json:"created_at"`
	Deadline    time.Time `json:"deadline"` // created + job_timeout
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	// Reported is set once the finalization side effects (done endpoint, final comment,
	// job_completed event, key deletion) have all been written; until then the sweeper retries them.
	Reported      bool   `json:"reported"`
	PresignExpiry int    `json:"presign_expiry"` // seconds
	DoneEndpoint  string `json:"done_endpt,omitempty"`
}

// OrderRecord is the stored state of one order of a run. It holds nothing secret: commands,
// environment and code live in the order's sealed bundle.
type OrderRecord struct {
	RunID       string `json:"run_id"`
	OrderNum    int    `json:"order_num"` // 1-based position in the job
	TraceID     string `json:"trace_id"`
	OrderName   string `json:"order_name"`
	QueueID     string `json:"queue_id"`
	Target      Target `json:"execution_target"`
	MustSucceed bool   `json:"must_succeed"`
	Timeout     int    `json:"timeout"` // seconds
	// PresignExpiry is the job's presign_expiry, in seconds: an attempt's URLs live this long, or
	// the order's timeout plus domain.PresignMargin when that is longer. Kept on the order so that
	// claiming it needs no read of the run.
	PresignExpiry int         `json:"presign_expiry,omitempty"`
	Deps          []int       `json:"deps,omitempty"`       // order numbers this order waits for
	Dependents    []int       `json:"dependents,omitempty"` // order numbers waiting for this one
	Status        OrderStatus `json:"status"`
	Attempt       int         `json:"attempt"` // claims so far; 0 until a worker claims it
	// DueAt is when the sweeper should next look at the order: for waiting and queued orders a
	// re-check time, for running ones the deadline. Zero once terminal.
	DueAt      time.Time `json:"due_at,omitzero"`
	QueuedAt   time.Time `json:"queued_at,omitzero"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	Reason     string    `json:"reason,omitempty"`   // why it failed, timed out or was skipped
	LogKey     string    `json:"log_key,omitempty"`  // blob key of the whole (masked) log
	LogTail    string    `json:"log_tail,omitempty"` // bounded, masked tail of the log
}

// Event is one entry of a run's history. Events of a trace sort by (Epoch, OrderName, Type).
type Event struct {
	TraceID   string    `json:"trace_id"`
	RunID     string    `json:"run_id"`
	OrderName string    `json:"order_name"` // empty for run-level events
	OrderNum  int       `json:"order_num,omitempty"`
	Epoch     int64     `json:"epoch"` // unix nanoseconds; with OrderName and Type it keys the event
	Type      string    `json:"event_type"`
	Status    string    `json:"status"`
	Details   string    `json:"details,omitempty"`
	Time      time.Time `json:"time"`
}

// Event types written by the engine.
const (
	EventRunAccepted = "run_accepted"
	EventRunStarted  = "run_started"
	EventOrderState  = "order_state" // Status holds the new order status
	// EventOrderLaunched: an attempt was started elsewhere (a CodeBuild build, an SSM command);
	// Details names it and where its own log is.
	EventOrderLaunched = "order_launched"
	EventJobCompleted  = "job_completed"
)

// Result is what a worker reports for one attempt of an order (result.json).
type Result struct {
	RunID      string      `json:"run_id"`
	OrderNum   int         `json:"order_num"`
	Attempt    int         `json:"attempt"`
	Status     OrderStatus `json:"status"` // succeeded, failed or timed_out
	ExitCode   int         `json:"exit_code"`
	StartedAt  time.Time   `json:"started_at"`
	FinishedAt time.Time   `json:"finished_at"`
	LogTail    string      `json:"log_tail"`
	LogKey     string      `json:"log_key"`
	Reason     string      `json:"reason,omitempty"`
}

// OrderMessage is the body of a message on an orders-* queue. It carries nothing secret: the
// worker reads the rest from the store and the order's bundle.
type OrderMessage struct {
	RunID    string `json:"run_id"`
	OrderNum int    `json:"order_num"`
	Attempt  int    `json:"attempt"` // the order's attempt when the message was sent
	TraceID  string `json:"trace_id"`
	// Timeout is the order's timeout in seconds, so that a claim can set the order's deadline
	// without reading the order first; 0 in a message that does not carry it.
	Timeout int `json:"timeout,omitempty"`
}

// IntakeMessage is the body of a message on the intake queue: the request itself is stored
// under RequestKey by the producer before the message is sent.
type IntakeMessage struct {
	RunID      string `json:"run_id"`
	TraceID    string `json:"trace_id"`
	RequestKey string `json:"request_key"`
}

// Request is what a producer stores for the intake consumer: the validated job and the
// identifiers it answered with.
type Request struct {
	RunID        string    `json:"run_id"`
	TraceID      string    `json:"trace_id"`
	FlowID       string    `json:"flow_id"`
	Source       string    `json:"source"`
	DoneEndpoint string    `json:"done_endpt"`
	ReceivedAt   time.Time `json:"received_at"`
	Job          Job       `json:"job"`
	// Reruns is the run this one runs again, when it does.
	Reruns string `json:"reruns,omitempty"`
}
