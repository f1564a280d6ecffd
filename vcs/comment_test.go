package vcs

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/iac-ci/iac-ci/domain"
)

const secret = "s3cr3t-hunter2-value"

func maskSecret(s string) string { return strings.ReplaceAll(s, secret, "***") }

func intPtr(i int) *int { return &i }

func sampleView() RunView {
	start := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	return RunView{
		Run: domain.Run{
			RunID: "20240501T120000Z-0011223344556677", FlowID: "alice:ab12c-exec", CommentTag: "tag1",
			CommitHash: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", Status: domain.RunFailed,
		},
		Orders: []domain.OrderRecord{
			{OrderNum: 1, OrderName: "network", Target: domain.TargetCodeBuild, Status: domain.OrderSucceeded,
				Attempt: 1, StartedAt: start, FinishedAt: start.Add(72 * time.Second), LogTail: "ok " + secret},
			{OrderNum: 2, OrderName: "app|plan", Target: domain.TargetLambda, Status: domain.OrderFailed,
				Attempt: 2, StartedAt: start, FinishedAt: start.Add(5 * time.Second), ExitCode: intPtr(2),
				Reason: "exit status 2", LogTail: "Error: token " + secret + " rejected\n```\nnot a fence end\n"},
			{OrderNum: 3, OrderName: "slow", Target: domain.TargetSSM, Status: domain.OrderTimedOut,
				Attempt: 1, LogTail: "\x1b[31mwaiting...\x1b[0m\n", Reason: "timed out: command 1 was still running when the order's timeout passed"},
			{OrderNum: 4, OrderName: "deploy", Target: domain.TargetCodeBuild, Status: domain.OrderSkipped},
		},
		StatusURL: "https://ci.example.com/runs/20240501T120000Z-0011223344556677",
	}
}

func TestMarker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		runID, tag, want string
	}{
		{"r-1", "abc", "<!-- iac-ci:run run_id=r-1 tag=abc -->"},
		{"r-1", "", "<!-- iac-ci:run run_id=r-1 tag= -->"},
		{"r", "x-->y z", "<!-- iac-ci:run run_id=r tag=x-%2D%3Ey%20z -->"},
	}
	for _, tt := range tests {
		if got := Marker(tt.runID, tt.tag); got != tt.want {
			t.Errorf("Marker(%q, %q) = %q, want %q", tt.runID, tt.tag, got, tt.want)
		}
	}
	if Marker("a", "b") == Marker("a", "c") || Marker("a", "b") == Marker("b", "b") {
		t.Fatalf("markers of different runs or tags are equal")
	}
}

func TestRenderCommentShowsTheRun(t *testing.T) {
	t.Parallel()
	v := sampleView()
	body := RenderComment(v, maskSecret)

	if !strings.HasPrefix(body, Marker(v.Run.RunID, v.Run.CommentTag)+"\n") {
		t.Fatalf("body does not start with the marker:\n%s", body)
	}
	for _, want := range []string{
		"### ❌ iac-ci run failed",
		"alice:ab12c-exec",
		"| 0001 network | codebuild | ✅ succeeded | 1 | 1m12s |",
		"| 0002 app\\|plan | lambda | ❌ failed | 2 | 5s |",
		"| 0003 slow | ssm | ⏱️ timed out | 1 | – |",
		"| 0004 deploy | codebuild | ⏭️ skipped | 0 | – |",
		"<summary>❌ 0002 app|plan failed (exit 2): exit status 2</summary>",
		"Error: token *** rejected",
		"waiting...",
		// The reason does not say again what the status says.
		"0003 slow timed out: command 1 was still running when the order&#39;s timeout passed",
		"[Status of this run](" + v.StatusURL + ")",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, secret) {
		t.Errorf("body contains the secret:\n%s", body)
	}
	if strings.Contains(body, "\x1b") {
		t.Errorf("body contains terminal escapes")
	}
	if got := strings.Count(body, "<details>"); got != 2 {
		t.Errorf("details blocks: got %d, want 2 (one per failed or timed-out order)", got)
	}
	if strings.Contains(body, "ok ***") {
		t.Errorf("a succeeded order's log is shown")
	}
	if strings.Contains(body, "shortened") {
		t.Errorf("a short body says something was cut")
	}
	checkMarkdown(t, body)
}

func TestRenderCommentFitsTheLimit(t *testing.T) {
	t.Parallel()
	v := sampleView()
	v.Orders = nil
	for i := 1; i <= 6; i++ {
		var log strings.Builder
		for log.Len() < 1<<20 {
			fmt.Fprintf(&log, "line %d of order %d: token=%s ```` and `````` backticks\n", log.Len(), i, secret)
		}
		fmt.Fprintf(&log, "END-OF-LOG-%d %s\n", i, secret)
		v.Orders = append(v.Orders, domain.OrderRecord{
			OrderNum: i, OrderName: fmt.Sprintf("order-%d", i), Target: domain.TargetCodeBuild,
			Status: domain.OrderFailed, Attempt: 1, LogTail: log.String(),
		})
	}
	// A short tail is left whole: the longest are cut first.
	v.Orders = append(v.Orders, domain.OrderRecord{
		OrderNum: 7, OrderName: "short", Target: domain.TargetLambda, Status: domain.OrderTimedOut,
		LogTail: "short log\nSHORT-END\n",
	})

	body := RenderComment(v, maskSecret)

	if n := utf8.RuneCountInString(body); n >= MaxCommentChars {
		t.Fatalf("body has %d characters, want < %d", n, MaxCommentChars)
	}
	if len(body) >= MaxCommentChars {
		t.Fatalf("body has %d bytes, want < %d", len(body), MaxCommentChars)
	}
	if len(body) < MaxCommentChars/2 {
		t.Errorf("body has %d bytes: the tails were cut far more than needed", len(body))
	}
	if strings.Contains(body, secret) {
		t.Fatalf("body contains the secret")
	}
	for i := 1; i <= 6; i++ {
		if !strings.Contains(body, fmt.Sprintf("END-OF-LOG-%d ***\n", i)) {
			t.Errorf("the end of order %d's log was not kept", i)
		}
	}
	if !strings.Contains(body, "short log\nSHORT-END\n") {
		t.Errorf("the short tail was cut")
	}
	if !strings.Contains(body, "6 of 7 log tails were shortened") {
		t.Errorf("body does not say what was cut")
	}
	if got := strings.Count(body, "<details>"); got != 7 {
		t.Errorf("details blocks: got %d, want 7", got)
	}
	if !strings.Contains(body, "[Status of this run]") {
		t.Errorf("the status link was cut")
	}
	checkMarkdown(t, body)
}

func TestRenderCommentManyOrders(t *testing.T) {
	t.Parallel()
	v := sampleView()
	v.Orders = nil
	for i := 1; i <= 3000; i++ {
		v.Orders = append(v.Orders, domain.OrderRecord{
			OrderNum: i, OrderName: strings.Repeat("n", 100), Target: domain.TargetCodeBuild,
			Status: domain.OrderFailed, LogTail: strings.Repeat("x", 100),
		})
	}
	body := RenderComment(v, nil)
	if len(body) >= MaxCommentChars {
		t.Fatalf("body has %d bytes, want < %d", len(body), MaxCommentChars)
	}
	if !regexp.MustCompile(`\d+ more orders are not listed`).MatchString(body) {
		t.Errorf("body does not say rows were left out")
	}
	checkMarkdown(t, body)
}

func TestWaterLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lengths []int
		target  int
		want    int
	}{
		{[]int{10, 20, 30}, 60, 30},
		{[]int{10, 20, 30}, 50, 20},
		{[]int{10, 20, 30}, 40, 15},
		{[]int{10, 20, 30}, 0, 0},
		{[]int{100}, 7, 7},
	}
	for _, tt := range tests {
		if got := waterLevel(tt.lengths, tt.target); got != tt.want {
			t.Errorf("waterLevel(%v, %d) = %d, want %d", tt.lengths, tt.target, got, tt.want)
		}
	}
}

func TestKeepEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"first line\nsecond\n", 10, "second\n"},
		{"no newline here", 4, "here"},
		{"é€x", 3, "x"}, // never starts inside a character
		{"abc", 0, ""},
	}
	for _, tt := range tests {
		if got := keepEnd(tt.in, tt.n); got != tt.want {
			t.Errorf("keepEnd(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

var fenceLine = regexp.MustCompile("^(`{3,})[^`]*$")

// checkMarkdown fails when a code fence is left open or the <details> blocks outside code do not
// nest, which is how a broken comment renders half the page as code.
func checkMarkdown(t *testing.T, body string) {
	t.Helper()
	open := ""
	depth := 0
	for i, line := range strings.Split(body, "\n") {
		if open != "" {
			if strings.HasPrefix(line, open) && strings.Trim(line, "`") == "" {
				open = ""
			}
			continue
		}
		if m := fenceLine.FindStringSubmatch(line); m != nil {
			open = m[1]
			continue
		}
		depth += strings.Count(line, "<details>") - strings.Count(line, "</details>")
		if depth < 0 {
			t.Fatalf("line %d closes a <details> that is not open", i+1)
		}
	}
	if open != "" {
		t.Fatalf("a %s code fence is never closed", open)
	}
	if depth != 0 {
		t.Fatalf("%d <details> blocks are never closed", depth)
	}
}
