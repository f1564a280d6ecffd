package dynamostore

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/iac-ci/iac-ci/domain"
)

// Attribute names. Records are stored attribute by attribute (not as one blob) so that a
// conditional update can test and set single fields. Times are unix milliseconds (N), absent
// when zero; empty strings are absent too, because an index key may not be empty.
const (
	attrRunID       = "run_id"
	attrSK          = "sk"
	attrOrderNum    = "order_num"
	attrTraceID     = "trace_id"
	attrOrderName   = "order_name"
	attrQueueID     = "queue_id"
	attrTarget      = "execution_target"
	attrMustSucceed = "must_succeed"
	attrTimeout     = "timeout"
	attrDeps        = "deps"
	attrDependents  = "dependents"
	attrStatus      = "status"
	attrAttempt     = "attempt"
	attrDueShard    = "due_shard" // with due_at, the key of the due index; only on non-terminal orders
	attrDueAt       = "due_at"
	attrQueuedAt    = "queued_at"
	attrStartedAt   = "started_at"
	attrFinishedAt  = "finished_at"
	attrExitCode    = "exit_code"
	attrReason      = "reason"
	attrLogKey      = "log_key"
	attrLogTail     = "log_tail"

	attrFlowID        = "flow_id"
	attrUsername      = "username"
	attrGitRepo       = "git_repo"
	attrPRNumber      = "pr_number"
	attrIssueNumber   = "issue_number"
	attrCommitHash    = "commit_hash"
	attrCommentTag    = "pr_comment_search_tag"
	attrSource        = "source"
	attrOrderCount    = "order_count"
	attrOpen          = "open"
	attrFailed        = "failed"
	attrTimedOut      = "timed_out"
	attrCreatedAt     = "created_at"
	attrDeadline      = "deadline"
	attrReported      = "reported"
	attrPresignExpiry = "presign_expiry"
	attrDoneEndpoint  = "done_endpt"
	attrActiveShard   = "active_shard" // with created_at, the key of the active index; only until Reported
	attrRunsShard     = "runs_shard"   // with created_at, the key of the runs index; on every run item

	attrEpoch     = "epoch"
	attrEventType = "event_type"
	attrDetails   = "details"
	attrTime      = "time"
	attrExpiresAt = "expires_at" // the events table's TTL attribute, epoch seconds
)

// Sort keys and index partition values.
const (
	runSK       = "run"
	orderPrefix = "order#"
	activeShard = "active"
	runsShard   = "runs"
	dueShardFmt = "due#%d"
)

func orderSK(num int) string { return orderPrefix + domain.OrderNumString(num) }

// eventSK keys an event within its trace. The epoch is padded so that one order's events sort
// by time under the same name; ListEvents still sorts in full, since the port orders by epoch
// first.
func eventSK(e domain.Event) string {
	return fmt.Sprintf("%s:%020d:%s", e.OrderName, e.Epoch, e.Type)
}

// dueShard spreads the due index over shards so that a burst of moves in one run does not all
// write one index partition. It depends only on the order's key, so every write of an order
// lands in the same shard.
func dueShard(runID string, num, shards int) string {
	h := fnv.New32a()
	h.Write([]byte(runID))
	return fmt.Sprintf(dueShardFmt, (h.Sum32()+uint32(num))%uint32(shards))
}

func key(runID, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrRunID: str(runID), attrSK: str(sk)}
}

func str(v string) types.AttributeValue {
	return &types.AttributeValueMemberS{Value: v}
}

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func boolean(v bool) types.AttributeValue {
	return &types.AttributeValueMemberBOOL{Value: v}
}

// item builds an item, leaving out empty strings and zero times.
type item map[string]types.AttributeValue

func (it item) s(name, v string) {
	if v != "" {
		it[name] = str(v)
	}
}
func (it item) n(name string, v int64) { it[name] = num(v) }
func (it item) b(name string, v bool)  { it[name] = boolean(v) }
func (it item) t(name string, v time.Time) {
	if !v.IsZero() {
		it[name] = num(v.UnixMilli())
	}
}
func (it item) ints(name string, v []int) {
	if len(v) == 0 {
		return
	}
	l := make([]types.AttributeValue, len(v))
	for i, x := range v {
		l[i] = num(int64(x))
	}
	it[name] = &types.AttributeValueMemberL{Value: l}
}

func orderItem(o domain.OrderRecord, shards int) item {
	it := item{}
	it.s(attrRunID, o.RunID)
	it.s(attrSK, orderSK(o.OrderNum))
	it.n(attrOrderNum, int64(o.OrderNum))
	it.s(attrTraceID, o.TraceID)
	it.s(attrOrderName, o.OrderName)
	it.s(attrQueueID, o.QueueID)
	it.s(attrTarget, string(o.Target))
	it.b(attrMustSucceed, o.MustSucceed)
	it.n(attrTimeout, int64(o.Timeout))
	it.n(attrPresignExpiry, int64(o.PresignExpiry))
	it.ints(attrDeps, o.Deps)
	it.ints(attrDependents, o.Dependents)
	it.s(attrStatus, string(o.Status))
	it.n(attrAttempt, int64(o.Attempt))
	if !o.Status.Terminal() && !o.DueAt.IsZero() {
		it.t(attrDueAt, o.DueAt)
		it.s(attrDueShard, dueShard(o.RunID, o.OrderNum, shards))
	}
	it.t(attrQueuedAt, o.QueuedAt)
	it.t(attrStartedAt, o.StartedAt)
	it.t(attrFinishedAt, o.FinishedAt)
	if o.ExitCode != nil {
		it.n(attrExitCode, int64(*o.ExitCode))
	}
	it.s(attrReason, o.Reason)
	it.s(attrLogKey, o.LogKey)
	it.s(attrLogTail, o.LogTail)
	return it
}

func runItem(r domain.Run) item {
	it := item{}
	it.s(attrRunID, r.RunID)
	it.s(attrSK, runSK)
	it.s(attrTraceID, r.TraceID)
	it.s(attrFlowID, r.FlowID)
	it.s(attrUsername, r.Username)
	it.s(attrGitRepo, r.GitRepo)
	it.n(attrPRNumber, int64(r.PRNumber))
	it.n(attrIssueNumber, int64(r.IssueNumber))
	it.s(attrCommitHash, r.CommitHash)
	it.s(attrCommentTag, r.CommentTag)
	it.s(attrSource, r.Source)
	it.s(attrStatus, string(r.Status))
	it.n(attrOrderCount, int64(r.OrderCount))
	it.n(attrOpen, int64(r.Open))
	it.n(attrFailed, int64(r.Failed))
	it.n(attrTimedOut, int64(r.TimedOut))
	it.n(attrCreatedAt, r.CreatedAt.UnixMilli()) // always: it sorts the active index
	it.t(attrDeadline, r.Deadline)
	it.t(attrFinishedAt, r.FinishedAt)
	it.b(attrReported, r.Reported)
	if !r.Reported {
		it.s(attrActiveShard, activeShard)
	}
	it.s(attrRunsShard, runsShard)
	it.n(attrPresignExpiry, int64(r.PresignExpiry))
	it.s(attrDoneEndpoint, r.DoneEndpoint)
	return it
}

func eventItem(e domain.Event, retention time.Duration) item {
	it := item{}
	it.s(attrTraceID, e.TraceID)
	it.s(attrSK, eventSK(e))
	it.s(attrRunID, e.RunID)
	it.s(attrOrderName, e.OrderName) // absent for run-level events: they stay out of the order index
	it.n(attrOrderNum, int64(e.OrderNum))
	it.n(attrEpoch, e.Epoch)
	it.s(attrEventType, e.Type)
	it.s(attrStatus, e.Status)
	it.s(attrDetails, e.Details)
	it.t(attrTime, e.Time)
	at := e.Time
	if at.IsZero() {
		at = time.Unix(0, e.Epoch)
	}
	it.n(attrExpiresAt, at.Add(retention).Unix())
	return it
}

// reader decodes an item, keeping the first type error it meets.
type reader struct {
	it  map[string]types.AttributeValue
	err error
}

func (r *reader) fail(name, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("attribute %s: want %s, got %T", name, want, r.it[name])
	}
}

func (r *reader) s(name string) string {
	v, ok := r.it[name]
	if !ok {
		return ""
	}
	s, ok := v.(*types.AttributeValueMemberS)
	if !ok {
		r.fail(name, "S")
		return ""
	}
	return s.Value
}

func (r *reader) has(name string) bool { _, ok := r.it[name]; return ok }

func (r *reader) n(name string) int64 {
	v, ok := r.it[name]
	if !ok {
		return 0
	}
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		r.fail(name, "N")
		return 0
	}
	x, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("attribute %s: %w", name, err)
	}
	return x
}

func (r *reader) i(name string) int { return int(r.n(name)) }

func (r *reader) b(name string) bool {
	v, ok := r.it[name]
	if !ok {
		return false
	}
	b, ok := v.(*types.AttributeValueMemberBOOL)
	if !ok {
		r.fail(name, "BOOL")
		return false
	}
	return b.Value
}

func (r *reader) t(name string) time.Time {
	if !r.has(name) {
		return time.Time{}
	}
	return time.UnixMilli(r.n(name)).UTC()
}

func (r *reader) ints(name string) []int {
	v, ok := r.it[name]
	if !ok {
		return nil
	}
	l, ok := v.(*types.AttributeValueMemberL)
	if !ok {
		r.fail(name, "L")
		return nil
	}
	out := make([]int, len(l.Value))
	for i, x := range l.Value {
		n, ok := x.(*types.AttributeValueMemberN)
		if !ok {
			r.fail(name, "L of N")
			return nil
		}
		v, err := strconv.Atoi(n.Value)
		if err != nil && r.err == nil {
			r.err = fmt.Errorf("attribute %s: %w", name, err)
		}
		out[i] = v
	}
	return out
}

func decodeOrder(it map[string]types.AttributeValue) (domain.OrderRecord, error) {
	r := reader{it: it}
	o := domain.OrderRecord{
		RunID:         r.s(attrRunID),
		OrderNum:      r.i(attrOrderNum),
		TraceID:       r.s(attrTraceID),
		OrderName:     r.s(attrOrderName),
		QueueID:       r.s(attrQueueID),
		Target:        domain.Target(r.s(attrTarget)),
		MustSucceed:   r.b(attrMustSucceed),
		Timeout:       r.i(attrTimeout),
		PresignExpiry: r.i(attrPresignExpiry),
		Deps:          r.ints(attrDeps),
		Dependents:    r.ints(attrDependents),
		Status:        domain.OrderStatus(r.s(attrStatus)),
		Attempt:       r.i(attrAttempt),
		DueAt:         r.t(attrDueAt),
		QueuedAt:      r.t(attrQueuedAt),
		StartedAt:     r.t(attrStartedAt),
		FinishedAt:    r.t(attrFinishedAt),
		Reason:        r.s(attrReason),
		LogKey:        r.s(attrLogKey),
		LogTail:       r.s(attrLogTail),
	}
	if r.has(attrExitCode) {
		code := r.i(attrExitCode)
		o.ExitCode = &code
	}
	if r.err != nil {
		return domain.OrderRecord{}, fmt.Errorf("decode order %s/%d: %w", o.RunID, o.OrderNum, r.err)
	}
	return o, nil
}

func decodeRun(it map[string]types.AttributeValue) (domain.Run, error) {
	r := reader{it: it}
	run := domain.Run{
		RunID:         r.s(attrRunID),
		TraceID:       r.s(attrTraceID),
		FlowID:        r.s(attrFlowID),
		Username:      r.s(attrUsername),
		GitRepo:       r.s(attrGitRepo),
		PRNumber:      r.i(attrPRNumber),
		IssueNumber:   r.i(attrIssueNumber),
		CommitHash:    r.s(attrCommitHash),
		CommentTag:    r.s(attrCommentTag),
		Source:        r.s(attrSource),
		Status:        domain.RunStatus(r.s(attrStatus)),
		OrderCount:    r.i(attrOrderCount),
		Open:          r.i(attrOpen),
		Failed:        r.i(attrFailed),
		TimedOut:      r.i(attrTimedOut),
		CreatedAt:     r.t(attrCreatedAt),
		Deadline:      r.t(attrDeadline),
		FinishedAt:    r.t(attrFinishedAt),
		Reported:      r.b(attrReported),
		PresignExpiry: r.i(attrPresignExpiry),
		DoneEndpoint:  r.s(attrDoneEndpoint),
	}
	if r.err != nil {
		return domain.Run{}, fmt.Errorf("decode run %s: %w", run.RunID, r.err)
	}
	return run, nil
}

func decodeEvent(it map[string]types.AttributeValue) (domain.Event, error) {
	r := reader{it: it}
	e := domain.Event{
		TraceID:   r.s(attrTraceID),
		RunID:     r.s(attrRunID),
		OrderName: r.s(attrOrderName),
		OrderNum:  r.i(attrOrderNum),
		Epoch:     r.n(attrEpoch),
		Type:      r.s(attrEventType),
		Status:    r.s(attrStatus),
		Details:   r.s(attrDetails),
		Time:      r.t(attrTime),
	}
	if r.err != nil {
		return domain.Event{}, fmt.Errorf("decode event %s: %w", e.TraceID, r.err)
	}
	return e, nil
}
