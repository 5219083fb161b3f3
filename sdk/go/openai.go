package helixflow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The OpenAI-compatible API of /v1, in OpenAI's wire format.

// ChatMessage is one message of a conversation.
type ChatMessage struct {
	// Role: "system", "developer", "user" or "assistant".
	Role    string `json:"role"`
	Content string `json:"content"`
	Name    string `json:"name,omitempty"`
}

// StreamOptions of a streamed completion.
type StreamOptions struct {
	// IncludeUsage: a last chunk carries the token counts.
	IncludeUsage bool `json:"include_usage"`
}

// ChatCompletionRequest is the body of POST /v1/chat/completions.
type ChatCompletionRequest struct {
	Model    string        `json:"model"`
	Messages []ChatMessage `json:"messages"`
	// Temperature 0-2 (default 1); use Float64(0) for greedy decoding.
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	// MaxTokens: at most this many completion tokens (0: the model's default).
	MaxTokens   int      `json:"max_tokens,omitempty"`
	Stop        []string `json:"stop,omitempty"`
	Seed        *int64   `json:"seed,omitempty"`
	Logprobs    bool     `json:"logprobs,omitempty"`
	TopLogprobs int      `json:"top_logprobs,omitempty"`
	User        string   `json:"user,omitempty"`
	// Stream is set by the call made (CreateChatCompletionStream streams).
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *StreamOptions `json:"stream_options,omitempty"`
}

// Usage counts a request's tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ChatCompletion is a whole completion.
type ChatCompletion struct {
	ID                string                 `json:"id"`
	Object            string                 `json:"object"`
	Created           int64                  `json:"created"`
	Model             string                 `json:"model"`
	SystemFingerprint string                 `json:"system_fingerprint"`
	Choices           []ChatCompletionChoice `json:"choices"`
	Usage             *Usage                 `json:"usage"`
}

// ChatCompletionChoice is one generated message.
type ChatCompletionChoice struct {
	Index   int         `json:"index"`
	Message ChatMessage `json:"message"`
	// FinishReason: "stop" or "length".
	FinishReason string          `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs"`
}

// ChatCompletionChunk is one event of a streamed completion.
type ChatCompletionChunk struct {
	ID                string                      `json:"id"`
	Object            string                      `json:"object"`
	Created           int64                       `json:"created"`
	Model             string                      `json:"model"`
	SystemFingerprint string                      `json:"system_fingerprint"`
	Choices           []ChatCompletionChunkChoice `json:"choices"`
	// Usage: on the last chunk when StreamOptions.IncludeUsage was set.
	Usage *Usage `json:"usage"`
}

// ChatCompletionChunkChoice is a piece of a generated message.
type ChatCompletionChunkChoice struct {
	Index        int             `json:"index"`
	Delta        ChatDelta       `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs"`
}

// ChatDelta is the new text of a chunk.
type ChatDelta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// Float64 returns a pointer to v (for optional request fields).
func Float64(v float64) *float64 { return &v }

// Int64 returns a pointer to v.
func Int64(v int64) *int64 { return &v }

// Int returns a pointer to v.
func Int(v int) *int { return &v }

// Bool returns a pointer to v.
func Bool(v bool) *bool { return &v }

func checkChat(call string, req *ChatCompletionRequest) error {
	if req.Model == "" {
		return argError(call, "Model", "is required")
	}
	if len(req.Messages) == 0 {
		return argError(call, "Messages", "is required (at least one message)")
	}
	for i, m := range req.Messages {
		if m.Role == "" {
			return argError(call, fmt.Sprintf("Messages[%d].Role", i), "is required")
		}
	}
	return nil
}

// CreateChatCompletion generates a reply to req.Messages (POST /v1/chat/completions).
func (c *Client) CreateChatCompletion(ctx context.Context, req ChatCompletionRequest) (*ChatCompletion, error) {
	const call = "CreateChatCompletion"
	if err := checkChat(call, &req); err != nil {
		return nil, err
	}
	if req.Stream || req.StreamOptions != nil {
		return nil, argError(call, "Stream", "is set: use CreateChatCompletionStream for a streamed completion")
	}
	var out ChatCompletion
	err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/chat/completions", jsonBody: req, idempotent: true, refusalsOnly: true}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ChatCompletionStream is a streamed completion's chunks, read as they come:
//
//	stream, err := client.CreateChatCompletionStream(ctx, req)
//	if err != nil { ... }
//	defer stream.Close()
//	for stream.Next() {
//		chunk := stream.Current()
//		...
//	}
//	if err := stream.Err(); err != nil { ... }
type ChatCompletionStream struct {
	body      io.ReadCloser
	reader    *bufio.Reader
	current   ChatCompletionChunk
	err       error
	done      bool
	requestID string
	stopTimer func() bool
	cancel    context.CancelFunc
}

// CreateChatCompletionStream starts a streamed completion (server-sent events). The
// call returns once the response has started (retried like CreateChatCompletion until
// then); close the stream when done with it.
func (c *Client) CreateChatCompletionStream(ctx context.Context, req ChatCompletionRequest) (*ChatCompletionStream, error) {
	const call = "CreateChatCompletionStream"
	if err := checkChat(call, &req); err != nil {
		return nil, err
	}
	req.Stream = true
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("helixflow: encoding the request: %w", err)
	}
	r := &request{method: http.MethodPost, path: "/v1/chat/completions", rawBody: payload, idempotent: true, refusalsOnly: true,
		header: http.Header{"Content-Type": {"application/json"}, "Accept": {"text/event-stream"}}}
	for attempt := 0; ; attempt++ {
		s, err := c.openStream(ctx, r, payload)
		if err == nil {
			return s, nil
		}
		wait, retry := c.shouldRetry(ctx, r, attempt, err)
		if !retry {
			return nil, err
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, err
		}
	}
}

func (c *Client) openStream(ctx context.Context, r *request, payload []byte) (*ChatCompletionStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	// The timeout bounds the wait for the response to start, not the stream.
	stop := func() bool { return true }
	if c.timeout > 0 {
		t := time.AfterFunc(c.timeout, cancel)
		stop = t.Stop
	}
	req, err := c.newHTTPRequest(ctx, r, payload)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		cancel()
		return nil, &transportError{method: r.method, url: c.url(r), err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		return nil, apiError(resp, body)
	}
	stop()
	return &ChatCompletionStream{
		body:      resp.Body,
		reader:    bufio.NewReader(resp.Body),
		requestID: requestID(resp.Header),
		stopTimer: stop,
		cancel:    cancel,
	}, nil
}

// Next reads the next chunk; false at the end of the stream or on an error (see Err).
func (s *ChatCompletionStream) Next() bool {
	if s.done || s.err != nil {
		return false
	}
	for {
		data, err := s.readEvent()
		if err != nil {
			if err == io.EOF {
				s.err = fmt.Errorf("helixflow: the stream ended before [DONE] [request %s]", s.requestID)
			} else {
				s.err = fmt.Errorf("helixflow: reading the stream: %w [request %s]", err, s.requestID)
			}
			return false
		}
		if data == nil {
			continue
		}
		if bytes.Equal(data, []byte("[DONE]")) {
			s.done = true
			return false
		}
		// An error in the middle of a stream comes as an event with an "error" object.
		var probe struct {
			Error *struct {
				Message string          `json:"message"`
				Type    string          `json:"type"`
				Code    json.RawMessage `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &probe) == nil && probe.Error != nil {
			var code string
			_ = json.Unmarshal(probe.Error.Code, &code)
			if code == "" {
				code = "stream_error"
			}
			s.err = &APIError{StatusCode: http.StatusOK, Code: code, Message: probe.Error.Message, ErrorType: probe.Error.Type, RequestID: s.requestID}
			return false
		}
		var chunk ChatCompletionChunk
		if err := json.Unmarshal(data, &chunk); err != nil {
			s.err = fmt.Errorf("helixflow: a stream event is not a chunk: %w [request %s]", err, s.requestID)
			return false
		}
		s.current = chunk
		return true
	}
}

// readEvent reads one server-sent event and returns its data (nil for an event
// without data, e.g. a comment).
func (s *ChatCompletionStream) readEvent() ([]byte, error) {
	var data [][]byte
	for {
		line, err := s.reader.ReadBytes('\n')
		if err != nil && (err != io.EOF || len(line) == 0) {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if data == nil {
				if err == io.EOF {
					return nil, io.EOF
				}
				continue
			}
			return bytes.Join(data, []byte("\n")), nil
		}
		if field, value, ok := bytes.Cut(line, []byte(":")); ok && len(field) > 0 {
			if string(field) == "data" {
				data = append(data, bytes.TrimPrefix(value, []byte(" ")))
			}
		} else if string(line) == "data" {
			data = append(data, []byte{})
		}
		if err == io.EOF {
			if data == nil {
				return nil, io.EOF
			}
			return bytes.Join(data, []byte("\n")), nil
		}
	}
}

// Current is the chunk the last Next read.
func (s *ChatCompletionStream) Current() ChatCompletionChunk { return s.current }

// Err is the error that ended the stream (nil after [DONE]).
func (s *ChatCompletionStream) Err() error { return s.err }

// RequestID is the node's id of the request.
func (s *ChatCompletionStream) RequestID() string { return s.requestID }

// Close stops the stream (the node stops generating) and releases the connection.
func (s *ChatCompletionStream) Close() error {
	s.stopTimer()
	err := s.body.Close()
	s.cancel()
	return err
}

// Channel returns the stream's chunks on a channel that is closed at the end of the
// stream (check Err then). Read it to the end, or Close the stream.
func (s *ChatCompletionStream) Channel() <-chan ChatCompletionChunk {
	ch := make(chan ChatCompletionChunk)
	go func() {
		defer close(ch)
		for s.Next() {
			ch <- s.Current()
		}
	}()
	return ch
}

// EmbeddingRequest is the body of POST /v1/embeddings.
type EmbeddingRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
	User  string   `json:"user,omitempty"`
}

// Embedding is one input's vector.
type Embedding struct {
	Object    string    `json:"object"`
	Index     int       `json:"index"`
	Embedding []float32 `json:"embedding"`
}

// EmbeddingResponse is the vectors of a request's inputs, in order.
type EmbeddingResponse struct {
	Object string      `json:"object"`
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  Usage       `json:"usage"`
}

// CreateEmbeddings embeds req.Input (POST /v1/embeddings).
func (c *Client) CreateEmbeddings(ctx context.Context, req EmbeddingRequest) (*EmbeddingResponse, error) {
	const call = "CreateEmbeddings"
	if req.Model == "" {
		return nil, argError(call, "Model", "is required")
	}
	if len(req.Input) == 0 {
		return nil, argError(call, "Input", "is required (at least one text)")
	}
	var out EmbeddingResponse
	err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/embeddings", jsonBody: req, idempotent: true, refusalsOnly: true}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// OpenAIModel is a model served on /v1.
type OpenAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ListOpenAIModels lists the models the caller's tenant serves on /v1 (GET /v1/models).
func (c *Client) ListOpenAIModels(ctx context.Context) ([]OpenAIModel, error) {
	var out struct {
		Data []OpenAIModel `json:"data"`
	}
	if err := c.getJSON(ctx, "/v1/models", nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}
