package helixflow

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// FunctionConfig is a function's settings; unset values take the node's defaults.
type FunctionConfig struct {
	MemoryMB  int               `json:"memory_mb,omitempty"`
	TimeoutMs int64             `json:"timeout_ms,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	// Public: anyone may call the function's HTTP endpoint, without credentials.
	Public         bool     `json:"public,omitempty"`
	MaxConcurrency int      `json:"max_concurrency,omitempty"`
	AllowOutbound  []string `json:"allow_outbound,omitempty"`
	// AsyncInvoke: retries, maximum age and destinations of Event invocations.
	AsyncInvoke *AsyncConfig `json:"async_invoke,omitempty"`
	// Schedules: cron triggers (UTC), each tick one Event invocation.
	Schedules []Schedule `json:"schedules,omitempty"`
}

// AsyncConfig: how Event invocations of a function are retried and where results go.
type AsyncConfig struct {
	// MaxRetries: 0, 1 or 2 (unset: 2). Use Int(0) for no retries.
	MaxRetries   *int         `json:"max_retries,omitempty"`
	MaxEventAgeS int64        `json:"max_event_age_s,omitempty"`
	RetryDelayMs int64        `json:"retry_delay_ms,omitempty"`
	OnSuccess    *Destination `json:"on_success,omitempty"`
	OnFailure    *Destination `json:"on_failure,omitempty"`
}

// Destination of an Event invocation's record: a function and/or an object prefix.
type Destination struct {
	Function     string `json:"function,omitempty"`
	ObjectPrefix string `json:"object_prefix,omitempty"`
}

// Schedule is a cron trigger.
type Schedule struct {
	Name    string          `json:"name"`
	Cron    string          `json:"cron"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Enabled *bool           `json:"enabled,omitempty"`
}

// Function is a deployed function.
type Function struct {
	Tenant        string         `json:"tenant"`
	Name          string         `json:"name"`
	Config        FunctionConfig `json:"config"`
	LatestVersion int            `json:"latest_version"`
	CreatedAt     string         `json:"created_at"`
	UpdatedAt     string         `json:"updated_at"`
}

// Exports says which triggers a version serves.
type Exports struct {
	HTTP  bool `json:"http"`
	Event bool `json:"event"`
}

// FunctionVersion is an immutable deployed version, addressed by its SHA-256.
type FunctionVersion struct {
	Tenant      string  `json:"tenant"`
	Function    string  `json:"function"`
	Version     int     `json:"version"`
	SHA256      string  `json:"sha256"`
	Size        int64   `json:"size"`
	Exports     Exports `json:"exports"`
	CreatedAt   string  `json:"created_at"`
	Description string  `json:"description"`
}

// Alias points a name (e.g. "live") at a version.
type Alias struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// History: earlier targets, most recent last.
	History   []int  `json:"history"`
	UpdatedAt string `json:"updated_at"`
}

// FunctionDetails is a function with its versions and aliases.
type FunctionDetails struct {
	Function Function          `json:"function"`
	Versions []FunctionVersion `json:"versions"`
	Aliases  []Alias           `json:"aliases"`
}

// Deployment is what a deploy created: the version and, when asked for, the alias.
type Deployment struct {
	Version FunctionVersion `json:"version"`
	Alias   *Alias          `json:"alias"`
}

// LogEntry is one recent invocation with its captured output.
type LogEntry struct {
	RequestID  string `json:"request_id"`
	Version    int    `json:"version"`
	Trigger    string `json:"trigger"`
	Outcome    string `json:"outcome"`
	DurationUs int64  `json:"duration_us"`
	At         string `json:"at"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Truncated  bool   `json:"truncated"`
}

// DeployOptions are a deploy's optional settings.
type DeployOptions struct {
	// Alias (e.g. "live") to point at the new version.
	Alias       string
	Description string
	// Config replaces the function's config with the new version.
	Config *FunctionConfig
	// Progress hears how much of the component has been sent.
	Progress ProgressFunc
}

// FunctionsService: deploy, list, get, delete, configure and invoke functions
// (/api/v1/tenants/{t}/functions, /invoke, the Invoke API for Event invocations).
type FunctionsService struct{ c *Client }

// Deploy uploads component (a WebAssembly component) as a new version of function.
func (s *FunctionsService) Deploy(ctx context.Context, function string, component []byte, opts *DeployOptions) (*Deployment, error) {
	if len(component) == 0 {
		if err := validName("Functions.Deploy", "function", function); err != nil {
			return nil, err
		}
		return nil, argError("Functions.Deploy", "component", "is empty")
	}
	return s.deploy(ctx, "Functions.Deploy", function, func() (*upload, error) { return uploadBytes(component), nil }, opts)
}

// DeployFile uploads the component at path as a new version of function.
func (s *FunctionsService) DeployFile(ctx context.Context, function, path string, opts *DeployOptions) (*Deployment, error) {
	return s.deploy(ctx, "Functions.DeployFile", function, func() (*upload, error) { return uploadFile("Functions.DeployFile", path) }, opts)
}

// DeployReader uploads size bytes read from r (size < 0: unknown, sent chunked) as a
// new version of function.
func (s *FunctionsService) DeployReader(ctx context.Context, function string, r io.Reader, size int64, opts *DeployOptions) (*Deployment, error) {
	return s.deploy(ctx, "Functions.DeployReader", function, func() (*upload, error) { return uploadReader("Functions.DeployReader", r, size) }, opts)
}

func (s *FunctionsService) deploy(ctx context.Context, call, function string, open func() (*upload, error), opts *DeployOptions) (*Deployment, error) {
	if err := validName(call, "function", function); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &DeployOptions{}
	}
	if opts.Alias != "" {
		if err := validName(call, "alias", opts.Alias); err != nil {
			return nil, err
		}
	}
	header := http.Header{"Content-Type": {"application/wasm"}}
	if opts.Config != nil {
		cfg, err := json.Marshal(opts.Config)
		if err != nil {
			return nil, fmt.Errorf("helixflow: %s: encoding the config: %w", call, err)
		}
		header.Set("X-Helixflow-Config", string(cfg))
	}
	path, err := s.c.tenantPath(ctx, call, "/functions/"+function+"/versions")
	if err != nil {
		return nil, err
	}
	u, err := open()
	if err != nil {
		return nil, err
	}
	defer u.close()
	q := url.Values{}
	if opts.Alias != "" {
		q.Set("alias", opts.Alias)
	}
	if opts.Description != "" {
		q.Set("description", opts.Description)
	}
	var out Deployment
	err = s.c.do(ctx, &request{
		method: http.MethodPost, path: path, query: q, header: header,
		bodyReader: u.withProgress(opts.Progress), bodySize: u.size,
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns the tenant's functions.
func (s *FunctionsService) List(ctx context.Context) ([]Function, error) {
	path, err := s.c.tenantPath(ctx, "Functions.List", "/functions")
	if err != nil {
		return nil, err
	}
	var out struct {
		Functions []Function `json:"functions"`
	}
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Functions, nil
}

func (s *FunctionsService) path(ctx context.Context, call, function, suffix string) (string, error) {
	if err := validName(call, "function", function); err != nil {
		return "", err
	}
	return s.c.tenantPath(ctx, call, "/functions/"+function+suffix)
}

// Get returns a function with its versions and aliases.
func (s *FunctionsService) Get(ctx context.Context, function string) (*FunctionDetails, error) {
	path, err := s.path(ctx, "Functions.Get", function, "")
	if err != nil {
		return nil, err
	}
	var out FunctionDetails
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes a function with all its versions and aliases.
func (s *FunctionsService) Delete(ctx context.Context, function string) error {
	path, err := s.path(ctx, "Functions.Delete", function, "")
	if err != nil {
		return err
	}
	return s.c.del(ctx, path, nil)
}

// Versions lists a function's versions.
func (s *FunctionsService) Versions(ctx context.Context, function string) ([]FunctionVersion, error) {
	path, err := s.path(ctx, "Functions.Versions", function, "/versions")
	if err != nil {
		return nil, err
	}
	var out struct {
		Versions []FunctionVersion `json:"versions"`
	}
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Versions, nil
}

// Version returns one version of a function.
func (s *FunctionsService) Version(ctx context.Context, function string, version int) (*FunctionVersion, error) {
	if version <= 0 {
		return nil, argError("Functions.Version", "version", "must be a version number (1 or more)")
	}
	path, err := s.path(ctx, "Functions.Version", function, "/versions/"+strconv.Itoa(version))
	if err != nil {
		return nil, err
	}
	var out FunctionVersion
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteVersion deletes one version (not one an alias points at).
func (s *FunctionsService) DeleteVersion(ctx context.Context, function string, version int) error {
	if version <= 0 {
		return argError("Functions.DeleteVersion", "version", "must be a version number (1 or more)")
	}
	path, err := s.path(ctx, "Functions.DeleteVersion", function, "/versions/"+strconv.Itoa(version))
	if err != nil {
		return err
	}
	return s.c.del(ctx, path, nil)
}

// Config returns a function's config.
func (s *FunctionsService) Config(ctx context.Context, function string) (*FunctionConfig, error) {
	path, err := s.path(ctx, "Functions.Config", function, "/config")
	if err != nil {
		return nil, err
	}
	var out FunctionConfig
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetConfig replaces a function's config and returns the function.
func (s *FunctionsService) SetConfig(ctx context.Context, function string, cfg FunctionConfig) (*Function, error) {
	path, err := s.path(ctx, "Functions.SetConfig", function, "/config")
	if err != nil {
		return nil, err
	}
	var out Function
	if err := s.c.putJSON(ctx, path, cfg, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Logs returns up to limit recent invocations (newest first) with their captured
// stdout and stderr (limit <= 0: the node's default, 50).
func (s *FunctionsService) Logs(ctx context.Context, function string, limit int) ([]LogEntry, error) {
	path, err := s.path(ctx, "Functions.Logs", function, "/logs")
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Logs []LogEntry `json:"logs"`
	}
	if err := s.c.getJSON(ctx, path, q, &out); err != nil {
		return nil, err
	}
	return out.Logs, nil
}

// InvokeOptions are an invocation's optional settings.
type InvokeOptions struct {
	// Qualifier: a version number or alias (default: the "live" alias, else the
	// latest version).
	Qualifier string
	// ClientContext: a JSON object passed to the function as its client context.
	ClientContext json.RawMessage
}

// Invocation is a synchronous invocation's result.
type Invocation struct {
	// Payload: the function's output as it answered it.
	Payload []byte
	// Version that ran.
	Version   int
	RequestID string
}

// JSON decodes the payload into v.
func (i *Invocation) JSON(v any) error { return json.Unmarshal(i.Payload, v) }

// Invoke runs function's event handler on payload and returns its output. An error
// the function returned is an *APIError with Code "function_error" (422) and the
// function's error type in ErrorType. Never retried (an invocation may act).
func (s *FunctionsService) Invoke(ctx context.Context, function string, payload []byte, opts *InvokeOptions) (*Invocation, error) {
	const call = "Functions.Invoke"
	if err := validName(call, "function", function); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &InvokeOptions{}
	}
	target, err := qualified(call, function, opts.Qualifier, "@")
	if err != nil {
		return nil, err
	}
	ctype := "application/octet-stream"
	if json.Valid(payload) {
		ctype = "application/json"
	}
	header := http.Header{"Content-Type": {ctype}}
	if len(opts.ClientContext) > 0 {
		header.Set("X-Helixflow-Client-Context", string(opts.ClientContext))
	}
	t, err := s.c.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := validName(call, "tenant", t); err != nil {
		return nil, err
	}
	if payload == nil {
		payload = []byte{}
	}
	resp, body, err := s.c.roundTrip(ctx, &request{
		method: http.MethodPost, path: "/invoke/" + t + "/" + target, rawBody: payload, header: header,
	})
	if err != nil {
		return nil, err
	}
	v, _ := strconv.Atoi(resp.Header.Get("X-Helixflow-Version"))
	return &Invocation{Payload: body, Version: v, RequestID: requestID(resp.Header)}, nil
}

// QueuedEvent is an accepted Event (asynchronous) invocation.
type QueuedEvent struct {
	// ID of the event (also the request id of each of its attempts); look it up with
	// client.Events.Get while it is pending or after it failed.
	ID string
	// Version that will run.
	Version int
}

// InvokeAsync queues an Event invocation of function with payload (JSON) and returns
// once it is stored durably; it runs in the background, retried as the function's
// async_invoke config says, and lands in client.Events when it fails. Goes through
// the Lambda Invoke API (X-Amz-Invocation-Type: Event). Never retried.
func (s *FunctionsService) InvokeAsync(ctx context.Context, function string, payload []byte, opts *InvokeOptions) (*QueuedEvent, error) {
	const call = "Functions.InvokeAsync"
	if err := validName(call, "function", function); err != nil {
		return nil, err
	}
	if len(payload) > 0 && !json.Valid(payload) {
		return nil, argError(call, "payload", "must be JSON (an Event payload is a JSON document)")
	}
	if opts == nil {
		opts = &InvokeOptions{}
	}
	if _, err := qualified(call, function, opts.Qualifier, ":"); err != nil {
		return nil, err
	}
	header := http.Header{
		"Content-Type":          {"application/json"},
		"X-Amz-Invocation-Type": {"Event"},
	}
	if len(opts.ClientContext) > 0 {
		header.Set("X-Amz-Client-Context", base64.StdEncoding.EncodeToString(opts.ClientContext))
	}
	t, err := s.c.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := validName(call, "tenant", t); err != nil {
		return nil, err
	}
	name := t + ":function:" + function
	if opts.Qualifier != "" {
		name += ":" + opts.Qualifier
	}
	resp, _, err := s.c.roundTrip(ctx, &request{
		method: http.MethodPost, path: "/2015-03-31/functions/" + url.PathEscape(name) + "/invocations",
		rawBody: payload, header: header,
	})
	if err != nil {
		return nil, err
	}
	v, _ := strconv.Atoi(resp.Header.Get("X-Amz-Executed-Version"))
	return &QueuedEvent{ID: resp.Header.Get("X-Amzn-Requestid"), Version: v}, nil
}

// qualified returns function[sep qualifier], the qualifier checked.
func qualified(call, function, qualifier, sep string) (string, error) {
	if qualifier == "" {
		return function, nil
	}
	if n, err := strconv.Atoi(qualifier); err == nil {
		if n <= 0 {
			return "", argError(call, "qualifier", "must be a version number (1 or more) or an alias")
		}
		return function + sep + qualifier, nil
	}
	if err := validName(call, "qualifier", qualifier); err != nil {
		return "", err
	}
	return function + sep + qualifier, nil
}

// AliasesService: a function's aliases (/api/v1/tenants/{t}/functions/{f}/aliases).
type AliasesService struct{ c *Client }

func (s *AliasesService) path(ctx context.Context, call, function, alias string, suffix string) (string, error) {
	if err := validName(call, "function", function); err != nil {
		return "", err
	}
	p := "/functions/" + function + "/aliases"
	if alias != "" {
		p += "/" + alias
	}
	return s.c.tenantPath(ctx, call, p+suffix)
}

// List returns a function's aliases.
func (s *AliasesService) List(ctx context.Context, function string) ([]Alias, error) {
	path, err := s.path(ctx, "Aliases.List", function, "", "")
	if err != nil {
		return nil, err
	}
	var out struct {
		Aliases []Alias `json:"aliases"`
	}
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Aliases, nil
}

// Get returns one alias.
func (s *AliasesService) Get(ctx context.Context, function, alias string) (*Alias, error) {
	if err := validName("Aliases.Get", "alias", alias); err != nil {
		return nil, err
	}
	path, err := s.path(ctx, "Aliases.Get", function, alias, "")
	if err != nil {
		return nil, err
	}
	var out Alias
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Set points alias at version (creating the alias when it does not exist).
func (s *AliasesService) Set(ctx context.Context, function, alias string, version int) (*Alias, error) {
	if err := validName("Aliases.Set", "alias", alias); err != nil {
		return nil, err
	}
	if version <= 0 {
		return nil, argError("Aliases.Set", "version", "must be a version number (1 or more)")
	}
	path, err := s.path(ctx, "Aliases.Set", function, alias, "")
	if err != nil {
		return nil, err
	}
	var out Alias
	if err := s.c.putJSON(ctx, path, map[string]int{"version": version}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollback moves alias back to its previous version.
func (s *AliasesService) Rollback(ctx context.Context, function, alias string) (*Alias, error) {
	if err := validName("Aliases.Rollback", "alias", alias); err != nil {
		return nil, err
	}
	path, err := s.path(ctx, "Aliases.Rollback", function, alias, "/rollback")
	if err != nil {
		return nil, err
	}
	var out Alias
	if err := s.c.postJSON(ctx, path, nil, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes an alias.
func (s *AliasesService) Delete(ctx context.Context, function, alias string) error {
	if err := validName("Aliases.Delete", "alias", alias); err != nil {
		return err
	}
	path, err := s.path(ctx, "Aliases.Delete", function, alias, "")
	if err != nil {
		return err
	}
	return s.c.del(ctx, path, nil)
}
