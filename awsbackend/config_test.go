package awsbackend

import (
	"errors"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnvDerivesEveryNameFromThePrefix(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(envOf(map[string]string{EnvPrefix: "team-a"}))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	want := Config{Prefix: "team-a", QueuePrefix: "team-a-", OrdersTable: "team-a-orders", EventsTable: "team-a-events",
		InternalBucket: "team-a-internal", DoneBucket: "team-a-done", RunKeyPrefix: "/team-a/run-keys",
		CodeBuildProject: "team-a-worker", SSMDocument: "team-a-run-commands"}
	if c != want {
		t.Fatalf("FromEnv: got %+v, want %+v", c, want)
	}
	d, err := FromEnv(envOf(nil))
	if err != nil {
		t.Fatalf("FromEnv with nothing set: %v", err)
	}
	if d.Prefix != DefaultPrefix || d.SSMDocument != "iac-ci-run-commands" || d.QueueName("results") != "iac-ci-results" {
		t.Fatalf("defaults: got %+v, want names from %q", d, DefaultPrefix)
	}
}

func TestFromEnvOverridesOneNameAtATime(t *testing.T) {
	t.Parallel()
	cases := []struct {
		variable, value string
		got             func(Config) string
	}{
		{EnvQueuePrefix, "ci_", func(c Config) string { return c.QueuePrefix }},
		{EnvOrdersTable, "runs.v2", func(c Config) string { return c.OrdersTable }},
		{EnvEventsTable, "history", func(c Config) string { return c.EventsTable }},
		{EnvInternalBucket, "acme-ci-internal", func(c Config) string { return c.InternalBucket }},
		{EnvDoneBucket, "acme-ci-done", func(c Config) string { return c.DoneBucket }},
		{EnvRunKeyPrefix, "/acme/ci/keys", func(c Config) string { return c.RunKeyPrefix }},
		{EnvCodeBuildProject, "acme-worker", func(c Config) string { return c.CodeBuildProject }},
		{EnvSSMDocument, "acme-run", func(c Config) string { return c.SSMDocument }},
	}
	for _, tc := range cases {
		c, err := FromEnv(envOf(map[string]string{tc.variable: tc.value}))
		if err != nil {
			t.Fatalf("%s=%s: %v", tc.variable, tc.value, err)
		}
		if got := tc.got(c); got != tc.value {
			t.Errorf("%s=%s: got %q, want %q", tc.variable, tc.value, got, tc.value)
		}
		if c.Prefix != DefaultPrefix {
			t.Errorf("%s=%s: prefix changed to %q", tc.variable, tc.value, c.Prefix)
		}
	}
}

func TestFromEnvNamesTheVariableOfEachProblem(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvPrefix: "Team_A"}, EnvPrefix},
		{map[string]string{EnvQueuePrefix: "bad name"}, EnvQueuePrefix},
		{map[string]string{EnvQueuePrefix: strings.Repeat("q", 70)}, EnvQueuePrefix},
		{map[string]string{EnvOrdersTable: "x"}, EnvOrdersTable},
		{map[string]string{EnvEventsTable: "iac-ci-orders"}, EnvEventsTable},
		{map[string]string{EnvInternalBucket: "Upper-Case"}, EnvInternalBucket},
		{map[string]string{EnvDoneBucket: "iac-ci-internal"}, EnvDoneBucket},
		{map[string]string{EnvRunKeyPrefix: "no-leading-slash"}, EnvRunKeyPrefix},
		{map[string]string{EnvCodeBuildProject: "-x"}, EnvCodeBuildProject},
		{map[string]string{EnvSSMDocument: "a b"}, EnvSSMDocument},
		{map[string]string{EnvS3PathStyle: "sometimes"}, EnvS3PathStyle},
	}
	for _, tc := range cases {
		_, err := FromEnv(envOf(tc.env))
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%v: got error %v, want one wrapping ErrConfig", tc.env, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want+"=") {
			t.Errorf("%v: got %q, want it to name %s", tc.env, err, tc.want)
		}
	}
}

func TestPathStyleFollowsTheEndpoint(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{EnvEndpoint: "http://127.0.0.1:5000"}, true},
		{map[string]string{EnvEndpointS3: "http://127.0.0.1:9000"}, true},
		{map[string]string{EnvEndpoint: "http://127.0.0.1:5000", EnvS3PathStyle: "false"}, false},
		{map[string]string{EnvS3PathStyle: "true"}, true},
	}
	for _, tc := range cases {
		c, err := FromEnv(envOf(tc.env))
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if c.S3PathStyle != tc.want {
			t.Errorf("%v: S3PathStyle got %v, want %v", tc.env, c.S3PathStyle, tc.want)
		}
	}
}

func TestDescribeCoversTheTopologyAndBothTables(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(envOf(map[string]string{EnvPrefix: "p"}))
	if err != nil {
		t.Fatal(err)
	}
	r := Describe(c)
	if got, want := len(r.Queues), len(queueSpecs()); got != want {
		t.Fatalf("queues: got %d, want %d", got, want)
	}
	byName := map[string]QueueResource{}
	for _, q := range r.Queues {
		byName[q.Name] = q
	}
	res := byName["p-results"]
	if res.DeadLetterQueue != "p-results-dlq" || res.MaxReceiveCount != 5 || res.AllowsS3From != "p-internal" ||
		res.VisibilityTimeoutSeconds != 60 {
		t.Errorf("results queue: got %+v", res)
	}
	if _, ok := byName["p-orders-lambda-dlq"]; !ok {
		t.Errorf("no p-orders-lambda-dlq among %v", r.Queues)
	}
	if len(r.Tables) != 2 || r.Tables[1].TTLAttribute != "expires_at" || len(r.Tables[0].GlobalSecondaryIndexes) != 3 {
		t.Errorf("tables: got %+v", r.Tables)
	}
	if r.Buckets[0].Notification == nil || r.Buckets[0].Notification.Queue != "p-results" || r.Buckets[1].Notification != nil {
		t.Errorf("buckets: got %+v", r.Buckets)
	}
	if !strings.Contains(string(r.JSON()), `"run_key_parameter_prefix"`) {
		t.Errorf("JSON lacks the run key prefix:\n%s", r.JSON())
	}
}
