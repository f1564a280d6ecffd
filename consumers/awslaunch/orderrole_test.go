package awslaunch_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/iac-ci/iac-ci/consumers/awslaunch"
	"github.com/iac-ci/iac-ci/internal/awscalls"
	"github.com/iac-ci/iac-ci/internal/awstest"
)

// The order role is assumed once for the orders its session outlives, and again for one it
// would not; its credentials come as the three variables the SDKs read.
func TestOrderRoleAssumesOnceWhileTheSessionLasts(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	calls := &awscalls.Counter{}
	calls.Attach(&cfg)
	now := time.Now()
	r := &awslaunch.OrderRole{Client: sts.NewFromConfig(cfg), RoleARN: "arn:aws:iam::123456789012:role/orders",
		MaxSession: time.Hour, Now: func() time.Time { return now }}
	first, err := r.Env(t.Context(), 15*time.Minute)
	if err != nil {
		t.Fatalf("Env: %v", err)
	}
	for i, prefix := range []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN="} {
		if len(first) != 3 || !strings.HasPrefix(first[i], prefix) || len(first[i]) == len(prefix) {
			t.Fatalf("Env: got %q, want the three credential variables", first)
		}
	}
	for range 3 {
		if again, err := r.Env(t.Context(), 15*time.Minute); err != nil || again[0] != first[0] {
			t.Fatalf("Env within the session: %v, a new session %v", err, again[0] != first[0])
		}
	}
	if n := calls.Snapshot()["sts.AssumeRole"]; n != 1 {
		t.Fatalf("four orders in one session made %d AssumeRole calls, want 1", n)
	}
	now = now.Add(50 * time.Minute) // ten minutes left: too little for a 15-minute order
	if _, err := r.Env(t.Context(), 15*time.Minute); err != nil {
		t.Fatalf("Env near the session's end: %v", err)
	}
	if n := calls.Snapshot()["sts.AssumeRole"]; n != 2 {
		t.Fatalf("an order that would outlive the session made %d AssumeRole calls in all, want 2", n)
	}
}
