package domain

import (
	"regexp"
	"testing"
	"time"
)

func TestNewRunID(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 3, 9, 17, 4, 5, 0, time.FixedZone("CET", 3600))
	id := NewRunID(at)
	if ok := regexp.MustCompile(`^20240309T160405Z-[0-9a-f]{16}$`).MatchString(id); !ok {
		t.Fatalf("NewRunID: got %q, want the UTC time and 16 hex digits", id)
	}
	if other := NewRunID(at); other == id {
		t.Errorf("two run ids of the same second are equal: %q", id)
	}
	if later := NewRunID(at.Add(time.Second)); later <= id {
		t.Errorf("a later run id %q does not sort after %q", later, id)
	}
}

func TestNewTraceID(t *testing.T) {
	t.Parallel()
	id := NewTraceID()
	if !regexp.MustCompile(`^[0-9a-f]{10}$`).MatchString(id) {
		t.Fatalf("NewTraceID: got %q, want 10 hex digits", id)
	}
	if NewTraceID() == id {
		t.Errorf("two trace ids are equal: %q", id)
	}
}

func TestIdentifiers(t *testing.T) {
	t.Parallel()
	if got, want := Leg("a1b2c3", time.Unix(1700000000, 999)), "a1b2c3:1700000000"; got != want {
		t.Errorf("Leg: got %q, want %q", got, want)
	}
	if got, want := FlowID("ana", "a1b2c3", "exec"), "ana:a1b2c3-exec"; got != want {
		t.Errorf("FlowID: got %q, want %q", got, want)
	}
	for n, want := range map[int]string{1: "0001", 42: "0042", 9999: "9999", 10000: "10000"} {
		if got := OrderNumString(n); got != want {
			t.Errorf("OrderNumString(%d): got %q, want %q", n, got, want)
		}
	}
}
