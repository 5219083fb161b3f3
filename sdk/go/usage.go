package helixflow

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// UsageQuery selects usage: a time range, a step, dimensions to group by and metrics.
type UsageQuery struct {
	// From and To (zero: the last hour).
	From, To time.Time
	// Step: "1m", "1h" or "1d" (default: the finest that gives at most 1440 points).
	Step string
	// GroupBy: any of function, version, trigger, location, key, model.
	GroupBy []string
	// Metrics: e.g. requests, errors, error_rate, gb_seconds, bytes_in, bytes_out,
	// prompt_tokens, completion_tokens, embedding_tokens, latency_p50, latency_p95,
	// latency_p99, cost, cost_per_1k_tokens.
	Metrics []string
}

func (q *UsageQuery) values(call string) (url.Values, error) {
	v := url.Values{}
	if q == nil {
		return v, nil
	}
	if !q.From.IsZero() {
		v.Set("from", strconv.FormatInt(q.From.Unix(), 10))
	}
	if !q.To.IsZero() {
		v.Set("to", strconv.FormatInt(q.To.Unix(), 10))
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return nil, argError(call, "From", "must be before To")
	}
	if q.Step != "" {
		v.Set("step", q.Step)
	}
	for _, list := range []struct {
		name   string
		values []string
	}{{"group_by", q.GroupBy}, {"metrics", q.Metrics}} {
		for _, s := range list.values {
			if s == "" || strings.Contains(s, ",") {
				return nil, argError(call, list.name, "entries must be single non-empty names")
			}
		}
		if len(list.values) > 0 {
			v.Set(list.name, strings.Join(list.values, ","))
		}
	}
	return v, nil
}

// UsageReport is a usage query's answer: one series per group.
type UsageReport struct {
	Tenant  string        `json:"tenant"`
	From    string        `json:"from"`
	To      string        `json:"to"`
	Step    string        `json:"step"`
	GroupBy []string      `json:"group_by"`
	Metrics []string      `json:"metrics"`
	Series  []UsageSeries `json:"series"`
}

// UsageSeries is one group's points over time and its total.
type UsageSeries struct {
	// Group: the value of each GroupBy dimension.
	Group  map[string]string `json:"group"`
	Points []UsagePoint      `json:"points"`
	Total  UsagePoint        `json:"total"`
}

// UsagePoint is the metrics of one step (Time empty for a total). A metric the node
// answered null for (e.g. cost_per_1k_tokens without tokens) is absent from Values.
type UsagePoint struct {
	Time   string
	Values map[string]float64
}

// UnmarshalJSON reads {"time": ..., "<metric>": number|null, ...}.
func (p *UsagePoint) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	p.Values = make(map[string]float64, len(raw))
	for k, v := range raw {
		if k == "time" {
			if err := json.Unmarshal(v, &p.Time); err != nil {
				return err
			}
			continue
		}
		var f *float64
		if err := json.Unmarshal(v, &f); err != nil {
			return err
		}
		if f != nil {
			p.Values[k] = *f
		}
	}
	return nil
}

// Sum adds metric over the report's series (their totals).
func (r *UsageReport) Sum(metric string) float64 {
	var n float64
	for _, s := range r.Series {
		n += s.Total.Values[metric]
	}
	return n
}

// UsageService: the tenant's metered usage (/api/v1/tenants/{t}/usage; viewers and up).
type UsageService struct{ c *Client }

// Query reads usage.
func (s *UsageService) Query(ctx context.Context, q *UsageQuery) (*UsageReport, error) {
	values, err := q.values("Usage.Query")
	if err != nil {
		return nil, err
	}
	path, err := s.c.tenantPath(ctx, "Usage.Query", "/usage")
	if err != nil {
		return nil, err
	}
	var out UsageReport
	if err := s.c.getJSON(ctx, path, values, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DashboardSpec is what a dashboard charts, in the analytics vocabulary: metrics
// (cost_per_token, latency_by_region, model_usage, error_rate, or any usage metric),
// dimensions (time, user_segment, geography, or any usage dimension) and alerts
// (cost_threshold, performance_degradation).
type DashboardSpec struct {
	Name       string   `json:"name,omitempty"`
	Metrics    []string `json:"metrics"`
	Dimensions []string `json:"dimensions,omitempty"`
	Alerts     []string `json:"alerts,omitempty"`
}

// Dashboard is a stored dashboard.
type Dashboard struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Metrics    []string `json:"metrics"`
	Dimensions []string `json:"dimensions"`
	Alerts     []string `json:"alerts"`
	CreatedAt  string   `json:"created_at"`
}

// DashboardPanel is one chart of a dashboard: a usage report under the panel's name.
type DashboardPanel struct {
	Name string `json:"name"`
	UsageReport
}

// DashboardData is a dashboard with each panel's series.
type DashboardData struct {
	Dashboard Dashboard        `json:"dashboard"`
	Panels    []DashboardPanel `json:"panels"`
}

// DashboardsService: stored dashboards (/api/v1/tenants/{t}/dashboards).
type DashboardsService struct{ c *Client }

// Create stores a dashboard.
func (s *DashboardsService) Create(ctx context.Context, spec DashboardSpec) (*Dashboard, error) {
	if len(spec.Metrics) == 0 {
		return nil, argError("Dashboards.Create", "Metrics", "is required (at least one metric)")
	}
	path, err := s.c.tenantPath(ctx, "Dashboards.Create", "/dashboards")
	if err != nil {
		return nil, err
	}
	var out Dashboard
	if err := s.c.postJSON(ctx, path, spec, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns the tenant's dashboards.
func (s *DashboardsService) List(ctx context.Context) ([]Dashboard, error) {
	path, err := s.c.tenantPath(ctx, "Dashboards.List", "/dashboards")
	if err != nil {
		return nil, err
	}
	var out struct {
		Dashboards []Dashboard `json:"dashboards"`
	}
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Dashboards, nil
}

// Get returns one dashboard.
func (s *DashboardsService) Get(ctx context.Context, id string) (*Dashboard, error) {
	if err := required("Dashboards.Get", "id", id); err != nil {
		return nil, err
	}
	path, err := s.c.tenantPath(ctx, "Dashboards.Get", "/dashboards/"+url.PathEscape(id))
	if err != nil {
		return nil, err
	}
	var out Dashboard
	if err := s.c.getJSON(ctx, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes a dashboard.
func (s *DashboardsService) Delete(ctx context.Context, id string) error {
	if err := required("Dashboards.Delete", "id", id); err != nil {
		return err
	}
	path, err := s.c.tenantPath(ctx, "Dashboards.Delete", "/dashboards/"+url.PathEscape(id))
	if err != nil {
		return err
	}
	return s.c.del(ctx, path, nil)
}

// Data returns each panel's series over q's range and step (q's GroupBy and Metrics
// are the panels' own and are ignored).
func (s *DashboardsService) Data(ctx context.Context, id string, q *UsageQuery) (*DashboardData, error) {
	if err := required("Dashboards.Data", "id", id); err != nil {
		return nil, err
	}
	values, err := q.values("Dashboards.Data")
	if err != nil {
		return nil, err
	}
	values.Del("group_by")
	values.Del("metrics")
	path, err := s.c.tenantPath(ctx, "Dashboards.Data", "/dashboards/"+url.PathEscape(id)+"/data")
	if err != nil {
		return nil, err
	}
	var out DashboardData
	if err := s.c.getJSON(ctx, path, values, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
