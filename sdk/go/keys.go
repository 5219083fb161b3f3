package helixflow

import (
	"context"
	"net/url"
)

// Roles a key can have in its tenant.
const (
	RoleAdmin     = "admin"
	RoleDeveloper = "developer"
	RoleInvoker   = "invoker"
	RoleViewer    = "viewer"
)

// CreateKeyRequest describes a new API key or access key pair.
type CreateKeyRequest struct {
	// Name: 1-100 printable characters (required).
	Name string `json:"name"`
	// Role: admin, developer, invoker or viewer (required for API keys; access keys
	// default to invoker).
	Role string `json:"role,omitempty"`
	// ExpiresInSecs: the key stops working after this long (0: never).
	ExpiresInSecs int64 `json:"expires_in_secs,omitempty"`
}

// APIKey is an API key's record (never its secret).
type APIKey struct {
	Prefix    string `json:"prefix"`
	Name      string `json:"name"`
	Role      string `json:"role"`
	CreatedAt string `json:"created_at"`
	// ExpiresAt: Unix seconds, nil when it never expires.
	ExpiresAt *int64 `json:"expires_at"`
	Revoked   bool   `json:"revoked"`
}

// NewAPIKey is a created key with its secret, shown only here.
type NewAPIKey struct {
	APIKey
	// Key is the secret to authenticate with ("hfk_...").
	Key string `json:"key"`
}

func checkKeyRequest(call string, req CreateKeyRequest, roleRequired bool) error {
	if err := required(call, "Name", req.Name); err != nil {
		return err
	}
	if req.Role == "" && roleRequired {
		return argError(call, "Role", "is required (admin, developer, invoker or viewer)")
	}
	switch req.Role {
	case "", RoleAdmin, RoleDeveloper, RoleInvoker, RoleViewer:
	default:
		return argError(call, "Role", "must be admin, developer, invoker or viewer, not "+req.Role)
	}
	if req.ExpiresInSecs < 0 {
		return argError(call, "ExpiresInSecs", "cannot be negative")
	}
	return nil
}

// KeysService: the tenant's API keys (/api/v1/tenants/{t}/keys; tenant admins).
type KeysService struct{ c *Client }

// Create creates an API key; its secret is in the answer only.
func (s *KeysService) Create(ctx context.Context, req CreateKeyRequest) (*NewAPIKey, error) {
	if err := checkKeyRequest("Keys.Create", req, true); err != nil {
		return nil, err
	}
	path, err := s.c.tenantPath(ctx, "Keys.Create", "/keys")
	if err != nil {
		return nil, err
	}
	var out NewAPIKey
	if err := s.c.postJSON(ctx, path, req, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns the tenant's keys (revoked ones too).
func (s *KeysService) List(ctx context.Context) ([]APIKey, error) {
	path, err := s.c.tenantPath(ctx, "Keys.List", "/keys")
	if err != nil {
		return nil, err
	}
	var out struct {
		Keys []APIKey `json:"keys"`
	}
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// Revoke revokes the key with this prefix and returns its record.
func (s *KeysService) Revoke(ctx context.Context, prefix string) (*APIKey, error) {
	if err := required("Keys.Revoke", "prefix", prefix); err != nil {
		return nil, err
	}
	path, err := s.c.tenantPath(ctx, "Keys.Revoke", "/keys/"+url.PathEscape(prefix))
	if err != nil {
		return nil, err
	}
	var out APIKey
	if err := s.c.del(ctx, path, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AccessKey is a SigV4 access key pair's record (never its secret), for the
// Lambda-compatible Invoke API.
type AccessKey struct {
	AccessKeyID string `json:"access_key_id"`
	Name        string `json:"name"`
	Role        string `json:"role"`
	CreatedAt   string `json:"created_at"`
	ExpiresAt   *int64 `json:"expires_at"`
	Revoked     bool   `json:"revoked"`
	// AccountID: the tenant's 12-digit account id in ARNs.
	AccountID string `json:"account_id"`
}

// NewAccessKey is a created access key pair with its secret, shown only here.
type NewAccessKey struct {
	AccessKey
	SecretAccessKey string `json:"secret_access_key"`
}

// AccessKeysService: the tenant's SigV4 access keys (/api/v1/tenants/{t}/access-keys).
type AccessKeysService struct{ c *Client }

// Create creates an access key pair (role default: invoker).
func (s *AccessKeysService) Create(ctx context.Context, req CreateKeyRequest) (*NewAccessKey, error) {
	if err := checkKeyRequest("AccessKeys.Create", req, false); err != nil {
		return nil, err
	}
	path, err := s.c.tenantPath(ctx, "AccessKeys.Create", "/access-keys")
	if err != nil {
		return nil, err
	}
	var out NewAccessKey
	if err := s.c.postJSON(ctx, path, req, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns the tenant's access keys.
func (s *AccessKeysService) List(ctx context.Context) ([]AccessKey, error) {
	path, err := s.c.tenantPath(ctx, "AccessKeys.List", "/access-keys")
	if err != nil {
		return nil, err
	}
	var out struct {
		AccessKeys []AccessKey `json:"access_keys"`
	}
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return out.AccessKeys, nil
}

// Revoke revokes an access key pair and returns its record.
func (s *AccessKeysService) Revoke(ctx context.Context, accessKeyID string) (*AccessKey, error) {
	if err := required("AccessKeys.Revoke", "accessKeyID", accessKeyID); err != nil {
		return nil, err
	}
	path, err := s.c.tenantPath(ctx, "AccessKeys.Revoke", "/access-keys/"+url.PathEscape(accessKeyID))
	if err != nil {
		return nil, err
	}
	var out AccessKey
	if err := s.c.del(ctx, path, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
