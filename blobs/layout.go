package blobs

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/iac-ci/iac-ci/domain"
)

// The internal bucket's layout (DESIGN §4). Every key of a run starts with its run id, so one
// prefix lists or removes everything a run left.

// RequestKey is where a producer stores an accepted request for intake.
func RequestKey(runID string) string { return "requests/" + runID + ".json" }

// ExecKey is an order's sealed bundle.
func ExecKey(runID string, orderNum int) string {
	return fmt.Sprintf("exec/%s/%s/exec.zip", runID, domain.OrderNumString(orderNum))
}

// StrippedKey is an order's bundle without its sealed secrets, kept for audit.
func StrippedKey(runID string, orderNum int) string {
	return fmt.Sprintf("exec/%s/%s/stripped.zip", runID, domain.OrderNumString(orderNum))
}

// ResultKey is where one attempt of an order delivers its result.json.
func ResultKey(runID string, orderNum, attempt int) string {
	return fmt.Sprintf("callbacks/%s/%s/%d/result.json", runID, domain.OrderNumString(orderNum), attempt)
}

// LogKey is one attempt's whole (masked) log.
func LogKey(runID string, orderNum, attempt int) string {
	return fmt.Sprintf("logs/%s/%s/%d.log", runID, domain.OrderNumString(orderNum), attempt)
}

// DoneKey is a run's object in the done bucket.
func DoneKey(runID string) string { return runID + "/done" }

// IsResultKey reports whether key is a result.json under callbacks/: the objects whose
// arrival notifies the results queue.
func IsResultKey(key string) bool {
	return strings.HasPrefix(key, "callbacks/") && strings.HasSuffix(key, "/result.json")
}

// ParseResultKey splits a result key into its run id, order number and attempt.
func ParseResultKey(key string) (runID string, orderNum, attempt int, err error) {
	parts := strings.Split(key, "/")
	if len(parts) != 5 || parts[0] != "callbacks" || parts[4] != "result.json" {
		return "", 0, 0, fmt.Errorf("not a result key: %q", key)
	}
	if orderNum, err = strconv.Atoi(parts[2]); err != nil || orderNum < 1 {
		return "", 0, 0, fmt.Errorf("result key %q: bad order number", key)
	}
	if attempt, err = strconv.Atoi(parts[3]); err != nil || attempt < 1 {
		return "", 0, 0, fmt.Errorf("result key %q: bad attempt", key)
	}
	return parts[1], orderNum, attempt, nil
}
