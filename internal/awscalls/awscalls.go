// Package awscalls counts AWS API calls by service and operation, so that a test or a benchmark
// can say how many calls a piece of work cost ("sqs.ReceiveMessage": 12).
//
// A call is counted once, when the client starts it, however many attempts the SDK's retryer then
// makes: the counter sits in the Initialize step of the middleware stack, which runs once per
// operation, before the retry loop of the Finalize step. A call that the client refuses before
// that point (missing required parameters) is not counted.
package awscalls

import (
	"context"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
)

// Counter counts calls. Its zero value is ready to use, and it is safe for concurrent use.
type Counter struct {
	mu     sync.Mutex
	counts map[string]int64
}

// Attach makes every client built from cfg afterwards count its calls here.
func (c *Counter) Attach(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, c.Middleware)
}

// Middleware adds the counter to one operation's stack. It fits aws.Config.APIOptions and the
// per-client or per-call APIOptions of any service's Options.
func (c *Counter) Middleware(stack *middleware.Stack) error {
	// After: the operation's own Initialize middlewares, parameter validation among them, run first.
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awscalls.Counter",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.count(key(ctx))
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// key names a call "service.Operation", the service ID lower-cased without spaces ("SQS" →
// "sqs", "Secrets Manager" → "secretsmanager").
func key(ctx context.Context) string {
	service := strings.ToLower(strings.ReplaceAll(awsmiddleware.GetServiceID(ctx), " ", ""))
	return service + "." + awsmiddleware.GetOperationName(ctx)
}

func (c *Counter) count(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int64{}
	}
	c.counts[k]++
}

// Snapshot returns the counts so far, keyed "service.Operation".
func (c *Counter) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.counts))
	for k, n := range c.counts {
		out[k] = n
	}
	return out
}

// Total returns the number of calls so far, all services and operations together.
func (c *Counter) Total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var total int64
	for _, n := range c.counts {
		total += n
	}
	return total
}

// Reset forgets every count.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = nil
}
