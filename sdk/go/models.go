package helixflow

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// ModelConfig is how a model is run and served.
type ModelConfig struct {
	// Providers: execution-provider preference ("tensorrt", "cuda", "cpu").
	Providers []string `json:"providers,omitempty"`
	// Fallback: "next" (down the list) or "refuse".
	Fallback   string `json:"fallback,omitempty"`
	MaxBatch   int    `json:"max_batch,omitempty"`
	MaxDelayUs int64  `json:"max_delay_us,omitempty"`
	// RowIndependent: each output row depends on its input row alone (may be batched).
	RowIndependent bool `json:"row_independent,omitempty"`
	TrtFP16        bool `json:"trt_fp16,omitempty"`
	// Serve: answer /v1 requests naming the model through a function.
	Serve *ModelServe `json:"serve,omitempty"`
}

// ModelServe routes /v1/embeddings ("embeddings") or /v1/chat/completions ("chat")
// requests for a model to a function of its tenant.
type ModelServe struct {
	Kind     string `json:"kind"`
	Function string `json:"function"`
}

// Model is a model of the registry.
type Model struct {
	Tenant        string      `json:"tenant"`
	Name          string      `json:"name"`
	LatestVersion int         `json:"latest_version"`
	Config        ModelConfig `json:"config"`
	CreatedAt     string      `json:"created_at"`
	UpdatedAt     string      `json:"updated_at"`
}

// ModelVersion is an immutable pushed version of a model.
type ModelVersion struct {
	Tenant  string `json:"tenant"`
	Model   string `json:"model"`
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	// Signature: inputs and outputs as ONNX Runtime read them at upload.
	Signature   json.RawMessage `json:"signature"`
	CreatedAt   string          `json:"created_at"`
	Description string          `json:"description"`
}

// ModelDetails is a model with its versions and this node's sessions of its latest.
type ModelDetails struct {
	Model    Model           `json:"model"`
	Versions []ModelVersion  `json:"versions"`
	Sessions json.RawMessage `json:"sessions"`
}

// ModelVersionDetails is one version of a model with this node's sessions of it.
type ModelVersionDetails struct {
	Model    Model           `json:"model"`
	Version  ModelVersion    `json:"version"`
	Sessions json.RawMessage `json:"sessions"`
}

// PushOptions are a model push's optional settings.
type PushOptions struct {
	// Config replaces the model's config with the new version.
	Config      *ModelConfig
	Description string
	// Progress hears how much of the file has been sent.
	Progress ProgressFunc
}

// ModelsService: the model registry (/api/v1/tenants/{t}/models; the tenant "public"
// holds models every tenant can load: use client.ForTenant("public")).
type ModelsService struct{ c *Client }

// Push uploads an ONNX model (the bytes) as a new version of model. The node loads it
// in ONNX Runtime before storing anything.
func (s *ModelsService) Push(ctx context.Context, model string, onnx []byte, opts *PushOptions) (*ModelVersion, error) {
	if len(onnx) == 0 {
		if err := validName("Models.Push", "model", model); err != nil {
			return nil, err
		}
		return nil, argError("Models.Push", "onnx", "is empty")
	}
	return s.push(ctx, "Models.Push", model, func() (*upload, error) { return uploadBytes(onnx), nil }, opts)
}

// PushFile uploads the ONNX file at path as a new version of model.
func (s *ModelsService) PushFile(ctx context.Context, model, path string, opts *PushOptions) (*ModelVersion, error) {
	return s.push(ctx, "Models.PushFile", model, func() (*upload, error) { return uploadFile("Models.PushFile", path) }, opts)
}

// PushReader uploads size bytes of an ONNX model read from r (size < 0: unknown).
func (s *ModelsService) PushReader(ctx context.Context, model string, r io.Reader, size int64, opts *PushOptions) (*ModelVersion, error) {
	return s.push(ctx, "Models.PushReader", model, func() (*upload, error) { return uploadReader("Models.PushReader", r, size) }, opts)
}

func (s *ModelsService) push(ctx context.Context, call, model string, open func() (*upload, error), opts *PushOptions) (*ModelVersion, error) {
	if err := validName(call, "model", model); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &PushOptions{}
	}
	header := http.Header{"Content-Type": {"application/octet-stream"}}
	if opts.Config != nil {
		cfg, err := json.Marshal(opts.Config)
		if err != nil {
			return nil, fmt.Errorf("helixflow: %s: encoding the config: %w", call, err)
		}
		header.Set("X-Helixflow-Model-Config", string(cfg))
	}
	path, err := s.c.tenantPath(ctx, call, "/models/"+model+"/versions")
	if err != nil {
		return nil, err
	}
	u, err := open()
	if err != nil {
		return nil, err
	}
	defer u.close()
	q := url.Values{}
	if opts.Description != "" {
		q.Set("description", opts.Description)
	}
	var out struct {
		Version ModelVersion `json:"version"`
	}
	err = s.c.do(ctx, &request{
		method: http.MethodPost, path: path, query: q, header: header,
		bodyReader: u.withProgress(opts.Progress), bodySize: u.size,
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out.Version, nil
}

// List returns the tenant's models.
func (s *ModelsService) List(ctx context.Context) ([]Model, error) {
	path, err := s.c.tenantPath(ctx, "Models.List", "/models")
	if err != nil {
		return nil, err
	}
	var out struct {
		Models []Model `json:"models"`
	}
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Models, nil
}

func (s *ModelsService) path(ctx context.Context, call, model, suffix string) (string, error) {
	if err := validName(call, "model", model); err != nil {
		return "", err
	}
	return s.c.tenantPath(ctx, call, "/models/"+model+suffix)
}

// Get returns a model with its versions.
func (s *ModelsService) Get(ctx context.Context, model string) (*ModelDetails, error) {
	path, err := s.path(ctx, "Models.Get", model, "")
	if err != nil {
		return nil, err
	}
	var out ModelDetails
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Version returns one version of a model.
func (s *ModelsService) Version(ctx context.Context, model string, version int) (*ModelVersionDetails, error) {
	if version <= 0 {
		return nil, argError("Models.Version", "version", "must be a version number (1 or more)")
	}
	path, err := s.path(ctx, "Models.Version", model, "/versions/"+strconv.Itoa(version))
	if err != nil {
		return nil, err
	}
	var out ModelVersionDetails
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetConfig replaces a model's config and returns the model.
func (s *ModelsService) SetConfig(ctx context.Context, model string, cfg ModelConfig) (*Model, error) {
	path, err := s.path(ctx, "Models.SetConfig", model, "/config")
	if err != nil {
		return nil, err
	}
	var out struct {
		Model Model `json:"model"`
	}
	if err := s.c.putJSON(ctx, path, cfg, &out); err != nil {
		return nil, err
	}
	return &out.Model, nil
}

// Delete deletes a model and all its versions; it returns how many versions went.
func (s *ModelsService) Delete(ctx context.Context, model string) (int, error) {
	path, err := s.path(ctx, "Models.Delete", model, "")
	if err != nil {
		return 0, err
	}
	var out struct {
		DeletedVersions int `json:"deleted_versions"`
	}
	if err := s.c.del(ctx, path, &out); err != nil {
		return 0, err
	}
	return out.DeletedVersions, nil
}

// Preload loads a model's latest version into this node's ONNX Runtime and returns
// the session's description.
func (s *ModelsService) Preload(ctx context.Context, model string) (json.RawMessage, error) {
	path, err := s.path(ctx, "Models.Preload", model, "/preload")
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	if err := s.c.postJSON(ctx, path, nil, &out, true); err != nil {
		return nil, err
	}
	return out, nil
}
