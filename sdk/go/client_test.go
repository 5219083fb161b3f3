package helixflow

// Tests of the client's own behaviour that need a server to misbehave on demand
// (retries, refusals, error shapes): an httptest server. Everything else is tested
// against a real node in e2e_test.go.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer answers with handler and counts requests.
func countingServer(t *testing.T, handler func(n int32, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *int32) {
	t.Helper()
	var n int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler(atomic.AddInt32(&n, 1), w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Helixflow-Request-Id", fmt.Sprintf("req-%d", status))
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, message)
}

// A 429 and then a 503, each with Retry-After: 1, are waited out and retried; the
// third attempt's answer is returned.
func TestRetriesHonourRetryAfterOn429And503(t *testing.T) {
	var seen []time.Time
	srv, n := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		seen = append(seen, time.Now())
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			writeError(w, 429, "rate_limited", "slow down")
		case 2:
			w.Header().Set("Retry-After", "1")
			writeError(w, 503, "capacity_exhausted", "busy")
		default:
			fmt.Fprint(w, `{"functions":[{"tenant":"acme","name":"echo","latest_version":3}]}`)
		}
	})
	c := NewClient("k", WithBaseURL(srv.URL), WithTenant("acme"))
	start := time.Now()
	fs, err := c.Functions.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(fs) != 1 || fs[0].Name != "echo" || fs[0].LatestVersion != 3 {
		t.Fatalf("List = %+v", fs)
	}
	if got := atomic.LoadInt32(n); got != 3 {
		t.Fatalf("%d requests, want 3 (two retries)", got)
	}
	for i := 1; i < len(seen); i++ {
		if gap := seen[i].Sub(seen[i-1]); gap < 950*time.Millisecond {
			t.Fatalf("retry %d came %v after the refusal; Retry-After asked for 1 s", i, gap)
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("took %v", took)
	}
}

// Retries stop after WithMaxRetries; the last error is returned, typed.
func TestRetriesAreBoundedAndTheLastErrorIsTyped(t *testing.T) {
	srv, n := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		writeError(w, 503, "store_unavailable", "the store is down")
	})
	c := NewClient("k", WithBaseURL(srv.URL), WithTenant("acme"), WithMaxRetries(3))
	_, err := c.Functions.Get(context.Background(), "echo")
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	if ae.StatusCode != 503 || ae.Code != "store_unavailable" || ae.Message != "the store is down" || ae.RequestID != "req-503" {
		t.Fatalf("APIError = %+v", ae)
	}
	if !IsUnavailable(err) || !errors.Is(err, ErrUnavailable) || IsNotFound(err) {
		t.Fatalf("sentinels do not match %v", err)
	}
	if got := atomic.LoadInt32(n); got != 4 {
		t.Fatalf("%d requests, want 1 + 3 retries", got)
	}
}

// Calls that may act (invoke, deploy, key creation, replay) are never retried.
func TestNonIdempotentCallsAreNotRetried(t *testing.T) {
	srv, n := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		writeError(w, 503, "capacity_exhausted", "busy")
	})
	c := NewClient("k", WithBaseURL(srv.URL), WithTenant("acme"), WithMaxRetries(3))
	ctx := context.Background()
	calls := map[string]func() error{
		"Invoke": func() error { _, err := c.Functions.Invoke(ctx, "echo", []byte(`{}`), nil); return err },
		"Deploy": func() error { _, err := c.Functions.Deploy(ctx, "echo", []byte("wasm"), nil); return err },
		"Keys.Create": func() error {
			_, err := c.Keys.Create(ctx, CreateKeyRequest{Name: "ci", Role: RoleInvoker})
			return err
		},
		"Events.Replay": func() error { _, err := c.Events.Replay(ctx, "ev-1"); return err },
	}
	for name, call := range calls {
		before := atomic.LoadInt32(n)
		if err := call(); !IsUnavailable(err) {
			t.Fatalf("%s: err = %v, want a 503", name, err)
		}
		if sent := atomic.LoadInt32(n) - before; sent != 1 {
			t.Fatalf("%s: %d requests, want 1 (no retry)", name, sent)
		}
	}
}

// A network failure (nothing listening) is retried for an idempotent call only.
func TestNetworkErrorsAreRetriedOnlyWhenIdempotent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			atomic.AddInt32(&accepted, 1)
			conn.Close() // a connection reset before any answer
		}
	}()
	defer ln.Close()
	c := NewClient("k", WithBaseURL("http://"+ln.Addr().String()), WithTenant("acme"), WithMaxRetries(2))
	c.sleep = func(context.Context, time.Duration) error { return nil }
	ctx := context.Background()
	if _, err := c.Functions.List(ctx); err == nil || !strings.Contains(err.Error(), "is the node running") {
		t.Fatalf("List: err = %v", err)
	}
	if got := atomic.LoadInt32(&accepted); got != 3 {
		t.Fatalf("idempotent List: %d connections, want 3 (1 + 2 retries)", got)
	}
	atomic.StoreInt32(&accepted, 0)
	if _, err := c.Functions.Invoke(ctx, "echo", []byte(`{}`), nil); err == nil {
		t.Fatal("Invoke succeeded against a closed connection")
	}
	if got := atomic.LoadInt32(&accepted); got != 1 {
		t.Fatalf("Invoke: %d connections, want 1 (never retried)", got)
	}
	// A chat completion may have reached the model before the connection broke: it is
	// retried only when the node refuses it (429/503), not after a network failure.
	atomic.StoreInt32(&accepted, 0)
	chat := ChatCompletionRequest{Model: "m", Messages: []ChatMessage{{Role: "user", Content: "hi"}}}
	if _, err := c.CreateChatCompletion(ctx, chat); err == nil {
		t.Fatal("CreateChatCompletion succeeded against a closed connection")
	}
	if got := atomic.LoadInt32(&accepted); got != 1 {
		t.Fatalf("CreateChatCompletion: %d connections, want 1 (not retried after a network failure)", got)
	}
}

// A Retry-After longer than a minute (e.g. a monthly budget) is not waited out.
func TestLongRetryAfterIsReturnedNotWaited(t *testing.T) {
	srv, n := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "86400")
		writeError(w, 429, "budget_exceeded", "monthly budget spent")
	})
	c := NewClient("k", WithBaseURL(srv.URL), WithTenant("acme"))
	_, err := c.Usage.Query(context.Background(), nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.RetryAfter != 24*time.Hour || !IsRateLimited(err) {
		t.Fatalf("err = %#v", err)
	}
	if got := atomic.LoadInt32(n); got != 1 {
		t.Fatalf("%d requests, want 1", got)
	}
}

// Missing or invalid arguments fail before any request, with a message naming them.
func TestBadInputFailsBeforeAnyRequest(t *testing.T) {
	srv, n := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request was sent: %s %s", r.Method, r.URL)
		writeError(w, 500, "unexpected", "no request expected")
	})
	c := NewClient("k", WithBaseURL(srv.URL), WithTenant("acme"))
	ctx := context.Background()
	cases := []struct {
		name, want string
		call       func() error
	}{
		{"chat without model", "Model is required", func() error {
			_, err := c.CreateChatCompletion(ctx, ChatCompletionRequest{Messages: []ChatMessage{{Role: "user", Content: "hi"}}})
			return err
		}},
		{"chat without messages", "Messages is required", func() error {
			_, err := c.CreateChatCompletion(ctx, ChatCompletionRequest{Model: "m"})
			return err
		}},
		{"stream without model", "Model is required", func() error {
			_, err := c.CreateChatCompletionStream(ctx, ChatCompletionRequest{})
			return err
		}},
		{"embeddings without input", "Input is required", func() error {
			_, err := c.CreateEmbeddings(ctx, EmbeddingRequest{Model: "m"})
			return err
		}},
		{"deploy without function", "function is required", func() error {
			_, err := c.Functions.Deploy(ctx, "", []byte("x"), nil)
			return err
		}},
		{"deploy with a path in the name", `"a/b" is invalid`, func() error {
			_, err := c.Functions.Deploy(ctx, "a/b", []byte("x"), nil)
			return err
		}},
		{"deploy of nothing", "component is empty", func() error {
			_, err := c.Functions.Deploy(ctx, "echo", nil, nil)
			return err
		}},
		{"deploy of a missing file", "no such file", func() error {
			_, err := c.Functions.DeployFile(ctx, "echo", "/no/such/file.wasm", nil)
			return err
		}},
		{"push without model", "model is required", func() error {
			_, err := c.Models.PushFile(ctx, "", "x.onnx", nil)
			return err
		}},
		{"async invoke of non-JSON", "payload must be JSON", func() error {
			_, err := c.Functions.InvokeAsync(ctx, "echo", []byte("not json"), nil)
			return err
		}},
		{"key without role", "Role is required", func() error {
			_, err := c.Keys.Create(ctx, CreateKeyRequest{Name: "ci"})
			return err
		}},
		{"revoke without prefix", "prefix is required", func() error {
			_, err := c.Keys.Revoke(ctx, "")
			return err
		}},
		{"replay without id", "id is required", func() error {
			_, err := c.Events.Replay(ctx, "")
			return err
		}},
		{"alias at version 0", "version must be a version number", func() error {
			_, err := c.Aliases.Set(ctx, "echo", "live", 0)
			return err
		}},
		{"tenant with capitals", `"Acme" is invalid`, func() error {
			_, err := c.Tenants.Create(ctx, "Acme", nil)
			return err
		}},
		{"dashboard without metrics", "Metrics is required", func() error {
			_, err := c.Dashboards.Create(ctx, DashboardSpec{Name: "x"})
			return err
		}},
	}
	for _, tc := range cases {
		err := tc.call()
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		if tc.name != "deploy of a missing file" && !IsInvalidArgument(err) {
			t.Fatalf("%s: %v does not match ErrInvalidArgument", tc.name, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %q does not say %q", tc.name, err, tc.want)
		}
	}
	if got := atomic.LoadInt32(n); got != 0 {
		t.Fatalf("%d requests sent", got)
	}
	// Without a tenant, the platform admin key (whoami: no tenant) cannot be placed in
	// one: only whoami is sent.
	var paths []string
	srv2, _ := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		fmt.Fprint(w, `{"tenant":null,"role":"admin","subject":"platform-admin","via":"admin_key"}`)
	})
	admin := NewClient("admin", WithBaseURL(srv2.URL))
	for _, call := range []func() error{
		func() error { _, err := admin.Functions.List(ctx); return err },
		func() error { _, err := admin.Keys.List(ctx); return err },
	} {
		if err := call(); !errors.Is(err, ErrNoTenant) || !strings.Contains(err.Error(), "WithTenant") {
			t.Fatalf("no tenant: %v", err)
		}
	}
	if strings.Join(paths, " ") != "/api/v1/whoami" {
		t.Fatalf("requests: %v", paths)
	}
}

// Without WithTenant, the key's tenant is asked once (concurrent calls share it, the
// copies ForTenant makes too); a failed whoami is not kept; WithTenant sends none.
func TestTenantDiscoveredOnceWithWhoAmI(t *testing.T) {
	ctx := context.Background()
	var whoamis, tenantCalls int32
	srv, _ := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/whoami":
			if atomic.AddInt32(&whoamis, 1) == 1 {
				writeError(w, 503, "store_unavailable", "try later")
				return
			}
			time.Sleep(50 * time.Millisecond)
			fmt.Fprint(w, `{"tenant":"acme","role":"developer","subject":"hfk_ab","via":"api_key"}`)
		case "/api/v1/tenants/acme/functions":
			atomic.AddInt32(&tenantCalls, 1)
			fmt.Fprint(w, `{"functions":[]}`)
		default:
			writeError(w, 404, "not_found", r.URL.Path)
		}
	})
	c := NewClient("k", WithBaseURL(srv.URL), WithMaxRetries(0))
	if _, err := c.Functions.List(ctx); !IsUnavailable(err) {
		t.Fatalf("a failed whoami: %v", err)
	}
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() { _, err := c.Functions.List(ctx); errs <- err }()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	me, err := c.ForTenant("").WhoAmI(ctx)
	if err != nil || *me != (WhoAmI{Tenant: "acme", Role: "developer", Subject: "hfk_ab", Via: "api_key"}) {
		t.Fatalf("WhoAmI: %+v, %v", me, err)
	}
	if got := atomic.LoadInt32(&whoamis); got != 2 {
		t.Fatalf("%d whoami requests, want 2 (one failed, one kept)", got)
	}
	if got := atomic.LoadInt32(&tenantCalls); got != 8 {
		t.Fatalf("%d tenant calls", got)
	}
	if _, err := NewClient("k", WithBaseURL(srv.URL), WithTenant("acme")).Functions.List(ctx); err != nil {
		t.Fatal(err)
	}
	if got := atomic.LoadInt32(&whoamis); got != 2 {
		t.Fatalf("WithTenant sent a whoami (%d)", got)
	}
}

// Errors in each of the node's shapes (HelixFlow, OpenAI, AWS) become APIErrors.
func TestErrorShapes(t *testing.T) {
	srv, _ := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/"):
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":{"message":"The model `+"`nope`"+` does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}`)
		case strings.HasPrefix(r.URL.Path, "/2015-03-31/"):
			w.Header().Set("X-Amzn-Errortype", "ResourceNotFoundException")
			w.Header().Set("X-Amzn-Requestid", "aws-req")
			w.WriteHeader(404)
			fmt.Fprint(w, `{"Type":"User","message":"Function not found: arn:..."}`)
		case strings.HasPrefix(r.URL.Path, "/invoke/"):
			w.WriteHeader(422)
			fmt.Fprint(w, `{"error":{"code":"function_error","message":"boom","error_type":"ChaosError"}}`)
		default:
			w.WriteHeader(502)
			fmt.Fprint(w, `<html>bad gateway</html>`)
		}
	})
	c := NewClient("k", WithBaseURL(srv.URL), WithTenant("acme"))
	ctx := context.Background()
	check := func(err error, status int, code, msg, errType string) {
		t.Helper()
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Fatalf("err = %v", err)
		}
		if ae.StatusCode != status || ae.Code != code || !strings.Contains(ae.Message, msg) || ae.ErrorType != errType {
			t.Fatalf("APIError = %+v", ae)
		}
	}
	_, err := c.CreateChatCompletion(ctx, ChatCompletionRequest{Model: "nope", Messages: []ChatMessage{{Role: "user", Content: "x"}}})
	check(err, 404, "model_not_found", "does not exist", "invalid_request_error")
	_, err = c.Functions.InvokeAsync(ctx, "echo", []byte(`{}`), nil)
	check(err, 404, "ResourceNotFoundException", "Function not found", "ResourceNotFoundException")
	_, err = c.Functions.Invoke(ctx, "echo", []byte(`{}`), nil)
	check(err, 422, "function_error", "boom", "ChaosError")
	_, err = c.Tenants.Get(ctx, "acme")
	check(err, 502, "bad_gateway", "bad gateway", "")
}

// Server-sent events: comments, multi-line data, CRLF, an error event mid-stream.
func TestStreamParsing(t *testing.T) {
	srv, _ := countingServer(t, func(n int32, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if n == 1 {
			fmt.Fprint(w, ": keep-alive\r\n\r\n")
			fmt.Fprint(w, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\r\n\r\n")
			fmt.Fprint(w, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\n")
			fmt.Fprint(w, "data: \"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n")
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		fmt.Fprint(w, "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n")
		fmt.Fprint(w, "data: {\"error\":{\"message\":\"decoding failed\",\"type\":\"server_error\",\"code\":\"generation_failed\"}}\n\n")
	})
	c := NewClient("k", WithBaseURL(srv.URL))
	req := ChatCompletionRequest{Model: "m", Messages: []ChatMessage{{Role: "user", Content: "hi"}}}
	s, err := c.CreateChatCompletionStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	var finish string
	for s.Next() {
		ch := s.Current()
		text += ch.Choices[0].Delta.Content
		if f := ch.Choices[0].FinishReason; f != nil {
			finish = *f
		}
	}
	s.Close()
	if s.Err() != nil || text != "Hello" || finish != "stop" {
		t.Fatalf("text %q finish %q err %v", text, finish, s.Err())
	}
	s, err = c.CreateChatCompletionStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var chunks int
	for range s.Channel() {
		chunks++
	}
	var ae *APIError
	if chunks != 1 || !errors.As(s.Err(), &ae) || ae.Code != "generation_failed" {
		t.Fatalf("chunks %d err %v", chunks, s.Err())
	}
}
