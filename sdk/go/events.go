package helixflow

import (
	"context"
	"encoding/base64"
	"net/url"
	"strconv"
)

// Event is an Event (asynchronous) invocation that is pending or failed.
type Event struct {
	ID string `json:"id"`
	// Status: "pending" or "failed".
	Status       string `json:"status"`
	Function     string `json:"function"`
	Version      int    `json:"version"`
	Attempts     int    `json:"attempts"`
	Failures     int    `json:"failures"`
	AcceptedAtMs int64  `json:"accepted_at_ms"`
	DueAtMs      int64  `json:"due_at_ms"`
	FinishedAtMs int64  `json:"finished_at_ms"`
	// Condition of a failed event: RetriesExhausted, EventAgeExceeded, FunctionNotFound.
	Condition string      `json:"condition"`
	LastError *EventError `json:"last_error"`
	// Source: how it was queued (e.g. "invoke:...", "replay:{id}", "schedule:...").
	Source string `json:"source"`
	// ReplayedAs: the id of the event a replay of this one queued.
	ReplayedAs string `json:"replayed_as"`
	PayloadB64 string `json:"payload_b64"`
}

// Payload is the event's payload (failed events carry it).
func (e *Event) Payload() ([]byte, error) { return base64.StdEncoding.DecodeString(e.PayloadB64) }

// EventError is the last error of an event's attempts.
type EventError struct {
	ErrorType string `json:"error_type"`
	Message   string `json:"message"`
}

// EventListOptions filter a listing.
type EventListOptions struct {
	// Status: "pending" or "failed" (default both).
	Status string
	// Function: only this function's events.
	Function string
	// Limit: at most this many (default 100, at most 1000).
	Limit int
}

// Replay is a replay's answer: the new event's id.
type Replay struct {
	ID       string `json:"id"`
	ReplayOf string `json:"replay_of"`
}

// EventsService: the tenant's pending and failed Event invocations
// (/api/v1/tenants/{t}/events).
type EventsService struct{ c *Client }

// List returns pending and/or failed events.
func (s *EventsService) List(ctx context.Context, opts *EventListOptions) ([]Event, error) {
	const call = "Events.List"
	q := url.Values{}
	if opts != nil {
		switch opts.Status {
		case "", "pending", "failed":
		default:
			return nil, argError(call, "Status", "must be pending or failed, not "+opts.Status)
		}
		if opts.Status != "" {
			q.Set("status", opts.Status)
		}
		if opts.Function != "" {
			if err := validName(call, "Function", opts.Function); err != nil {
				return nil, err
			}
			q.Set("function", opts.Function)
		}
		if opts.Limit < 0 {
			return nil, argError(call, "Limit", "cannot be negative")
		}
		if opts.Limit > 0 {
			q.Set("limit", strconv.Itoa(opts.Limit))
		}
	}
	path, err := s.c.tenantPath(ctx, call, "/events")
	if err != nil {
		return nil, err
	}
	var out struct {
		Events []Event `json:"events"`
	}
	if err := s.c.getJSON(ctx, path, q, &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}

// Get returns an event while it is pending or after it failed (404 once it succeeded
// or its record expired).
func (s *EventsService) Get(ctx context.Context, id string) (*Event, error) {
	if err := required("Events.Get", "id", id); err != nil {
		return nil, err
	}
	path, err := s.c.tenantPath(ctx, "Events.Get", "/events/"+url.PathEscape(id))
	if err != nil {
		return nil, err
	}
	var out Event
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Replay queues a failed event again (once; a second replay is a 409
// "already_replayed"). Never retried.
func (s *EventsService) Replay(ctx context.Context, id string) (*Replay, error) {
	if err := required("Events.Replay", "id", id); err != nil {
		return nil, err
	}
	path, err := s.c.tenantPath(ctx, "Events.Replay", "/events/"+url.PathEscape(id)+"/replay")
	if err != nil {
		return nil, err
	}
	var out Replay
	if err := s.c.postJSON(ctx, path, nil, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}
