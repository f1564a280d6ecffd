package awslaunch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/iac-ci/iac-ci/consumers"
)

// STSAPI is what OrderRole asks of a client; *sts.Client has it.
type STSAPI interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// OrderRole hands orders the credentials of the order role (consumers.OrderCredentials): the
// worker assumes it with its own credentials, which the order never sees. One session serves
// the orders of a process while it lives long enough for each; a new one is assumed when the
// next order could outlive it, so an order costs no STS call of its own.
type OrderRole struct {
	Client  STSAPI
	RoleARN string
	// SessionName names the sessions in CloudTrail (default "iac-ci-order").
	SessionName string
	// MaxSession is the role's maximum session duration (default an hour, AWS's default).
	MaxSession time.Duration
	Now        func() time.Time

	mu      sync.Mutex
	env     []string
	expires time.Time
}

var _ consumers.OrderCredentials = (*OrderRole)(nil)

// sessionMargin is how much longer than an order a session must live: the result and log are
// delivered after the commands, and clocks differ.
const sessionMargin = 2 * time.Minute

// Env returns the role's credentials, valid for at least validFor.
func (r *OrderRole) Env(ctx context.Context, validFor time.Duration) ([]string, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	maxSession := r.MaxSession
	if maxSession <= 0 {
		maxSession = time.Hour
	}
	// An order longer than the role's longest session gets the longest: its AWS access ends
	// before it does (raise the role's max_session_duration, up to 12 hours).
	need := min(validFor+sessionMargin, maxSession)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.env != nil && r.expires.Sub(now()) >= need {
		return r.env, nil
	}
	name := r.SessionName
	if name == "" {
		name = "iac-ci-order"
	}
	// The longest session the role allows, at least 15 minutes (STS's least): a warm worker
	// then serves many orders with one.
	seconds := int32(max(maxSession, 15*time.Minute) / time.Second)
	out, err := r.Client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(r.RoleARN),
		RoleSessionName: aws.String(name), DurationSeconds: aws.Int32(seconds)})
	if err != nil {
		return nil, fmt.Errorf("assume the order role %s: %w", r.RoleARN, err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil || c.Expiration == nil {
		return nil, errors.New("assume the order role " + r.RoleARN + ": STS answered without credentials")
	}
	r.env = []string{
		"AWS_ACCESS_KEY_ID=" + aws.ToString(c.AccessKeyId),
		"AWS_SECRET_ACCESS_KEY=" + aws.ToString(c.SecretAccessKey),
		"AWS_SESSION_TOKEN=" + aws.ToString(c.SessionToken),
	}
	r.expires = *c.Expiration
	return r.env, nil
}
