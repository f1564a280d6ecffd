package domain

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// NewRunID returns a new run id: a sortable UTC time prefix and 64 random bits, so ids of one
// day list in the order they were made and never collide.
func NewRunID(now time.Time) string {
	return now.UTC().Format("20060102T150405Z") + "-" + randomHex(8)
}

// NewTraceID returns a short random hex trace id, shared by every leg of a run.
func NewTraceID() string { return randomHex(5) }

// Leg names one leg of a trace: "<trace_id>:<epoch seconds>".
func Leg(traceID string, at time.Time) string {
	return traceID + ":" + strconv.FormatInt(at.Unix(), 10)
}

// FlowID is "<username>:<trace_id>-<flow_label>".
func FlowID(username, traceID, flowLabel string) string {
	return fmt.Sprintf("%s:%s-%s", username, traceID, flowLabel)
}

// OrderNumString formats a 1-based order number as four digits ("0007").
func OrderNumString(n int) string { return fmt.Sprintf("%04d", n) }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
