package consumers

import (
	"slices"
	"testing"
)

// The commands' environment: the order's variables over the worker's, one entry per name (the
// last, of a name the worker's gives twice), sorted by name.
func TestMergeEnv(t *testing.T) {
	base := []string{"PATH=/bin", "HOME=/root", "TRACE_ID=from-the-worker", "LANG=C", "LANG=C.UTF-8", "NOEQUALS"}
	env := map[string]string{"TRACE_ID": "t-1", "RUN_ID": "r-1", "EMPTY": ""}
	got := mergeEnv(base, env)
	want := []string{"EMPTY=", "HOME=/root", "LANG=C.UTF-8", "PATH=/bin", "RUN_ID=r-1", "TRACE_ID=t-1"}
	if !slices.Equal(got, want) {
		t.Fatalf("mergeEnv:\n got %q\nwant %q", got, want)
	}
	if got := mergeEnv(nil, nil); len(got) != 0 {
		t.Fatalf("mergeEnv(nil, nil) = %q", got)
	}
}
