package assembly_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/awsbackend"
	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/consumers"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/embedded"
	"github.com/iac-ci/iac-ci/internal/awstest"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/store"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// errOutage is the store being unreachable, as DynamoDB throttling or a lost connection is.
var errOutage = errors.New("the store is unreachable")

// outageStore is a real store that refuses every move to a terminal state while down: an outage
// that strikes the orchestrator after the worker delivered its result.
type outageStore struct {
	store.Store
	down atomic.Bool
}

func (s *outageStore) UpdateOrder(ctx context.Context, c store.OrderChange) (store.Moved, error) {
	if s.down.Load() && c.To.Terminal() {
		return store.Moved{}, errOutage
	}
	return s.Store.UpdateOrder(ctx, c)
}

// launched plays CodeBuild: it accepts every build and runs nothing, so the order stays running
// until its result is recorded (here, put by the test as the worker would).
type launched struct{ n atomic.Int64 }

func (l *launched) Start(context.Context, consumers.Launch) (string, error) {
	return "build-" + strconv.FormatInt(l.n.Add(1), 10), nil
}

// backend opens ports on one backend whose results queue gives up on a message after five
// receives a second apart. On both, storing a result notifies the results queue (S3 does, and
// the embedded bucket does for a result small enough to be a row).
type backend func(t *testing.T) assembly.Ports

func embeddedBackend(t *testing.T) assembly.Ports {
	b, err := embedded.Open(t.Context(), embedded.Options{DataDir: t.TempDir(), Visibility: time.Second,
		BaseURL: func() string { return "http://127.0.0.1:9" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Ports
}

func awsBackend(t *testing.T) assembly.Ports {
	getenv := func(k string) string {
		return map[string]string{awsbackend.EnvPrefix: "dl" + domain.NewTraceID(), awsbackend.EnvEndpoint: awstest.Endpoint(t)}[k]
	}
	cfg, err := awsbackend.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	clients := awsbackend.NewClients(awstest.Config(t), cfg, awsbackend.ClientOptions{Serialize: true})
	if err := awsbackend.Setup(t.Context(), clients, cfg, io.Discard); err != nil {
		t.Fatalf("setup: %v", err)
	}
	url, err := clients.SQS.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(cfg.QueueName(queues.Results))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clients.SQS.SetQueueAttributes(t.Context(), &sqs.SetQueueAttributesInput{QueueUrl: url.QueueUrl,
		Attributes: map[string]string{string(sqstypes.QueueAttributeNameVisibilityTimeout): "1"}}); err != nil {
		t.Fatal(err)
	}
	b, err := awsbackend.Open(cfg, clients, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.Ports()
}

// A result the orchestrator cannot record, because its store is down, is dead-lettered after
// five tries and kept with that error; the run still ends, once the store is back, by the
// sweeper at the order's deadline, or at once by a redrive of the dead letter.
func TestAResultThatCannotBeRecordedIsKeptAndRedriven(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]backend{"embedded": embeddedBackend, "aws": awsBackend} {
		for _, redrive := range []bool{true, false} {
			t.Run(name+"/redrive="+strconv.FormatBool(redrive), func(t *testing.T) {
				t.Parallel()
				ports := open(t)
				st := &outageStore{Store: ports.Store}
				ports.Store = st
				ports.Starters = map[domain.Target]consumers.Starter{domain.TargetCodeBuild: &launched{}}
				ports.Grace = time.Second
				sys, err := assembly.New(ports, assembly.Options{ScratchDir: filepath.Join(t.TempDir(), "work"),
					SweepInterval: 250 * time.Millisecond, Workers: 1})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
				if err := sys.Start(ctx, nil); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cancel(); sys.Wait() })

				// With a redrive, the order's timeout is far off: only the redrive can end it in time.
				timeout := 3
				if redrive {
					timeout = 300
				}
				job := domain.Job{Username: "dlq", Orders: []domain.Order{{OrderName: "plan", Cmds: []string{"true"},
					Timeout: timeout, ExecutionTarget: domain.TargetCodeBuild}}}
				acc, err := sys.Accepter.Accept(ctx, producers.Submission{Job: job, Source: "test"})
				if err != nil {
					t.Fatal(err)
				}
				o := waitOrder(t, ports.Store, acc.RunID, func(o domain.OrderRecord) bool { return o.Status == domain.OrderRunning })

				// The worker delivers its result (which notifies the results queue); the store goes
				// down before it is recorded.
				st.down.Store(true)
				key := blobs.ResultKey(acc.RunID, 1, o.Attempt)
				result := []byte(`{"status":"succeeded","exit_code":0}`)
				if err := ports.Internal.Put(ctx, key, result); err != nil {
					t.Fatal(err)
				}
				var kept producers.DeadLetterView
				deadline := time.Now().Add(time.Minute)
				for {
					list, err := sys.DeadLetters.List(ctx)
					if err == nil && len(list) == 1 {
						if kept, err = sys.Control.ShowDeadLetter(ctx, list[0].ID); err != nil {
							t.Fatal(err)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("no dead letter kept within a minute: %v %+v", err, list)
					}
					time.Sleep(100 * time.Millisecond)
				}
				if kept.Queue != queues.Results || kept.RunID != acc.RunID || kept.OrderNum != 1 || kept.Attempt != o.Attempt ||
					!strings.Contains(kept.Reason, errOutage.Error()) || kept.FirstFailure.IsZero() || kept.Receives != 5 ||
					kept.Redrive != "put the message back on results" {
					t.Fatalf("dead letter: %+v", kept)
				}
				st.down.Store(false)
				if redrive {
					out, err := sys.Control.RedriveDeadLetter(ctx, kept.ID)
					if err != nil || out.Did != "put the message back on results" {
						t.Fatalf("redrive: %+v, %v", out, err)
					}
					if _, err := sys.DeadLetters.Get(ctx, kept.ID); err == nil {
						t.Errorf("the redriven dead letter is still kept")
					}
				}
				end := waitOrder(t, ports.Store, acc.RunID, func(o domain.OrderRecord) bool { return o.Status.Terminal() })
				if end.Status != domain.OrderSucceeded {
					t.Fatalf("order: %s (%s), want succeeded", end.Status, end.Reason)
				}
				if redrive {
					if _, err := sys.Control.RedriveDeadLetter(ctx, kept.ID); !errors.Is(err, producers.ErrNotRedrivable) && err == nil {
						t.Errorf("a second redrive: %v", err)
					}
				} else if _, err := sys.Control.RedriveDeadLetter(ctx, kept.ID); !errors.Is(err, producers.ErrNotRedrivable) {
					t.Errorf("redrive of a result whose order ended: got %v, want ErrNotRedrivable", err)
				}
			})
		}
	}
}

func waitOrder(t *testing.T, st store.Store, runID string, ok func(domain.OrderRecord) bool) domain.OrderRecord {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		o, err := st.GetOrder(t.Context(), runID, 1)
		if err == nil && ok(o) {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order of %s: %+v %v", runID, o, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
