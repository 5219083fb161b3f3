package helixflow

import (
	"context"
)

// TenantLimits caps what a tenant's functions may use.
type TenantLimits struct {
	MaxMemoryMB  int   `json:"max_memory_mb"`
	MaxTimeoutMs int64 `json:"max_timeout_ms"`
	// MaxRPS: requests per second over all its functions (0: no limit).
	MaxRPS int `json:"max_rps,omitempty"`
	// MaxConcurrency: invocations at once over all its functions (0: no limit).
	MaxConcurrency int `json:"max_concurrency,omitempty"`
}

// Tenant is a tenant of the platform.
type Tenant struct {
	Name      string       `json:"name"`
	Limits    TenantLimits `json:"limits"`
	CreatedAt string       `json:"created_at"`
}

// TenantsService: tenants (/api/v1/tenants). Creating and listing them is for the
// platform admin; a tenant's members may read their own.
type TenantsService struct{ c *Client }

// Create creates a tenant (limits nil: the node's defaults, 256 MB and 30 s).
func (s *TenantsService) Create(ctx context.Context, name string, limits *TenantLimits) (*Tenant, error) {
	if err := validName("Tenants.Create", "name", name); err != nil {
		return nil, err
	}
	if limits != nil && (limits.MaxMemoryMB <= 0 || limits.MaxTimeoutMs <= 0) {
		return nil, argError("Tenants.Create", "limits", "need MaxMemoryMB and MaxTimeoutMs (or pass nil for the defaults)")
	}
	body := struct {
		Name   string        `json:"name"`
		Limits *TenantLimits `json:"limits,omitempty"`
	}{name, limits}
	var out Tenant
	if err := s.c.postJSON(ctx, "/api/v1/tenants", body, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns every tenant.
func (s *TenantsService) List(ctx context.Context) ([]Tenant, error) {
	var out struct {
		Tenants []Tenant `json:"tenants"`
	}
	if err := s.c.getJSON(ctx, "/api/v1/tenants", nil, &out); err != nil {
		return nil, err
	}
	return out.Tenants, nil
}

// Get returns one tenant.
func (s *TenantsService) Get(ctx context.Context, name string) (*Tenant, error) {
	if err := validName("Tenants.Get", "name", name); err != nil {
		return nil, err
	}
	var out Tenant
	if err := s.c.getJSON(ctx, "/api/v1/tenants/"+name, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
