// Package helixflow is the Go client of HelixFlow: the OpenAI-compatible chat
// completions (streamed or not) and embeddings of /v1, and the control plane of
// /api/v1 (functions, aliases, models, API keys, access keys, Event invocations,
// tenants, usage and dashboards). It uses the standard library only.
//
//	client := helixflow.NewClient("your-key")
//	response, err := client.CreateChatCompletion(ctx, helixflow.ChatCompletionRequest{
//		Model:    "smollm2-135m-instruct",
//		Messages: []helixflow.ChatMessage{{Role: "user", Content: "Hello!"}},
//	})
//
// The node's address comes from [WithBaseURL], else the HELIXFLOW_BASE_URL environment
// variable, else http://127.0.0.1:8080.
//
// Tenant-scoped calls (everything under client.Functions, client.Models, ...) act in
// the tenant given with [WithTenant] (or [Client.ForTenant]); without one, in the
// key's own tenant, which the client asks the node for once ([Client.WhoAmI], GET
// /api/v1/whoami). The platform admin key belongs to no tenant: its tenant-scoped calls
// fail with [ErrNoTenant] unless it names one.
//
// Errors: a call with a missing or invalid argument fails before any request with an
// error matching [ErrInvalidArgument]; an error answered by the node is an *[APIError]
// (HTTP status, HelixFlow's error code, message, request id), also matched by
// errors.Is with [ErrNotFound], [ErrUnauthorized], [ErrForbidden], [ErrConflict],
// [ErrRateLimited] and [ErrUnavailable] (or the helpers [IsNotFound], ...).
//
// Retries: calls that can be repeated safely (reads, PUT and DELETE, chat completions
// and embeddings) are retried on 429 and 503 answers and on network errors, with
// exponential backoff and jitter, waiting what a Retry-After header asks for;
// [WithMaxRetries] sets how many times (default 2). Deploys, pushes, invocations,
// key creation and replays are never retried: repeating them could act twice.
package helixflow
