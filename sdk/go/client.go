package helixflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultBaseURL is the node a client talks to when neither WithBaseURL nor
// HELIXFLOW_BASE_URL says otherwise.
const DefaultBaseURL = "http://127.0.0.1:8080"

// Version is this SDK's version, sent in the User-Agent header.
const Version = "0.1.0"

const (
	defaultTimeout    = 10 * time.Minute
	defaultMaxRetries = 2
	// Waits asked for by Retry-After beyond this are not waited out: the error is
	// returned (e.g. a monthly budget that resets at the end of the month).
	maxRetryAfter = time.Minute
	backoffBase   = 500 * time.Millisecond
	backoffMax    = 8 * time.Second
)

// Client talks to one HelixFlow node with one credential (an API key, a JWT or the
// platform admin key). It is safe for concurrent use.
type Client struct {
	apiKey     string
	baseURL    string
	tenant     string
	httpClient *http.Client
	timeout    time.Duration
	maxRetries int
	// sleep waits between retries (replaced by tests).
	sleep func(ctx context.Context, d time.Duration) error

	// The credential's WhoAmI once asked, shared by the copies ForTenant makes.
	discovery *discovery

	Functions  *FunctionsService
	Aliases    *AliasesService
	Models     *ModelsService
	Keys       *KeysService
	AccessKeys *AccessKeysService
	Events     *EventsService
	Tenants    *TenantsService
	Usage      *UsageService
	Dashboards *DashboardsService
}

type discovery struct {
	mu sync.Mutex
	me *WhoAmI
}

// WhoAmI is who a client's credential is (GET /api/v1/whoami).
type WhoAmI struct {
	// Tenant is the credential's tenant; "" for the platform admin key (every tenant).
	Tenant string `json:"tenant"`
	// Role is "admin", "developer", "invoker" or "viewer".
	Role string `json:"role"`
	// Subject is what the audit log records: the key prefix, the JWT sub, or
	// "platform-admin".
	Subject string `json:"subject"`
	// Via is "api_key", "jwt" or "admin_key".
	Via string `json:"via"`
}

// Option configures a Client.
type Option func(*Client)

// WithBaseURL sets the node's address, e.g. "https://edge.example.com".
func WithBaseURL(u string) Option {
	return func(c *Client) { c.baseURL = strings.TrimRight(u, "/") }
}

// WithTenant sets the tenant of tenant-scoped calls.
func WithTenant(tenant string) Option {
	return func(c *Client) { c.tenant = tenant }
}

// WithHTTPClient sets the *http.Client requests go through (transport, proxies, TLS).
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) {
		if h != nil {
			c.httpClient = h
		}
	}
}

// WithTimeout bounds each attempt of a call (default 10 minutes); for a stream, the
// wait for the response to start. 0 means no bound beyond the context's.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// WithMaxRetries sets how many times a retryable call is retried (default 2; 0: never).
func WithMaxRetries(n int) Option {
	return func(c *Client) {
		if n >= 0 {
			c.maxRetries = n
		}
	}
}

// NewClient returns a client that authenticates with apiKey (sent as
// "Authorization: Bearer apiKey").
func NewClient(apiKey string, opts ...Option) *Client {
	c := &Client{
		apiKey:     apiKey,
		baseURL:    DefaultBaseURL,
		httpClient: &http.Client{},
		timeout:    defaultTimeout,
		maxRetries: defaultMaxRetries,
		sleep:      sleepCtx,
		discovery:  &discovery{},
	}
	if u := strings.TrimSpace(os.Getenv("HELIXFLOW_BASE_URL")); u != "" {
		c.baseURL = strings.TrimRight(u, "/")
	}
	for _, o := range opts {
		o(c)
	}
	c.bind()
	return c
}

// ForTenant returns a copy of c whose tenant-scoped calls act in tenant (e.g. the
// platform admin working in a tenant it created, or "public" for public models).
func (c *Client) ForTenant(tenant string) *Client {
	cp := *c
	cp.tenant = tenant
	cp.bind()
	return &cp
}

// BaseURL is the node's address this client talks to.
func (c *Client) BaseURL() string { return c.baseURL }

func (c *Client) bind() {
	c.Functions = &FunctionsService{c}
	c.Aliases = &AliasesService{c}
	c.Models = &ModelsService{c}
	c.Keys = &KeysService{c}
	c.AccessKeys = &AccessKeysService{c}
	c.Events = &EventsService{c}
	c.Tenants = &TenantsService{c}
	c.Usage = &UsageService{c}
	c.Dashboards = &DashboardsService{c}
}

// WhoAmI asks the node who the client's credential is (GET /api/v1/whoami): its
// tenant, role, subject and kind. The answer is asked once per client (and the copies
// ForTenant makes) and kept; a failure is not kept.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	d := c.discovery
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.me == nil {
		var me WhoAmI
		if err := c.getJSON(ctx, "/api/v1/whoami", nil, &me); err != nil {
			return nil, err
		}
		d.me = &me
	}
	me := *d.me
	return &me, nil
}

// Tenant is the tenant tenant-scoped calls act in: the one given with WithTenant or
// ForTenant, else the key's own, asked of the node once ([Client.WhoAmI]). Fails with
// ErrNoTenant, before any tenant-scoped request, for the platform admin key (which
// belongs to no tenant).
func (c *Client) Tenant(ctx context.Context) (string, error) {
	if c.tenant != "" {
		return c.tenant, nil
	}
	me, err := c.WhoAmI(ctx)
	if err != nil {
		return "", err
	}
	if me.Tenant == "" {
		return "", fmt.Errorf("%w: this credential (%s) belongs to no tenant: pass helixflow.WithTenant(name) or use client.ForTenant(name)", ErrNoTenant, me.Subject)
	}
	return me.Tenant, nil
}

// tenantPath returns "/api/v1/tenants/{tenant}" + suffix for a tenant-scoped call.
func (c *Client) tenantPath(ctx context.Context, call, suffix string) (string, error) {
	t, err := c.Tenant(ctx)
	if err != nil {
		return "", err
	}
	if t != "public" {
		if err := validName(call, "tenant", t); err != nil {
			return "", err
		}
	}
	return "/api/v1/tenants/" + t + suffix, nil
}

// request is one call to the node.
type request struct {
	method string
	path   string // with its query
	query  url.Values
	// body: JSON-encoded when jsonBody is set; else raw (bodyReader when streaming).
	jsonBody   any
	rawBody    []byte
	bodyReader io.Reader
	bodySize   int64 // of bodyReader; -1: unknown
	header     http.Header
	// idempotent: may be retried on 429/503 and network errors.
	idempotent bool
	// refusalsOnly: retried only when the node refused it (429/503), never after a
	// network failure or timeout, which may have reached the model (and been metered).
	refusalsOnly bool
}

func (c *Client) url(r *request) string {
	u := c.baseURL + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	return u
}

// do sends r (with retries when it is idempotent) and decodes a 2xx JSON answer into
// out (when out is not nil).
func (c *Client) do(ctx context.Context, r *request, out any) error {
	resp, body, err := c.roundTrip(ctx, r)
	if err != nil {
		return err
	}
	if out == nil || len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("helixflow: %s %s: decoding the answer: %w [request %s]", r.method, r.path, err, requestID(resp.Header))
	}
	return nil
}

// roundTrip sends r (retrying when it may) and returns a 2xx response with its body
// read, or the error.
func (c *Client) roundTrip(ctx context.Context, r *request) (*http.Response, []byte, error) {
	var payload []byte
	if r.jsonBody != nil {
		b, err := json.Marshal(r.jsonBody)
		if err != nil {
			return nil, nil, fmt.Errorf("helixflow: encoding the request: %w", err)
		}
		payload = b
	} else {
		payload = r.rawBody
	}
	for attempt := 0; ; attempt++ {
		resp, body, err := c.attempt(ctx, r, payload)
		if err == nil {
			return resp, body, nil
		}
		wait, retry := c.shouldRetry(ctx, r, attempt, err)
		if !retry {
			return nil, nil, err
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, nil, err
		}
	}
}

// attempt sends r once.
func (c *Client) attempt(ctx context.Context, r *request, payload []byte) (*http.Response, []byte, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.newHTTPRequest(ctx, r, payload)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, nil, &transportError{method: r.method, url: c.url(r), err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, &transportError{method: r.method, url: c.url(r), err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, apiError(resp, body)
	}
	return resp, body, nil
}

func (c *Client) newHTTPRequest(ctx context.Context, r *request, payload []byte) (*http.Request, error) {
	var body io.Reader
	if r.bodyReader != nil {
		body = r.bodyReader
	} else if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.url(r), body)
	if err != nil {
		return nil, fmt.Errorf("helixflow: %s %s: %w", r.method, r.path, err)
	}
	if r.bodyReader != nil {
		req.ContentLength = r.bodySize
		if r.bodySize == 0 {
			req.Body = http.NoBody
		}
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	if r.jsonBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "helixflow-go/"+Version)
	// The platform admin names the tenant of OpenAI calls as the organization; a
	// tenant's key ignores it (its own tenant applies).
	if strings.HasPrefix(r.path, "/v1/") && c.tenant != "" {
		req.Header.Set("OpenAI-Organization", c.tenant)
	}
	return req, nil
}

// transportError: the request got no HTTP answer (connection refused, reset, timeout).
type transportError struct {
	method, url string
	err         error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("helixflow: %s %s: %v (is the node running there? set HELIXFLOW_BASE_URL or WithBaseURL)", e.method, e.url, e.err)
}

func (e *transportError) Unwrap() error { return e.err }

// shouldRetry says whether (and after how long) a failed attempt is tried again.
func (c *Client) shouldRetry(ctx context.Context, r *request, attempt int, err error) (time.Duration, bool) {
	if !r.idempotent || attempt >= c.maxRetries || ctx.Err() != nil {
		return 0, false
	}
	wait := backoff(attempt)
	var ae *APIError
	var te *transportError
	switch {
	case errors.As(err, &ae):
		if ae.StatusCode != http.StatusTooManyRequests && ae.StatusCode != http.StatusServiceUnavailable {
			return 0, false
		}
		if ae.RetryAfter > maxRetryAfter {
			return 0, false
		}
		if ae.RetryAfter > 0 {
			wait = ae.RetryAfter
		}
	case errors.As(err, &te):
		if r.refusalsOnly {
			return 0, false
		}
		// Our own timeout or cancellation is not the network's fault.
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return 0, false
			}
		}
	default:
		return 0, false
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return 0, false
	}
	return wait, true
}

// backoff: exponential (0.5 s, 1 s, 2 s, ... at most 8 s) with full jitter on the
// upper half.
func backoff(attempt int) time.Duration {
	d := backoffBase << uint(attempt)
	if d > backoffMax || d <= 0 {
		d = backoffMax
	}
	half := d / 2
	return half + time.Duration(rand.Int63n(int64(half)+1))
}

// retryAfter reads Retry-After (seconds or an HTTP date) or retry-after-ms.
func retryAfter(h http.Header) time.Duration {
	if ms := h.Get("Retry-After-Ms"); ms != "" {
		if n, err := strconv.ParseFloat(ms, 64); err == nil && n >= 0 {
			return time.Duration(n * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// getJSON, putJSON, postJSON and del are the control plane's usual calls.
func (c *Client) getJSON(ctx context.Context, path string, query url.Values, out any) error {
	return c.do(ctx, &request{method: http.MethodGet, path: path, query: query, idempotent: true}, out)
}

func (c *Client) putJSON(ctx context.Context, path string, body, out any) error {
	return c.do(ctx, &request{method: http.MethodPut, path: path, jsonBody: body, idempotent: true}, out)
}

func (c *Client) postJSON(ctx context.Context, path string, body, out any, idempotent bool) error {
	if body == nil {
		body = struct{}{}
	}
	return c.do(ctx, &request{method: http.MethodPost, path: path, jsonBody: body, idempotent: idempotent}, out)
}

func (c *Client) del(ctx context.Context, path string, out any) error {
	return c.do(ctx, &request{method: http.MethodDelete, path: path, idempotent: true}, out)
}
