package deploytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

const (
	dashboardsDir = "../grafana"
	datasource    = "${DS_PROMETHEUS}"
)

var dashboards = []string{"ripple-executive.json", "ripple-oncall.json", "ripple-debug.json"}

// grafanaBuiltins are Grafana's own variables, with values that make a
// query parse as Prometheus would receive it.
var grafanaBuiltins = map[string]string{
	"__rate_interval": "5m", "__interval": "1m", "__range": "1h",
	"__interval_ms": "60000", "__range_s": "3600", "__range_ms": "3600000",
}

var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// expand replaces Grafana variables: built-ins by a duration, the
// dashboard's own (label values, used inside matchers) by a plain value.
func expand(expr string, vars map[string]bool) (string, error) {
	var err error
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := grafanaBuiltins[name]; ok {
			return v
		}
		if vars[name] {
			return "ripple"
		}
		err = fmt.Errorf("unknown variable $%s", name)
		return m
	})
	return out, err
}

type dashboard struct {
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	SchemaVersion int              `json:"schemaVersion"`
	Inputs        []map[string]any `json:"__inputs"`
	Panels        []panel          `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                       `json:"id"`
	Type       string                    `json:"type"`
	Title      string                    `json:"title"`
	Datasource json.RawMessage           `json:"datasource"`
	GridPos    *struct{ X, Y, W, H int } `json:"gridPos"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

// usesDatasource reports whether raw is {"uid": "${DS_PROMETHEUS}", ...}.
func usesDatasource(raw json.RawMessage) bool {
	var ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	return json.Unmarshal(raw, &ds) == nil && ds.UID == datasource && ds.Type == "prometheus"
}

// labelValuesQuery matches label_values(metric{...}, label), Grafana's
// variable query; the selector inside is PromQL.
var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

func TestDashboards(t *testing.T) {
	c := &checker{inv: exported(t), recorded: recordedNames(loadRules(t))}
	uids := map[string]string{}
	for _, name := range dashboards {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dashboardsDir, name))
			if err != nil {
				t.Fatal(err)
			}
			var d dashboard
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("invalid JSON: %v", err)
			}
			if d.SchemaVersion < 38 {
				t.Errorf("schemaVersion %d, want >= 38", d.SchemaVersion)
			}
			if d.Title == "" || d.UID == "" {
				t.Errorf("title %q, uid %q: both are required", d.Title, d.UID)
			}
			if prev, ok := uids[d.UID]; ok {
				t.Errorf("uid %q is also used by %s", d.UID, prev)
			}
			uids[d.UID] = name
			hasInput := false
			for _, in := range d.Inputs {
				hasInput = hasInput || in["name"] == "DS_PROMETHEUS" && in["pluginId"] == "prometheus"
			}
			if !hasInput {
				t.Error(`no __inputs entry {"name": "DS_PROMETHEUS", "pluginId": "prometheus"}`)
			}

			checkExpr := func(where, expr string, vars map[string]bool) {
				e, err := expand(expr, vars)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					return
				}
				parsed, err := parser.ParseExpr(e)
				if err != nil {
					t.Errorf("%s: %v\n\t%s", where, err, e)
					return
				}
				for _, p := range c.check(parsed) {
					t.Errorf("%s: %s", where, p)
				}
			}

			vars := map[string]bool{}
			for _, v := range d.Templating.List {
				vars[v.Name] = true
			}
			for _, v := range d.Templating.List {
				if v.Type != "query" {
					continue
				}
				where := "variable $" + v.Name
				if !usesDatasource(v.Datasource) {
					t.Errorf("%s: datasource is not %s", where, datasource)
				}
				var q struct {
					Query string `json:"query"`
				}
				if err := json.Unmarshal(v.Query, &q); err != nil {
					_ = json.Unmarshal(v.Query, &q.Query) // the older form: a plain string
				}
				m := labelValuesQuery.FindStringSubmatch(strings.TrimSpace(q.Query))
				if m == nil {
					t.Errorf("%s: want label_values(<metric>, <label>), got %q", where, q.Query)
					continue
				}
				checkExpr(where, fmt.Sprintf("count by (%s) (%s)", m[2], m[1]), vars)
				if f, _ := c.inv.lookup(strings.SplitN(m[1], "{", 2)[0]); f != nil && !f.labels[m[2]] && !targetLabels[m[2]] {
					t.Errorf("%s: %s has no label %q", where, m[1], m[2])
				}
			}

			ids := map[int]bool{}
			queries := 0
			var walk func(ps []panel)
			walk = func(ps []panel) {
				for _, p := range ps {
					where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
					if ids[p.ID] {
						t.Errorf("%s: duplicate panel id", where)
					}
					ids[p.ID] = true
					if p.GridPos == nil {
						t.Errorf("%s: no gridPos", where)
					}
					walk(p.Panels)
					if len(p.Targets) == 0 {
						if p.Type != "row" && p.Type != "text" && p.Type != "alertlist" {
							t.Errorf("%s: a %s panel without queries", where, p.Type)
						}
						continue
					}
					if !usesDatasource(p.Datasource) {
						t.Errorf("%s: datasource is not %s", where, datasource)
					}
					for _, tg := range p.Targets {
						if !usesDatasource(tg.Datasource) {
							t.Errorf("%s, query %s: datasource is not %s", where, tg.RefID, datasource)
						}
						if strings.TrimSpace(tg.Expr) == "" {
							t.Errorf("%s, query %s: empty expr", where, tg.RefID)
							continue
						}
						queries++
						checkExpr(where+", query "+tg.RefID, tg.Expr, vars)
					}
				}
			}
			walk(d.Panels)
			if queries == 0 {
				t.Error("no queries")
			}
		})
	}
}
