package deploytest

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// prometheusSeries are made by Prometheus itself, not exported by Ripple.
var prometheusSeries = map[string]bool{"up": true}

// checker reports every selector of an expression that names a metric,
// label or label value Ripple does not export.
type checker struct {
	inv      *inventory
	recorded map[string]bool // series the rule files record
}

func (c *checker) check(expr parser.Expr) []string {
	var problems []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			problems = append(problems, c.selector(vs)...)
		}
		return nil
	})
	return problems
}

func selectorName(vs *parser.VectorSelector) (string, bool) {
	if vs.Name != "" {
		return vs.Name, true
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value, true
		}
	}
	return "", false
}

func (c *checker) selector(vs *parser.VectorSelector) []string {
	name, ok := selectorName(vs)
	if !ok {
		return []string{fmt.Sprintf("%s: name one metric (__name__=\"...\"), so it can be checked", vs)}
	}
	if c.recorded[name] || prometheusSeries[name] {
		return nil
	}
	f, suffix := c.inv.lookup(name)
	if f == nil {
		return []string{fmt.Sprintf("%s: Ripple exports no metric %s (and no rule records it)", vs, name)}
	}
	var out []string
	for _, m := range vs.LabelMatchers {
		switch {
		case m.Name == labels.MetricName || targetLabels[m.Name]:
		case m.Name == "le" && suffix == "_bucket":
			out = append(out, bound(vs, m, "bucket", f.buckets)...)
		case m.Name == "quantile" && suffix == "" && f.typ == dto.MetricType_SUMMARY:
			out = append(out, bound(vs, m, "quantile", f.quantiles)...)
		case !f.labels[m.Name]:
			out = append(out, fmt.Sprintf("%s: %s has no label %q (it has %s)", vs, name, m.Name, keys(f.labels)))
		case openLabels[m.Name] || m.Type == labels.MatchNotEqual || m.Type == labels.MatchNotRegexp:
		case len(f.values[m.Name]) > 0 && !matchesAny(m, f.values[m.Name]):
			out = append(out, fmt.Sprintf("%s: %s matches no value Ripple gives %s.%s (%s)", vs, m, name, m.Name,
				keys(f.values[m.Name])))
		}
	}
	return out
}

// bound checks an le or quantile matcher names a boundary that exists.
func bound(vs *parser.VectorSelector, m *labels.Matcher, what string, have []float64) []string {
	v, err := strconv.ParseFloat(m.Value, 64)
	if m.Type != labels.MatchEqual || err != nil {
		return []string{fmt.Sprintf("%s: match one %s with %s=\"<number>\"", vs, what, m.Name)}
	}
	if !slices.Contains(have, v) {
		return []string{fmt.Sprintf("%s: no %s %s=%q; the %ss are %v", vs, what, m.Name, m.Value, what, have)}
	}
	return nil
}

// lookup finds the family of a series name: the name itself, or a
// histogram's _bucket/_sum/_count or a summary's _sum/_count series.
func (inv *inventory) lookup(name string) (*family, string) {
	if f := inv.families[name]; f != nil {
		return f, ""
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		f := inv.families[base]
		if !ok || f == nil {
			continue
		}
		if f.typ == dto.MetricType_HISTOGRAM || f.typ == dto.MetricType_SUMMARY && suffix != "_bucket" {
			return f, suffix
		}
	}
	return nil, ""
}

func matchesAny(m *labels.Matcher, values map[string]bool) bool {
	for v := range values {
		if m.Matches(v) {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// selectors returns the vector selectors of expr.
func selectors(expr parser.Expr) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// matchers returns the matchers of vs on label.
func matchers(vs *parser.VectorSelector, label string) []*labels.Matcher {
	var out []*labels.Matcher
	for _, m := range vs.LabelMatchers {
		if m.Name == label {
			out = append(out, m)
		}
	}
	return out
}
