package lambdafn

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/queues"
)

// Route picks the handler of a record by its queue's name (without the backend's prefix); false
// means the function serves no such queue.
type Route func(queue string) (consumers.Handler, bool)

// Batch returns an SQS function: each record of the batch, one after another, goes to the
// handler its queue routes to. The response lists the records to retry (their message ids):
// those whose handler failed, those from a queue the function does not serve, and those not
// reached before ctx ended (the function's deadline). Every other record is done, and the event
// source mapping deletes it. The function itself never fails, so one bad record cannot make SQS
// retry the whole batch.
//
// The event source mapping must have ReportBatchItemFailures on; without it SQS would take the
// response as success and delete the records listed in it.
func Batch(log *slog.Logger, prefix string, route Route) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
		retry := func(r events.SQSMessage) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
		for _, r := range ev.Records {
			if ctx.Err() != nil {
				retry(r)
				continue
			}
			queue := QueueName(r.EventSourceARN, prefix)
			h, ok := route(queue)
			if !ok {
				log.ErrorContext(ctx, "record from a queue this function does not serve: check the event source mappings",
					"queue", queue, "message_id", r.MessageId)
				retry(r)
				continue
			}
			m := Message(r)
			if err := h(ctx, m); err != nil {
				log.WarnContext(ctx, "message left for retry", "queue", queue, "message_id", r.MessageId,
					"receive_count", m.ReceiveCount, "err", err)
				retry(r)
			}
		}
		return resp, nil
	}
}

// Message is the queues.Message an SQS record carries. A record without a usable
// ApproximateReceiveCount counts as a first receive.
func Message(r events.SQSMessage) queues.Message {
	m := queues.Message{ID: r.MessageId, Receipt: r.ReceiptHandle, Body: []byte(r.Body), ReceiveCount: 1}
	if n, err := strconv.Atoi(r.Attributes["ApproximateReceiveCount"]); err == nil && n > 0 {
		m.ReceiveCount = n
	}
	if ms, err := strconv.ParseInt(r.Attributes["SentTimestamp"], 10, 64); err == nil {
		m.SentAt = time.UnixMilli(ms).UTC()
	}
	return m
}

// QueueName is the engine's name of the queue an SQS ARN names: its last field, less prefix.
func QueueName(arn, prefix string) string {
	name := arn[strings.LastIndexByte(arn, ':')+1:]
	return strings.TrimPrefix(name, prefix)
}
