package deploytest

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	rulesDir = "../prometheus"
	runbook  = "../RUNBOOK.md"
)

// loadedRule is one rule with where it came from.
type loadedRule struct {
	file, group string
	rulefmt.Rule
	expr parser.Expr
}

func (r loadedRule) String() string {
	name := r.Record
	if r.Alert != "" {
		name = r.Alert
	}
	return fmt.Sprintf("%s: group %s: %s %v", filepath.Base(r.file), r.group, name, r.Labels)
}

// loadRules parses every rule file with Prometheus' own parser, which also
// validates the PromQL, the label names and the annotation templates.
func loadRules(t *testing.T) []loadedRule {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(rulesDir, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("want the recording and alerting rule files in %s, found %v", rulesDir, files)
	}
	var out []loadedRule
	for _, f := range files {
		rgs, errs := rulefmt.ParseFile(f, false)
		for _, err := range errs {
			t.Errorf("%v", err)
		}
		if rgs == nil {
			continue
		}
		for _, g := range rgs.Groups {
			for _, r := range g.Rules {
				expr, err := parser.ParseExpr(r.Expr)
				if err != nil {
					t.Errorf("%s: group %s: %v", f, g.Name, err)
					continue
				}
				out = append(out, loadedRule{file: f, group: g.Name, Rule: r, expr: expr})
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

func recordedNames(rules []loadedRule) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		if r.Record != "" {
			out[r.Record] = true
		}
	}
	return out
}

func TestRuleFilesParse(t *testing.T) {
	rules := loadRules(t)
	var records, alerts int
	groups := map[string]string{}
	for _, r := range rules {
		if prev, ok := groups[r.group]; ok && prev != r.file {
			t.Errorf("group name %q is used in %s and %s", r.group, prev, r.file)
		}
		groups[r.group] = r.file
		if r.Alert != "" {
			alerts++
		} else {
			records++
		}
	}
	t.Logf("%d recording rules, %d alerting rules", records, alerts)
}

// TestRulesNameExportedMetrics is the guard against renames: every metric,
// label and fixed label value the rules select must be exported by Ripple.
func TestRulesNameExportedMetrics(t *testing.T) {
	rules := loadRules(t)
	c := &checker{inv: exported(t), recorded: recordedNames(rules)}
	for _, r := range rules {
		for _, p := range c.check(r.expr) {
			t.Errorf("%s: %s", r, p)
		}
	}
}

func TestAlertsAreActionable(t *testing.T) {
	anchors := runbookAnchors(t)
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical (page) or warning (ticket)", r, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r, a)
			}
		}
		u := r.Annotations["runbook_url"]
		_, anchor, ok := strings.Cut(u, "deploy/RUNBOOK.md#")
		switch {
		case !ok:
			t.Errorf("%s: runbook_url %q does not point into deploy/RUNBOOK.md", r, u)
		case anchor != strings.ToLower(r.Alert):
			t.Errorf("%s: runbook_url anchor %q, want the alert's name %q", r, anchor, strings.ToLower(r.Alert))
		case !anchors[anchor]:
			t.Errorf("%s: deploy/RUNBOOK.md has no section %q (a heading named after the alert)", r, anchor)
		}
	}
}

// runbookAnchors returns the GitHub anchors of RUNBOOK.md's headings.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(runbook)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- ]`)
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if h, ok := strings.CutPrefix(sc.Text(), "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSLOTargetsAgree: the slo_target label of every SLO alert says the
// objective the recording rules hold, and the alert reads only its own
// SLO's series, each of which some rule records.
func TestSLOTargetsAgree(t *testing.T) {
	rules := loadRules(t)
	objectives := map[string]float64{}
	recordedSLOs := map[string]map[string]bool{} // record → slo label values; "*": inherited
	for _, r := range rules {
		if r.Record == "" {
			continue
		}
		slo := r.Labels["slo"]
		if slo == "" {
			slo = "*"
		}
		if recordedSLOs[r.Record] == nil {
			recordedSLOs[r.Record] = map[string]bool{}
		}
		recordedSLOs[r.Record][slo] = true
		if r.Record != "ripple_slo:objective:ratio" {
			continue
		}
		call, ok := r.expr.(*parser.Call)
		if !ok || call.Func.Name != "vector" || len(call.Args) != 1 {
			t.Errorf("%s: want vector(<objective>)", r)
			continue
		}
		n, ok := call.Args[0].(*parser.NumberLiteral)
		if !ok || n.Val <= 0 || n.Val >= 1 {
			t.Errorf("%s: want an objective between 0 and 1", r)
			continue
		}
		objectives[slo] = n.Val
	}
	if len(objectives) == 0 {
		t.Fatal("no ripple_slo:objective:ratio rules")
	}
	alerted := map[string]bool{}
	for _, r := range rules {
		slo := r.Labels["slo"]
		if r.Alert == "" || slo == "" {
			continue
		}
		alerted[slo] = true
		obj, ok := objectives[slo]
		if !ok {
			t.Errorf("%s: no ripple_slo:objective:ratio rule for slo %q", r, slo)
			continue
		}
		target, err := strconv.ParseFloat(strings.TrimSuffix(r.Labels["slo_target"], "%"), 64)
		if err != nil || math.Abs(target/100-obj) > 1e-9 {
			t.Errorf("%s: slo_target %q, but the recorded objective is %v", r, r.Labels["slo_target"], obj)
		}
		for _, vs := range selectors(r.expr) {
			for _, m := range matchers(vs, "slo") {
				name, _ := selectorName(vs)
				if m.Value != slo {
					t.Errorf("%s: reads %s of slo %q", r, vs, m.Value)
				}
				if have := recordedSLOs[name]; !have[m.Value] && !have["*"] {
					t.Errorf("%s: no rule records %s", r, vs)
				}
			}
		}
	}
	for slo := range objectives {
		if slo != "freshness" && !alerted[slo] {
			t.Errorf("slo %q has an objective but no burn-rate alert", slo)
		}
	}
}

// sloRouteGroups are the contract groups each request-based SLO covers.
var sloRouteGroups = map[string][]string{
	"ingest-availability": {"ingest"},
	"read-availability":   {"read", "recommend"},
	"recommend-latency":   {"recommend"},
}

// TestSLORoutesAreServed: each SLO's route matchers select exactly the
// routes of its group, as the API labels them. A renamed or re-patterned
// route fails here rather than silently leaving the SLO.
func TestSLORoutesAreServed(t *testing.T) {
	inv := exported(t)
	checked := map[string]int{}
	for _, r := range loadRules(t) {
		slo := r.Labels["slo"]
		for _, vs := range selectors(r.expr) {
			ms := matchers(vs, "route")
			if len(ms) == 0 {
				continue
			}
			groups, ok := sloRouteGroups[slo]
			if !ok {
				t.Errorf("%s: selects routes, but the test does not know which group slo %q covers", r, slo)
				continue
			}
			var want, got []string
			for c, route := range inv.routes {
				label := c.method + " " + c.path + " (" + route + ")"
				if slices.Contains(groups, c.group) {
					want = append(want, label)
				}
				if matchesAll(ms, route) {
					got = append(got, label)
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(want, "\n") != strings.Join(got, "\n") {
				t.Errorf("%s: %s selects\n\t%s\nwant\n\t%s", r, vs, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
			checked[slo]++
		}
	}
	for slo := range sloRouteGroups {
		if checked[slo] == 0 {
			t.Errorf("no rule of slo %q selects routes", slo)
		}
	}
}

// TestFeatureGroupsHaveRefreshInterval: the staleness alert compares each
// group with its recorded refresh interval, so a group without one would
// never alert.
func TestFeatureGroupsHaveRefreshInterval(t *testing.T) {
	const name = "ripple_feature_group_staleness_seconds"
	f := exported(t).families[name]
	if f == nil || len(f.values["group"]) == 0 {
		t.Fatalf("%s{group} is not exported", name)
	}
	have := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Record == "ripple:feature_group_refresh_interval_seconds" {
			have[r.Labels["group"]] = true
		}
	}
	for g := range f.values["group"] {
		if !have[g] {
			t.Errorf("feature group %q has no ripple:feature_group_refresh_interval_seconds rule", g)
		}
	}
}

func matchesAll(ms []*labels.Matcher, v string) bool {
	for _, m := range ms {
		if !m.Matches(v) {
			return false
		}
	}
	return true
}
