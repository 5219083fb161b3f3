package helixflow

// End-to-end tests against a real `helixflow serve` (tests/e2e/sdk_go.rs starts one,
// with tenant HELIXFLOW_TEST_TENANT serving the chat model smollm2-135m-instruct, and
// runs `go test` with these variables set):
//
//	HELIXFLOW_SDK_E2E=1        run them (without it they are skipped, saying so)
//	HELIXFLOW_BASE_URL         the node
//	HELIXFLOW_ADMIN_KEY        the platform admin key
//	HELIXFLOW_TEST_TENANT      a tenant with the chat model
//	HELIXFLOW_TEST_KEY         an admin key of that tenant
//	HELIXFLOW_GUEST_DIR        built guests: hello.wasm, echo_event.wasm, chaos.wasm, embed_minilm.wasm
//	HELIXFLOW_MODELS_DIR       test models: minilm-int8.onnx, identity_fp32.onnx
//
// With HELIXFLOW_SDK_E2E=1, a missing variable fails the test.

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ChatModel is the chat model the node serves in the test tenant.
const ChatModel = "smollm2-135m-instruct"

type e2eEnv struct {
	baseURL, adminKey, tenant, key, guests, models string
}

func e2e(t *testing.T) e2eEnv {
	t.Helper()
	if os.Getenv("HELIXFLOW_SDK_E2E") != "1" {
		t.Skip("end-to-end test: needs a node; set HELIXFLOW_SDK_E2E=1 and the variables listed in e2e_test.go (tests/e2e/sdk_go.rs does)")
	}
	need := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			t.Fatalf("%s is not set: HELIXFLOW_SDK_E2E=1 needs it (run the suite through tests/e2e/sdk_go.rs)", name)
		}
		return v
	}
	return e2eEnv{
		baseURL:  need("HELIXFLOW_BASE_URL"),
		adminKey: need("HELIXFLOW_ADMIN_KEY"),
		tenant:   need("HELIXFLOW_TEST_TENANT"),
		key:      need("HELIXFLOW_TEST_KEY"),
		guests:   need("HELIXFLOW_GUEST_DIR"),
		models:   need("HELIXFLOW_MODELS_DIR"),
	}
}

// client is the tenant admin's client, tenant named explicitly.
func (e e2eEnv) client() *Client {
	return NewClient(e.key, WithBaseURL(e.baseURL), WithTenant(e.tenant))
}

func (e e2eEnv) guest(name string) string {
	return filepath.Join(e.guests, strings.ReplaceAll(name, "-", "_")+".wasm")
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls check every 100 ms until it returns true or d passes.
func eventually(t *testing.T, d time.Duration, what string, check func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := check()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (last error: %v)", what, d, lastErr)
}

// Deploy from a file (progress reported), from bytes with a config, from a reader of
// unknown size; list, get, config, versions, aliases, invoke sync and async, logs,
// delete.
func TestE2EFunctionsDeployInvokeAndManage(t *testing.T) {
	env := e2e(t)
	ctx := testContext(t, 3*time.Minute)
	c := env.client()

	path := env.guest("echo-event")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var sent, total int64
	var calls int
	d, err := c.Functions.DeployFile(ctx, "echo-event", path, &DeployOptions{
		Alias: "live", Description: "from the Go SDK",
		Progress: func(s, tot int64) { sent, total = s, tot; calls++ },
	})
	if err != nil {
		t.Fatalf("DeployFile: %v", err)
	}
	if d.Version.Version != 1 || d.Version.Size != st.Size() || len(d.Version.SHA256) != 64 || !d.Version.Exports.Event {
		t.Fatalf("deployed %+v", d.Version)
	}
	if d.Version.Description != "from the Go SDK" || d.Alias == nil || d.Alias.Name != "live" || d.Alias.Version != 1 {
		t.Fatalf("deployment %+v alias %+v", d.Version, d.Alias)
	}
	if calls == 0 || sent != st.Size() || total != st.Size() {
		t.Fatalf("progress: %d calls, last %d/%d, file %d bytes", calls, sent, total, st.Size())
	}

	hello, err := os.ReadFile(env.guest("hello"))
	if err != nil {
		t.Fatal(err)
	}
	d, err = c.Functions.Deploy(ctx, "hello-go", hello, &DeployOptions{Config: &FunctionConfig{MemoryMB: 64, Public: true, Env: map[string]string{"GREETING": "hi"}}})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if !d.Version.Exports.HTTP || d.Version.Exports.Event || d.Alias != nil {
		t.Fatalf("hello-go: %+v", d)
	}
	cfg, err := c.Functions.Config(ctx, "hello-go")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryMB != 64 || !cfg.Public || len(cfg.Env) != 1 {
		t.Fatalf("config %+v", cfg)
	}
	cfg.TimeoutMs = 1500
	f, err := c.Functions.SetConfig(ctx, "hello-go", *cfg)
	if err != nil || f.Config.TimeoutMs != 1500 || f.Config.MemoryMB != 64 {
		t.Fatalf("SetConfig: %+v, %v", f, err)
	}
	// Past the tenant's limits: refused with the node's code.
	_, err = c.Functions.SetConfig(ctx, "hello-go", FunctionConfig{MemoryMB: 1 << 20})
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Code != "invalid_config" {
		t.Fatalf("SetConfig over the limit: %v", err)
	}

	fs, err := c.Functions.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fs {
		names[f.Name] = true
	}
	if !names["echo-event"] || !names["hello-go"] {
		t.Fatalf("List: %v", names)
	}

	// A second version from a reader of unknown size (sent chunked).
	echo, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err = c.Functions.DeployReader(ctx, "echo-event", bytes.NewReader(echo), -1, nil)
	if err != nil || d.Version.Version != 2 {
		t.Fatalf("DeployReader: %+v, %v", d, err)
	}
	details, err := c.Functions.Get(ctx, "echo-event")
	if err != nil {
		t.Fatal(err)
	}
	if details.Function.LatestVersion != 2 || len(details.Versions) != 2 || len(details.Aliases) != 1 {
		t.Fatalf("Get: %+v", details)
	}
	a, err := c.Aliases.Set(ctx, "echo-event", "live", 2)
	if err != nil || a.Version != 2 {
		t.Fatalf("Aliases.Set: %+v, %v", a, err)
	}
	a, err = c.Aliases.Rollback(ctx, "echo-event", "live")
	if err != nil || a.Version != 1 {
		t.Fatalf("Aliases.Rollback: %+v, %v", a, err)
	}
	if _, err := c.Aliases.Set(ctx, "echo-event", "canary", 2); err != nil {
		t.Fatal(err)
	}
	as, err := c.Aliases.List(ctx, "echo-event")
	if err != nil || len(as) != 2 {
		t.Fatalf("Aliases.List: %+v, %v", as, err)
	}
	if err := c.Aliases.Delete(ctx, "echo-event", "canary"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Aliases.Get(ctx, "echo-event", "canary"); !IsNotFound(err) {
		t.Fatalf("deleted alias: %v", err)
	}

	// Synchronous: the live alias (version 1) runs; then version 2 by qualifier.
	inv, err := c.Functions.Invoke(ctx, "echo-event", []byte(`{"hello":"sdk"}`), nil)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var out struct {
		Echo      string `json:"echo"`
		RequestID string `json:"request_id"`
		Version   int    `json:"version"`
	}
	if err := inv.JSON(&out); err != nil {
		t.Fatalf("%s: %v", inv.Payload, err)
	}
	if out.Echo != `{"hello":"sdk"}` || inv.Version != 1 || out.Version != 1 || out.RequestID != inv.RequestID || inv.RequestID == "" {
		t.Fatalf("Invoke: %s (version %d, request %s)", inv.Payload, inv.Version, inv.RequestID)
	}
	inv, err = c.Functions.Invoke(ctx, "echo-event", []byte(`{}`), &InvokeOptions{Qualifier: "2"})
	if err != nil || inv.Version != 2 {
		t.Fatalf("Invoke @2: %+v, %v", inv, err)
	}
	// A handled error of the function: 422 function_error with its type.
	_, err = c.Functions.Invoke(ctx, "echo-event", []byte("fail"), nil)
	if !errors.As(err, &ae) || ae.StatusCode != 422 || ae.Code != "function_error" || ae.ErrorType != "RequestedFailure" {
		t.Fatalf("Invoke fail: %v", err)
	}

	// Asynchronous: accepted, then run in the background (its attempt's request id is
	// the event id; the function logs it).
	ev, err := c.Functions.InvokeAsync(ctx, "echo-event", []byte(`{"async":true}`), nil)
	if err != nil {
		t.Fatalf("InvokeAsync: %v", err)
	}
	if ev.ID == "" || ev.Version != 1 {
		t.Fatalf("InvokeAsync: %+v", ev)
	}
	eventually(t, 30*time.Second, "the Event invocation ran", func() (bool, error) {
		logs, err := c.Functions.Logs(ctx, "echo-event", 100)
		for _, l := range logs {
			if l.RequestID == ev.ID && l.Outcome == "ok" && strings.Contains(l.Stderr, ev.ID) {
				return true, nil
			}
		}
		return false, err
	})
	// It succeeded, so it leaves the queue (just after its log record is written): it
	// is then neither pending nor failed.
	eventually(t, 30*time.Second, "the finished event left the queue", func() (bool, error) {
		_, err := c.Events.Get(ctx, ev.ID)
		if IsNotFound(err) {
			return true, nil
		}
		return false, err
	})

	if err := c.Functions.Delete(ctx, "hello-go"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Functions.Get(ctx, "hello-go"); !IsNotFound(err) {
		t.Fatalf("deleted function: %v", err)
	}
}

// A failing Event invocation lands in the failed events; replay runs it again, once.
func TestE2EFailedEventIsListedAndReplayed(t *testing.T) {
	env := e2e(t)
	ctx := testContext(t, 2*time.Minute)
	c := env.client()
	_, err := c.Functions.DeployFile(ctx, "chaos", env.guest("chaos"), &DeployOptions{
		Config: &FunctionConfig{AsyncInvoke: &AsyncConfig{MaxRetries: Int(0)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := c.Functions.InvokeAsync(ctx, "chaos", []byte(`"error"`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var failed *Event
	eventually(t, 30*time.Second, "the event failed", func() (bool, error) {
		e, err := c.Events.Get(ctx, ev.ID)
		if err == nil && e.Status == "failed" {
			failed = e
			return true, nil
		}
		return false, err
	})
	if failed.Condition != "RetriesExhausted" || failed.LastError == nil || failed.LastError.ErrorType != "ChaosError" || failed.Function != "chaos" {
		t.Fatalf("failed event %+v", failed)
	}
	if p, err := failed.Payload(); err != nil || string(p) != `"error"` {
		t.Fatalf("payload %q, %v", p, err)
	}
	list, err := c.Events.List(ctx, &EventListOptions{Status: "failed", Function: "chaos"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != ev.ID {
		t.Fatalf("Events.List: %+v", list)
	}
	r, err := c.Events.Replay(ctx, ev.ID)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if r.ID == "" || r.ID == ev.ID || r.ReplayOf != ev.ID {
		t.Fatalf("Replay: %+v", r)
	}
	_, err = c.Events.Replay(ctx, ev.ID)
	var ae *APIError
	if !IsConflict(err) || !errors.As(err, &ae) || ae.Code != "already_replayed" {
		t.Fatalf("second Replay: %v", err)
	}
	eventually(t, 30*time.Second, "the replay failed too", func() (bool, error) {
		e, err := c.Events.Get(ctx, r.ID)
		return err == nil && e.Status == "failed" && e.Source == "replay:"+ev.ID, err
	})
	orig, err := c.Events.Get(ctx, ev.ID)
	if err != nil || orig.ReplayedAs != r.ID {
		t.Fatalf("the original after its replay: %+v, %v", orig, err)
	}
}

// Push models (a file with progress and a serve route, bytes), read and configure
// them, embed through the pushed model, delete one.
func TestE2EModelsPushAndEmbeddings(t *testing.T) {
	env := e2e(t)
	ctx := testContext(t, 3*time.Minute)
	c := env.client()
	if _, err := c.Functions.DeployFile(ctx, "embed-minilm", env.guest("embed-minilm"), nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(env.models, "minilm-int8.onnx")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	serve := &ModelServe{Kind: "embeddings", Function: "embed-minilm"}
	v, err := c.Models.PushFile(ctx, "all-minilm-l6-v2", path, &PushOptions{
		Config:   &ModelConfig{Serve: serve},
		Progress: func(s, _ int64) { sent = s },
	})
	if err != nil {
		t.Fatalf("PushFile: %v", err)
	}
	if v.Version != 1 || v.Size != st.Size() || sent != st.Size() || len(v.SHA256) != 64 || len(v.Signature) < 10 {
		t.Fatalf("pushed %+v (progress %d)", v, sent)
	}
	m, err := c.Models.SetConfig(ctx, "all-minilm-l6-v2", ModelConfig{Serve: serve, MaxBatch: 8, MaxDelayUs: 1000})
	if err != nil || m.Config.MaxBatch != 8 || m.Config.Serve == nil || m.Config.Serve.Function != "embed-minilm" {
		t.Fatalf("SetConfig: %+v, %v", m, err)
	}
	emb, err := c.CreateEmbeddings(ctx, EmbeddingRequest{Model: "all-minilm-l6-v2", Input: []string{"edge inference", "in a sandbox"}})
	if err != nil {
		t.Fatalf("CreateEmbeddings: %v", err)
	}
	if len(emb.Data) != 2 || len(emb.Data[0].Embedding) != 384 || emb.Data[1].Index != 1 || emb.Usage.PromptTokens <= 0 {
		t.Fatalf("embeddings: %d vectors, usage %+v", len(emb.Data), emb.Usage)
	}
	var dot float64
	for i, x := range emb.Data[0].Embedding {
		dot += float64(x) * float64(emb.Data[1].Embedding[i])
	}
	if dot > 0.999 {
		t.Fatalf("two different texts have the same embedding (cosine %f)", dot)
	}

	identity, err := os.ReadFile(filepath.Join(env.models, "identity_fp32.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Models.Push(ctx, "identity", identity, &PushOptions{Description: "tiny"}); err != nil {
		t.Fatalf("Push: %v", err)
	}
	// Not a model ONNX Runtime can load: refused with a reason.
	_, err = c.Models.Push(ctx, "identity", []byte("not an onnx file"), nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Code != "invalid_model" {
		t.Fatalf("Push of garbage: %v", err)
	}
	models, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range models {
		names[m.Name] = true
	}
	if !names["identity"] || !names["all-minilm-l6-v2"] || !names[ChatModel] {
		t.Fatalf("Models.List: %v", names)
	}
	md, err := c.Models.Get(ctx, "identity")
	if err != nil || md.Model.LatestVersion != 1 || len(md.Versions) != 1 || md.Versions[0].Description != "tiny" {
		t.Fatalf("Models.Get: %+v, %v", md, err)
	}
	mv, err := c.Models.Version(ctx, "identity", 1)
	if err != nil || mv.Version.SHA256 != md.Versions[0].SHA256 {
		t.Fatalf("Models.Version: %+v, %v", mv, err)
	}
	n, err := c.Models.Delete(ctx, "identity")
	if err != nil || n != 1 {
		t.Fatalf("Models.Delete: %d, %v", n, err)
	}
	if _, err := c.Models.Get(ctx, "identity"); !IsNotFound(err) {
		t.Fatalf("deleted model: %v", err)
	}
}

// Chat completions with SmolLM2, whole and streamed: greedy decoding gives the same
// text both ways.
func TestE2EChatCompletionWholeAndStreamed(t *testing.T) {
	env := e2e(t)
	ctx := testContext(t, 3*time.Minute)
	c := env.client()
	req := ChatCompletionRequest{
		Model:       ChatModel,
		Temperature: Float64(0),
		MaxTokens:   24,
		Messages:    []ChatMessage{{Role: "user", Content: "What is the capital of France?"}},
	}
	whole, err := c.CreateChatCompletion(ctx, req)
	if err != nil {
		t.Fatalf("CreateChatCompletion: %v", err)
	}
	if len(whole.Choices) != 1 || whole.Model != ChatModel || whole.Object != "chat.completion" {
		t.Fatalf("completion %+v", whole)
	}
	answer := whole.Choices[0].Message.Content
	if !strings.Contains(answer, "Paris") || whole.Choices[0].Message.Role != "assistant" {
		t.Fatalf("answer %q", answer)
	}
	if whole.Usage == nil || whole.Usage.PromptTokens <= 0 || whole.Usage.CompletionTokens <= 0 {
		t.Fatalf("usage %+v", whole.Usage)
	}

	req.StreamOptions = &StreamOptions{IncludeUsage: true}
	stream, err := c.CreateChatCompletionStream(ctx, req)
	if err != nil {
		t.Fatalf("CreateChatCompletionStream: %v", err)
	}
	defer stream.Close()
	var text strings.Builder
	var chunks int
	var finish string
	var usage *Usage
	for stream.Next() {
		ch := stream.Current()
		chunks++
		if ch.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %+v", ch)
		}
		if ch.Usage != nil {
			usage = ch.Usage
		}
		for _, choice := range ch.Choices {
			text.WriteString(choice.Delta.Content)
			if choice.FinishReason != nil {
				finish = *choice.FinishReason
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if text.String() != answer {
		t.Fatalf("streamed %q, whole %q", text.String(), answer)
	}
	if chunks < 3 || finish != whole.Choices[0].FinishReason || stream.RequestID() == "" {
		t.Fatalf("%d chunks, finish %q (whole: %q)", chunks, finish, whole.Choices[0].FinishReason)
	}
	if usage == nil || usage.CompletionTokens != whole.Usage.CompletionTokens {
		t.Fatalf("streamed usage %+v, whole %+v", usage, whole.Usage)
	}

	// An unknown model: OpenAI's code, typed.
	_, err = c.CreateChatCompletion(ctx, ChatCompletionRequest{Model: "no-such-model", Messages: req.Messages})
	var ae *APIError
	if !IsNotFound(err) || !errors.As(err, &ae) || ae.Code != "model_not_found" {
		t.Fatalf("unknown model: %v", err)
	}
}

// pathRecorder is an http.RoundTripper that records the path of every request.
type pathRecorder struct {
	mu    sync.Mutex
	paths []string
}

func (p *pathRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.paths = append(p.paths, r.URL.Path)
	p.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (p *pathRecorder) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, q := range p.paths {
		if q == path {
			n++
		}
	}
	return n
}

// The key's tenant is discovered (GET /api/v1/whoami, once per client) when none is
// given, even in a tenant that serves no model; the platform admin key names one.
func TestE2ETenantDiscovery(t *testing.T) {
	env := e2e(t)
	ctx := testContext(t, time.Minute)
	rec := &pathRecorder{}
	c := NewClient(env.key, WithBaseURL(env.baseURL), WithHTTPClient(&http.Client{Transport: rec}))
	if _, err := c.Functions.DeployFile(ctx, "go-found", env.guest("hello"), nil); err != nil {
		t.Fatalf("deploy without a tenant: %v", err)
	}
	fs, err := c.Functions.List(ctx)
	if err != nil || !hasFunction(fs, "go-found") {
		t.Fatalf("list without a tenant: %+v, %v", fs, err)
	}
	me, err := c.WhoAmI(ctx)
	if err != nil || me.Tenant != env.tenant || me.Role != "admin" || me.Via != "api_key" || me.Subject == "" || me.Subject == "platform-admin" {
		t.Fatalf("WhoAmI: %+v, %v", me, err)
	}
	if tenant, err := c.Tenant(ctx); err != nil || tenant != env.tenant {
		t.Fatalf("discovered %q, %v; want %q", tenant, err, env.tenant)
	}
	if n := rec.count("/api/v1/whoami"); n != 1 {
		t.Fatalf("%d whoami requests: %v", n, rec.paths)
	}
	if rec.count("/api/v1/tenants/"+env.tenant+"/functions/go-found/versions") != 1 {
		t.Fatalf("the deploy went elsewhere: %v", rec.paths)
	}

	// The platform admin: no tenant of its own, so nothing tenant-scoped is sent.
	rec = &pathRecorder{}
	admin := NewClient(env.adminKey, WithBaseURL(env.baseURL), WithHTTPClient(&http.Client{Transport: rec}))
	if _, err := admin.Functions.List(ctx); !errors.Is(err, ErrNoTenant) || !strings.Contains(err.Error(), "WithTenant") {
		t.Fatalf("admin without a tenant: %v", err)
	}
	if len(rec.paths) != 1 || rec.paths[0] != "/api/v1/whoami" {
		t.Fatalf("admin without a tenant sent %v", rec.paths)
	}
	if me, err := admin.WhoAmI(ctx); err != nil || *me != (WhoAmI{Role: "admin", Subject: "platform-admin", Via: "admin_key"}) {
		t.Fatalf("admin's WhoAmI: %+v, %v", me, err)
	}
	models, err := admin.ForTenant(env.tenant).ListOpenAIModels(ctx)
	if err != nil || len(models) == 0 || models[0].OwnedBy != env.tenant {
		t.Fatalf("admin's /v1/models of %s: %+v, %v", env.tenant, models, err)
	}

	// A fresh tenant serving no model: its key still finds its tenant.
	name := "go-bare-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := admin.Tenants.Create(ctx, name, nil); err != nil {
		t.Fatal(err)
	}
	k, err := admin.ForTenant(name).Keys.Create(ctx, CreateKeyRequest{Name: "go-bare", Role: "developer"})
	if err != nil {
		t.Fatal(err)
	}
	bare := NewClient(k.Key, WithBaseURL(env.baseURL))
	if fs, err := bare.Functions.List(ctx); err != nil || len(fs) != 0 {
		t.Fatalf("a fresh tenant's functions: %+v, %v", fs, err)
	}
	if me, err := bare.WhoAmI(ctx); err != nil || me.Tenant != name || me.Role != "developer" {
		t.Fatalf("a fresh tenant's WhoAmI: %+v, %v", me, err)
	}
}

func hasFunction(fs []Function, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// API keys: created (secret once), listed, used (a viewer reads but cannot deploy:
// 403), revoked (then 401); access keys likewise.
func TestE2EKeysCreateUseRevoke(t *testing.T) {
	env := e2e(t)
	ctx := testContext(t, time.Minute)
	c := env.client()
	k, err := c.Keys.Create(ctx, CreateKeyRequest{Name: "go-viewer", Role: RoleViewer, ExpiresInSecs: 3600})
	if err != nil {
		t.Fatalf("Keys.Create: %v", err)
	}
	if !strings.HasPrefix(k.Key, "hfk_"+k.Prefix) || k.Role != RoleViewer || k.ExpiresAt == nil || k.Revoked {
		t.Fatalf("created %+v", k)
	}
	viewer := NewClient(k.Key, WithBaseURL(env.baseURL), WithTenant(env.tenant))
	if _, err := viewer.Functions.List(ctx); err != nil {
		t.Fatalf("a viewer lists functions: %v", err)
	}
	_, err = viewer.Functions.DeployFile(ctx, "not-allowed", env.guest("hello"), nil)
	var ae *APIError
	if !IsForbidden(err) || !errors.As(err, &ae) || ae.StatusCode != 403 || ae.Code != "forbidden" || ae.RequestID == "" {
		t.Fatalf("a viewer deploys: %v", err)
	}
	keys, err := c.Keys.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range keys {
		found = found || (x.Prefix == k.Prefix && x.Name == "go-viewer")
	}
	if !found {
		t.Fatalf("Keys.List: %+v", keys)
	}
	r, err := c.Keys.Revoke(ctx, k.Prefix)
	if err != nil || !r.Revoked || r.Prefix != k.Prefix {
		t.Fatalf("Keys.Revoke: %+v, %v", r, err)
	}
	_, err = viewer.Functions.List(ctx)
	if !IsUnauthorized(err) || !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Fatalf("a revoked key: %v", err)
	}
	// A key that never existed: 401 too.
	_, err = NewClient("hfk_000000000000_nope", WithBaseURL(env.baseURL), WithTenant(env.tenant)).Functions.List(ctx)
	if !IsUnauthorized(err) {
		t.Fatalf("an unknown key: %v", err)
	}

	ak, err := c.AccessKeys.Create(ctx, CreateKeyRequest{Name: "go-sigv4"})
	if err != nil {
		t.Fatalf("AccessKeys.Create: %v", err)
	}
	if !strings.HasPrefix(ak.AccessKeyID, "HFAK") || len(ak.SecretAccessKey) != 40 || ak.Role != RoleInvoker || len(ak.AccountID) != 12 {
		t.Fatalf("access key %+v", ak)
	}
	aks, err := c.AccessKeys.List(ctx)
	if err != nil || len(aks) != 1 || aks[0].AccessKeyID != ak.AccessKeyID {
		t.Fatalf("AccessKeys.List: %+v, %v", aks, err)
	}
	rk, err := c.AccessKeys.Revoke(ctx, ak.AccessKeyID)
	if err != nil || !rk.Revoked {
		t.Fatalf("AccessKeys.Revoke: %+v, %v", rk, err)
	}
}

// Typed errors from a real node: 404 with code and request id; bad input refused
// before any request (the node never sees it).
func TestE2ETypedErrors(t *testing.T) {
	env := e2e(t)
	ctx := testContext(t, time.Minute)
	c := env.client()
	_, err := c.Functions.Get(ctx, "no-such-function")
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != "not_found" || ae.Message == "" || ae.RequestID == "" {
		t.Fatalf("404: %#v", err)
	}
	if !IsNotFound(err) || !errors.Is(err, ErrNotFound) || IsForbidden(err) {
		t.Fatalf("404 sentinels: %v", err)
	}
	_, err = c.Functions.Invoke(ctx, "no-such-function", []byte(`{}`), nil)
	if !IsNotFound(err) {
		t.Fatalf("invoking a missing function: %v", err)
	}
	_, err = c.Functions.InvokeAsync(ctx, "no-such-function", []byte(`{}`), nil)
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != "ResourceNotFoundException" {
		t.Fatalf("queueing for a missing function: %v", err)
	}
	// Another tenant's resources: 403, whether they exist or not.
	_, err = c.ForTenant("someone-else").Functions.List(ctx)
	if !IsForbidden(err) {
		t.Fatalf("another tenant: %v", err)
	}
	// Refused before any request.
	_, err = c.Functions.Deploy(ctx, "", []byte("x"), nil)
	if !IsInvalidArgument(err) || errors.As(err, &ae) && ae.StatusCode != 0 {
		t.Fatalf("no function name: %v", err)
	}
	_, err = c.CreateChatCompletion(ctx, ChatCompletionRequest{Model: ChatModel})
	if !IsInvalidArgument(err) || !strings.Contains(err.Error(), "Messages is required") {
		t.Fatalf("no messages: %v", err)
	}
}

// Tenants (platform admin), usage and dashboards.
func TestE2ETenantsUsageAndDashboards(t *testing.T) {
	env := e2e(t)
	ctx := testContext(t, 2*time.Minute)
	admin := NewClient(env.adminKey, WithBaseURL(env.baseURL))
	name := "go-made-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	tn, err := admin.Tenants.Create(ctx, name, &TenantLimits{MaxMemoryMB: 128, MaxTimeoutMs: 5000})
	if err != nil || tn.Name != name || tn.Limits.MaxMemoryMB != 128 {
		t.Fatalf("Tenants.Create: %+v, %v", tn, err)
	}
	if _, err := admin.Tenants.Create(ctx, name, nil); !IsConflict(err) {
		t.Fatalf("creating it again: %v", err)
	}
	ts, err := admin.Tenants.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, x := range ts {
		seen[x.Name] = true
	}
	if !seen[name] || !seen[env.tenant] {
		t.Fatalf("Tenants.List: %v", seen)
	}
	got, err := admin.Tenants.Get(ctx, name)
	if err != nil || got.Limits.MaxTimeoutMs != 5000 {
		t.Fatalf("Tenants.Get: %+v, %v", got, err)
	}
	fs, err := admin.ForTenant(name).Functions.List(ctx)
	if err != nil || len(fs) != 0 {
		t.Fatalf("a new tenant's functions: %+v, %v", fs, err)
	}
	// A tenant's key is not the platform admin.
	if _, err := env.client().Tenants.List(ctx); !IsForbidden(err) {
		t.Fatalf("a tenant key lists tenants: %v", err)
	}

	// Usage: invocations made here are metered (the node flushes often in this test).
	c := env.client()
	if _, err := c.Functions.DeployFile(ctx, "usage-echo", env.guest("echo-event"), nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := c.Functions.Invoke(ctx, "usage-echo", []byte(`{}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	var report *UsageReport
	eventually(t, 60*time.Second, "usage of usage-echo", func() (bool, error) {
		r, err := c.Usage.Query(ctx, &UsageQuery{
			From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute),
			GroupBy: []string{"function"}, Metrics: []string{"requests", "errors", "latency_p95"},
		})
		if err != nil {
			return false, err
		}
		for _, s := range r.Series {
			if s.Group["function"] == "usage-echo" && s.Total.Values["requests"] >= 3 {
				report = r
				return true, nil
			}
		}
		return false, nil
	})
	for _, s := range report.Series {
		if s.Group["function"] == "usage-echo" {
			if s.Total.Values["requests"] != 3 || s.Total.Values["errors"] != 0 || len(s.Points) == 0 || s.Points[0].Time == "" {
				t.Fatalf("usage-echo: %+v", s)
			}
		}
	}
	if report.Tenant != env.tenant || len(report.Metrics) != 3 {
		t.Fatalf("report %+v", report)
	}
	_, err = c.Usage.Query(ctx, &UsageQuery{Metrics: []string{"no_such_metric"}})
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Code != "invalid_metric" {
		t.Fatalf("unknown metric: %v", err)
	}

	d, err := c.Dashboards.Create(ctx, DashboardSpec{
		Name: "ops", Metrics: []string{"cost_per_token", "latency_by_region", "model_usage"},
		Dimensions: []string{"time", "user_segment", "geography"},
		Alerts:     []string{"cost_threshold", "performance_degradation"},
	})
	if err != nil || d.ID == "" || d.Name != "ops" {
		t.Fatalf("Dashboards.Create: %+v, %v", d, err)
	}
	data, err := c.Dashboards.Data(ctx, d.ID, &UsageQuery{Step: "1h"})
	if err != nil || data.Dashboard.ID != d.ID || len(data.Panels) == 0 || data.Panels[0].Name == "" {
		t.Fatalf("Dashboards.Data: %+v, %v", data, err)
	}
	list, err := c.Dashboards.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("Dashboards.List: %+v, %v", list, err)
	}
	if err := c.Dashboards.Delete(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dashboards.Get(ctx, d.ID); !IsNotFound(err) {
		t.Fatalf("deleted dashboard: %v", err)
	}
	_, err = c.Dashboards.Create(ctx, DashboardSpec{Metrics: []string{"no_such_metric"}})
	if !errors.As(err, &ae) || ae.StatusCode != 400 {
		t.Fatalf("a dashboard of an unknown metric: %v", err)
	}
}
