// Package sqsqueue is the AWS adapter of the queue port, on Amazon SQS standard queues. The SQS
// queue behind a spec is named prefix + spec name ("iac-ci-" + "orders-lambda"); Create makes
// them, dead-letter queues first, with the spec's visibility timeout and a redrive policy, and New
// serves them.
//
// SQS does the work: visibility timeouts, receive counts, long polls and dead-lettering are its
// own. The adapter rounds durations up to whole seconds, SQS's unit (a positive wait shorter than a
// second becomes one second, never zero, which would turn a long poll into a short one). A Receive
// with Wait zero leaves WaitTimeSeconds out of the request, as the SDK cannot send a zero, so it
// polls for the queue's ReceiveMessageWaitTimeSeconds, which Create sets to zero.
//
// Backend errors become the port's sentinels in one place, sentinelFor, by SQS error code.
package sqsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/iac-ci/iac-ci/queues"
)

// sentinels maps SQS error codes onto the port's errors. SQS answers in JSON but, for callers of
// its older query protocol, reports the query protocol's code where one exists
// (AWS.SimpleQueueService.NonExistentQueue); the SDK then returns that code, so both spellings are
// listed. Codes are from the SQS API reference and the SDK's error types.
var sentinels = map[string]error{
	"QueueDoesNotExist":                         queues.ErrNotFound,
	"AWS.SimpleQueueService.NonExistentQueue":   queues.ErrNotFound,
	"ReceiptHandleIsInvalid":                    queues.ErrInvalidReceipt,
	"MessageNotInflight":                        queues.ErrInvalidReceipt,
	"AWS.SimpleQueueService.MessageNotInflight": queues.ErrInvalidReceipt,
}

// sentinelFor returns the port error an SQS error code stands for, or nil.
func sentinelFor(code string) error { return sentinels[code] }

// failure turns an SDK error into what the port promises: ctx's own error when ctx has ended
// (the SDK wraps it in an operation error), a sentinel when the code has one, else the error
// wrapped with what was being done.
func failure(ctx context.Context, doing string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if s := sentinelFor(apiErr.ErrorCode()); s != nil {
			return fmt.Errorf("%s: %s: %w", doing, apiErr.ErrorCode(), s)
		}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// entryFailure does for a failed entry of a batch call what failure does for a failed call.
func entryFailure(doing string, e types.BatchResultErrorEntry) error {
	code, msg := aws.ToString(e.Code), aws.ToString(e.Message)
	if s := sentinelFor(code); s != nil {
		return fmt.Errorf("%s: entry %s: %s: %w", doing, aws.ToString(e.Id), code, s)
	}
	return fmt.Errorf("%s: entry %s: %s: %s", doing, aws.ToString(e.Id), code, msg)
}

// resolveTimeout bounds the GetQueueUrl call that Broker.Queue makes without a caller's context.
const resolveTimeout = 30 * time.Second

// Broker serves the SQS queues named prefix + name. Queue URLs are looked up once and cached.
type Broker struct {
	client *sqs.Client
	prefix string
	opts   Options

	mu   sync.Mutex
	urls map[string]string
}

// Options tune how a Broker's queues receive.
type Options struct {
	// ShortPolls turns a receive's long poll into short polls a growing pause apart (50 ms to
	// 1 s) until the wait ends: for emulators that serve one request at a time (moto_server),
	// where a long poll would hold the one request slot for its whole wait.
	ShortPolls bool
	// OnEmptyReceive, when set, is called for each ReceiveMessage call that returned no message
	// (an idle poll), so that the calls that did work can be told from those that waited.
	OnEmptyReceive func()
}

// New returns a Broker for the queues Create made with the same prefix.
func New(client *sqs.Client, prefix string) *Broker {
	return NewWithOptions(client, prefix, Options{})
}

// NewWithOptions is New with options.
func NewWithOptions(client *sqs.Client, prefix string, opts Options) *Broker {
	return &Broker{client: client, prefix: prefix, opts: opts, urls: map[string]string{}}
}

// Queue returns the named queue, or queues.ErrNotFound when SQS has no queue by that name.
//
// The port's Broker.Queue takes no context, yet the first call for a name asks SQS for the queue's
// URL; that call runs under context.TODO, bounded by resolveTimeout. Callers resolve their
// queues once at start-up, so the call is rare.
func (b *Broker) Queue(name string) (queues.Queue, error) {
	b.mu.Lock()
	url, ok := b.urls[name]
	b.mu.Unlock()
	if !ok {
		ctx, cancel := context.WithTimeout(context.TODO(), resolveTimeout)
		defer cancel()
		out, err := b.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(b.prefix + name)})
		if err != nil {
			return nil, failure(ctx, "queue "+name, err)
		}
		url = aws.ToString(out.QueueUrl)
		b.mu.Lock()
		b.urls[name] = url
		b.mu.Unlock()
	}
	return &queue{client: b.client, name: name, url: url, opts: b.opts}, nil
}

// Create creates the SQS queue of every spec, dead-letter queues before the queues that name
// them, and brings the visibility timeout and redrive policy of queues that already exist in line
// with the specs. Running it again changes nothing.
func Create(ctx context.Context, client *sqs.Client, prefix string, specs []queues.Spec) error {
	byName := make(map[string]queues.Spec, len(specs))
	for _, s := range specs {
		if err := checkSpec(s); err != nil {
			return fmt.Errorf("create queues: %w", err)
		}
		byName[s.Name] = s
	}
	arns := map[string]string{}
	pending := specs
	for len(pending) > 0 {
		var later []queues.Spec
		for _, s := range pending {
			if s.DeadLetter != "" && arns[s.DeadLetter] == "" {
				if _, ok := byName[s.DeadLetter]; !ok {
					return fmt.Errorf("create queues: %s: dead-letter queue %s is not among the specs", s.Name, s.DeadLetter)
				}
				later = append(later, s)
				continue
			}
			arn, err := createQueue(ctx, client, prefix+s.Name, s, arns[s.DeadLetter])
			if err != nil {
				return err
			}
			arns[s.Name] = arn
		}
		if len(later) == len(pending) {
			return fmt.Errorf("create queues: dead-letter queues form a cycle among %d specs", len(later))
		}
		pending = later
	}
	return nil
}

func checkSpec(s queues.Spec) error {
	switch {
	case s.Name == "":
		return errors.New("a spec has no name")
	case s.Visibility < 0 || s.Visibility > queues.MaxVisibility:
		return fmt.Errorf("%s: visibility %v is outside 0 to %v", s.Name, s.Visibility, queues.MaxVisibility)
	case s.DeadLetter == s.Name:
		return fmt.Errorf("%s is its own dead-letter queue", s.Name)
	case s.DeadLetter != "" && (s.MaxReceives < 1 || s.MaxReceives > 1000):
		// 1000 is SQS's largest maxReceiveCount.
		return fmt.Errorf("%s: MaxReceives %d is outside 1 to 1000", s.Name, s.MaxReceives)
	}
	return nil
}

// redrivePolicy is SQS's RedrivePolicy attribute.
type redrivePolicy struct {
	DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	MaxReceiveCount     int    `json:"maxReceiveCount"`
}

// createQueue creates or updates one queue and returns its ARN.
func createQueue(ctx context.Context, client *sqs.Client, awsName string, s queues.Spec, deadLetterARN string) (string, error) {
	attrs := map[string]string{
		string(types.QueueAttributeNameVisibilityTimeout):             strconv.Itoa(int(seconds(s.Visibility))),
		string(types.QueueAttributeNameReceiveMessageWaitTimeSeconds): "0",
	}
	if deadLetterARN != "" {
		policy, err := json.Marshal(redrivePolicy{DeadLetterTargetArn: deadLetterARN, MaxReceiveCount: s.MaxReceives})
		if err != nil {
			return "", fmt.Errorf("create queue %s: redrive policy: %w", awsName, err)
		}
		attrs[string(types.QueueAttributeNameRedrivePolicy)] = string(policy)
	}
	var url string
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(awsName), Attributes: attrs})
	var apiErr smithy.APIError
	switch {
	case err == nil:
		url = aws.ToString(out.QueueUrl)
	case errors.As(err, &apiErr) && (apiErr.ErrorCode() == "QueueNameExists" || apiErr.ErrorCode() == "QueueAlreadyExists"):
		// It exists with other attributes: update them, dropping a redrive policy the spec no
		// longer has.
		got, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(awsName)})
		if err != nil {
			return "", failure(ctx, "create queue "+awsName, err)
		}
		url = aws.ToString(got.QueueUrl)
		if deadLetterARN == "" {
			attrs[string(types.QueueAttributeNameRedrivePolicy)] = ""
		}
		if _, err := client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: attrs}); err != nil {
			return "", failure(ctx, "create queue "+awsName+": update attributes", err)
		}
	default:
		return "", failure(ctx, "create queue "+awsName, err)
	}
	got, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", failure(ctx, "create queue "+awsName+": read its ARN", err)
	}
	arn := got.Attributes[string(types.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", fmt.Errorf("create queue %s: SQS returned no QueueArn", awsName)
	}
	return arn, nil
}

// seconds rounds d up to whole seconds, SQS's unit.
func seconds(d time.Duration) int32 {
	return int32((d + time.Second - 1) / time.Second)
}

type queue struct {
	client *sqs.Client
	name   string
	url    string
	opts   Options
}

func (q *queue) Name() string { return q.name }

func (q *queue) Send(ctx context.Context, msgs ...queues.Outgoing) error {
	if len(msgs) > queues.MaxBatch {
		return fmt.Errorf("send to %s: %d messages, at most %d per call", q.name, len(msgs), queues.MaxBatch)
	}
	if len(msgs) == 0 {
		return nil
	}
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		if len(m.Body) > queues.MaxBodyBytes {
			return fmt.Errorf("send to %s: message %d is %d bytes, at most %d", q.name, i, len(m.Body), queues.MaxBodyBytes)
		}
		if m.Delay < 0 || m.Delay > queues.MaxDelay {
			return fmt.Errorf("send to %s: message %d: delay %v is outside 0 to %v", q.name, i, m.Delay, queues.MaxDelay)
		}
		entries[i] = types.SendMessageBatchRequestEntry{
			Id:           aws.String(strconv.Itoa(i)),
			MessageBody:  aws.String(string(m.Body)),
			DelaySeconds: seconds(m.Delay),
		}
	}
	out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	if err != nil {
		return failure(ctx, "send to "+q.name, err)
	}
	if len(out.Failed) > 0 {
		return entryFailure(fmt.Sprintf("send to %s: %d of %d messages failed", q.name, len(out.Failed), len(msgs)), out.Failed[0])
	}
	return nil
}

// Pauses between the short polls that stand for one long poll (Options.ShortPolls).
const (
	firstPollPause = 50 * time.Millisecond
	maxPollPause   = time.Second
)

func (q *queue) Receive(ctx context.Context, opts queues.ReceiveOptions) ([]queues.Message, error) {
	if !q.opts.ShortPolls || opts.Wait <= 0 || opts.Wait > queues.MaxWait {
		return q.receive(ctx, opts)
	}
	deadline := time.Now().Add(opts.Wait)
	opts.Wait = 0
	pause := firstPollPause
	for {
		msgs, err := q.receive(ctx, opts)
		if err != nil || len(msgs) > 0 || !time.Now().Before(deadline) {
			return msgs, err
		}
		t := time.NewTimer(min(pause, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, maxPollPause)
	}
}

func (q *queue) receive(ctx context.Context, opts queues.ReceiveOptions) ([]queues.Message, error) {
	limit := opts.Max
	if limit == 0 {
		limit = 1
	}
	switch {
	case limit < 0 || limit > queues.MaxBatch:
		return nil, fmt.Errorf("receive from %s: max %d is outside 1 to %d", q.name, opts.Max, queues.MaxBatch)
	case opts.Wait < 0 || opts.Wait > queues.MaxWait:
		return nil, fmt.Errorf("receive from %s: wait %v is outside 0 to %v", q.name, opts.Wait, queues.MaxWait)
	case opts.Visibility < 0 || opts.Visibility > queues.MaxVisibility:
		return nil, fmt.Errorf("receive from %s: visibility %v is outside 0 to %v", q.name, opts.Visibility, queues.MaxVisibility)
	}
	out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(q.url),
		MaxNumberOfMessages: int32(limit),
		WaitTimeSeconds:     seconds(opts.Wait),
		VisibilityTimeout:   seconds(opts.Visibility), // zero is left out: the queue's default
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
	})
	if err != nil {
		return nil, failure(ctx, "receive from "+q.name, err)
	}
	if len(out.Messages) == 0 && q.opts.OnEmptyReceive != nil {
		q.opts.OnEmptyReceive()
	}
	msgs := make([]queues.Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		count, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		if err != nil {
			return nil, fmt.Errorf("receive from %s: message %s: ApproximateReceiveCount: %w", q.name, aws.ToString(m.MessageId), err)
		}
		sentMs, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("receive from %s: message %s: SentTimestamp: %w", q.name, aws.ToString(m.MessageId), err)
		}
		msgs = append(msgs, queues.Message{
			ID:           aws.ToString(m.MessageId),
			Receipt:      aws.ToString(m.ReceiptHandle),
			Body:         []byte(aws.ToString(m.Body)),
			ReceiveCount: count,
			SentAt:       time.UnixMilli(sentMs),
		})
	}
	return msgs, nil
}

func (q *queue) Delete(ctx context.Context, receipts ...string) error {
	if len(receipts) > queues.MaxBatch {
		return fmt.Errorf("delete from %s: %d receipts, at most %d per call", q.name, len(receipts), queues.MaxBatch)
	}
	if len(receipts) == 0 {
		return nil
	}
	entries := make([]types.DeleteMessageBatchRequestEntry, len(receipts))
	for i, r := range receipts {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r)}
	}
	out, err := q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	if err != nil {
		return failure(ctx, "delete from "+q.name, err)
	}
	if len(out.Failed) > 0 {
		return entryFailure(fmt.Sprintf("delete from %s: %d of %d receipts failed", q.name, len(out.Failed), len(receipts)), out.Failed[0])
	}
	return nil
}

// Stats reads the queue's three approximate counts with one GetQueueAttributes. The age of the
// oldest message is CloudWatch's alone (ApproximateAgeOfOldestMessage): AgeKnown stays false.
func (q *queue) Stats(ctx context.Context) (queues.Stats, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible, types.QueueAttributeNameApproximateNumberOfMessagesDelayed},
	})
	if err != nil {
		return queues.Stats{}, failure(ctx, "stats of "+q.name, err)
	}
	count := func(name types.QueueAttributeName) (int, error) {
		v, ok := out.Attributes[string(name)]
		if !ok {
			return 0, fmt.Errorf("stats of %s: no %s in the answer", q.name, name)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("stats of %s: %s %q: %w", q.name, name, v, err)
		}
		return n, nil
	}
	var s queues.Stats
	if s.Visible, err = count(types.QueueAttributeNameApproximateNumberOfMessages); err != nil {
		return s, err
	}
	if s.InFlight, err = count(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible); err != nil {
		return s, err
	}
	if s.Delayed, err = count(types.QueueAttributeNameApproximateNumberOfMessagesDelayed); err != nil {
		return s, err
	}
	return s, nil
}

func (q *queue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	if d < 0 || d > queues.MaxVisibility {
		return fmt.Errorf("change visibility in %s: %v is outside 0 to %v", q.name, d, queues.MaxVisibility)
	}
	_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(q.url),
		ReceiptHandle:     aws.String(receipt),
		VisibilityTimeout: seconds(d),
	})
	if err != nil {
		return failure(ctx, "change visibility in "+q.name, err)
	}
	return nil
}
