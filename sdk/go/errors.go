package helixflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinel errors. An *APIError matches the one of its HTTP status with errors.Is;
// an argument error matches ErrInvalidArgument.
var (
	// ErrInvalidArgument: a call was made with a missing or invalid argument (no
	// request was sent).
	ErrInvalidArgument = errors.New("helixflow: invalid argument")
	// ErrNoTenant: a tenant-scoped call without a tenant on the platform admin's
	// client, whose key belongs to no tenant (no request of the call was sent).
	ErrNoTenant = errors.New("helixflow: no tenant")
	// ErrNotFound: 404.
	ErrNotFound = errors.New("helixflow: not found")
	// ErrUnauthorized: 401, missing or invalid credentials.
	ErrUnauthorized = errors.New("helixflow: unauthorized")
	// ErrForbidden: 403, the credentials do not allow the request.
	ErrForbidden = errors.New("helixflow: forbidden")
	// ErrConflict: 409.
	ErrConflict = errors.New("helixflow: conflict")
	// ErrRateLimited: 429, a rate limit, quota or budget.
	ErrRateLimited = errors.New("helixflow: rate limited")
	// ErrUnavailable: 503, capacity exhausted or the store unavailable.
	ErrUnavailable = errors.New("helixflow: unavailable")
)

// APIError is an error answered by the node: its HTTP status, HelixFlow's stable
// error code (e.g. "not_found", "invalid_config", "function_error"), the message and
// the request id the node gave the request (quote it when reporting a problem).
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	RequestID  string
	// ErrorType: a function's own error type, for Code "function_error"; the OpenAI
	// error type on /v1 routes; the AWS error type on the Invoke API.
	ErrorType string
	// RetryAfter: how long the node asked to wait before retrying (0: not said).
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "helixflow: %d %s: %s", e.StatusCode, e.Code, e.Message)
	if e.ErrorType != "" && e.ErrorType != e.Code {
		fmt.Fprintf(&b, " (%s)", e.ErrorType)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.RequestID)
	}
	return b.String()
}

// Is matches the sentinel error of e's HTTP status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable
	}
	return false
}

// IsNotFound reports whether err is a 404 from the node.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsUnauthorized reports whether err is a 401 from the node.
func IsUnauthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// IsForbidden reports whether err is a 403 from the node.
func IsForbidden(err error) bool { return errors.Is(err, ErrForbidden) }

// IsConflict reports whether err is a 409 from the node.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsRateLimited reports whether err is a 429 from the node.
func IsRateLimited(err error) bool { return errors.Is(err, ErrRateLimited) }

// IsUnavailable reports whether err is a 503 from the node.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsInvalidArgument reports whether err is a call's argument error (nothing was sent).
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// ArgumentError is a call made with a missing or invalid argument; nothing was sent.
type ArgumentError struct {
	// Call is the method, e.g. "Functions.Deploy".
	Call string
	// Argument is the argument's name, e.g. "function".
	Argument string
	// Problem says what is wrong, e.g. "is required".
	Problem string
}

func (e *ArgumentError) Error() string {
	return fmt.Sprintf("helixflow: %s: %s %s", e.Call, e.Argument, e.Problem)
}

// Is makes an ArgumentError match ErrInvalidArgument.
func (e *ArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

func argError(call, arg, problem string) error {
	return &ArgumentError{Call: call, Argument: arg, Problem: problem}
}

// required fails when value is empty.
func required(call, arg, value string) error {
	if value == "" {
		return argError(call, arg, "is required")
	}
	return nil
}

// validName checks a tenant, function, alias or model name as the node does:
// 1-63 characters a-z, 0-9 and '-', starting with a letter, not ending with '-'.
// Names go into request paths as they are, so anything else is refused here.
func validName(call, arg, name string) error {
	if name == "" {
		return argError(call, arg, "is required")
	}
	ok := len(name) <= 63 && name[0] >= 'a' && name[0] <= 'z' && name[len(name)-1] != '-'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
	}
	if !ok {
		return argError(call, arg, fmt.Sprintf("%q is invalid: use 1-63 characters a-z, 0-9 and '-', starting with a letter", name))
	}
	return nil
}

// apiError builds the error of a non-2xx response from its body, whichever of the
// node's shapes it has: HelixFlow's {"error":{"code","message"}}, OpenAI's
// {"error":{"message","type","code"}} or AWS's {"Type","message"} (+ x-amzn-ErrorType).
func apiError(resp *http.Response, body []byte) *APIError {
	e := &APIError{
		StatusCode: resp.StatusCode,
		RequestID:  requestID(resp.Header),
		RetryAfter: retryAfter(resp.Header),
	}
	var v struct {
		Error *struct {
			Code      json.RawMessage `json:"code"`
			Message   string          `json:"message"`
			Type      string          `json:"type"`
			ErrorType string          `json:"error_type"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil && v.Error != nil {
		var code string
		if json.Unmarshal(v.Error.Code, &code) != nil {
			code = ""
		}
		e.Code, e.Message = code, v.Error.Message
		e.ErrorType = v.Error.ErrorType
		if e.ErrorType == "" {
			e.ErrorType = v.Error.Type
		}
	} else if t := resp.Header.Get("X-Amzn-Errortype"); t != "" {
		e.Code, e.ErrorType, e.Message = t, t, v.Message
	}
	if e.Code == "" {
		e.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_"))
		if e.Code == "" {
			e.Code = "http_error"
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 512 {
			e.Message = e.Message[:512] + "..."
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return e
}

func requestID(h http.Header) string {
	if id := h.Get("X-Helixflow-Request-Id"); id != "" {
		return id
	}
	return h.Get("X-Amzn-Requestid")
}
