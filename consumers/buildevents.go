package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/store"
)

// BuildEvents ends an order whose CodeBuild build died without delivering its result (out of
// memory, a failed provisioning, a build stopped or timed out by CodeBuild): EventBridge hands
// over CodeBuild's build state changes, and a build that ended FAILED, FAULT, STOPPED or
// TIMED_OUT ends the attempt it ran, with the reason the event gives, unless its result ended it
// first. Without this, such an order would stay running until the sweeper's deadline.
type BuildEvents struct {
	Engine *engine.Engine
}

// codeBuildStateChange is the detail of a "CodeBuild Build State Change" event.
type codeBuildStateChange struct {
	BuildStatus           string `json:"build-status"`
	BuildID               string `json:"build-id"`
	CurrentPhase          string `json:"current-phase"`
	CurrentPhaseContext   string `json:"current-phase-context"`
	AdditionalInformation struct {
		Environment struct {
			Variables []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"environment-variables"`
		} `json:"environment"`
		Phases []struct {
			Type    string   `json:"phase-type"`
			Status  string   `json:"phase-status"`
			Context []string `json:"phase-context"`
		} `json:"phases"`
	} `json:"additional-information"`
}

// endedBuild is what a build that ended without success means for its order.
var endedBuild = map[string]domain.OrderStatus{
	"FAILED":    domain.OrderFailed,
	"FAULT":     domain.OrderFailed,
	"STOPPED":   domain.OrderFailed,
	"TIMED_OUT": domain.OrderTimedOut,
}

// HandleCodeBuild handles one build state change (the event's detail). It reports whether the
// event ended an order.
func (b *BuildEvents) HandleCodeBuild(ctx context.Context, detail json.RawMessage) (bool, error) {
	var ev codeBuildStateChange
	if err := json.Unmarshal(detail, &ev); err != nil {
		return false, fmt.Errorf("read a CodeBuild state change: %w", err)
	}
	status, ends := endedBuild[ev.BuildStatus]
	if !ends {
		return false, nil // SUCCEEDED, IN_PROGRESS: the worker's result says how the order ended
	}
	vars := map[string]string{}
	for _, v := range ev.AdditionalInformation.Environment.Variables {
		vars[v.Name] = v.Value
	}
	runID := vars[EnvRunID]
	num, err1 := strconv.Atoi(vars[EnvOrderNum])
	attempt, err2 := strconv.Atoi(vars[EnvAttempt])
	if runID == "" || err1 != nil || err2 != nil {
		return false, nil // a build iac-ci did not start
	}
	o, err := b.Engine.Store.GetOrder(ctx, runID, num)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read order: %w", err)
	}
	if o.Status != domain.OrderRunning || o.Attempt != attempt {
		return false, nil // its result came first, or another attempt runs now
	}
	return b.Engine.Finish(ctx, o, []domain.OrderStatus{domain.OrderRunning}, attempt,
		engine.Outcome{Status: status, Reason: ev.reason()})
}

// reason says how the build ended: its status, and the phase that did not succeed with what
// CodeBuild said of it.
func (ev codeBuildStateChange) reason() string {
	id := ev.BuildID
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		id = id[i+1:]
	}
	r := fmt.Sprintf("CodeBuild build %s ended %s", id, ev.BuildStatus)
	for _, p := range ev.AdditionalInformation.Phases {
		if p.Status != "" && p.Status != "SUCCEEDED" {
			r += fmt.Sprintf(" in its %s phase (%s)", p.Type, p.Status)
			if ctx := strings.TrimSpace(strings.Join(p.Context, "; ")); ctx != "" && ctx != ":" {
				r += ": " + ctx
			}
			return r
		}
	}
	if ev.CurrentPhase != "" {
		r += " in its " + ev.CurrentPhase + " phase"
	}
	return r
}
