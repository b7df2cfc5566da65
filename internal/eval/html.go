package eval

import (
	"fmt"
	"html/template"
	"io"
	"strings"
)

// WriteHTML writes the report as one self-contained HTML page: the metric
// table, bars comparing the models at 10 (accuracy, coverage, diversity,
// novelty) and HR@k / NDCG@k curves (k = 1..Depth) for every model, as
// inline SVG, so it opens anywhere with nothing to fetch.
func (r *Report) WriteHTML(w io.Writer) error {
	var md strings.Builder
	if err := r.WriteMarkdown(&md); err != nil {
		return err
	}
	data := struct {
		R         *Report
		Table     template.HTML
		Compare   template.HTML
		HR, NDCG  template.HTML
		Generated string
	}{R: r, Table: markdownTable(md.String()), Compare: r.compareSVG(), Generated: r.Created.Format("2006-01-02 15:04 UTC")}
	data.HR = r.curveSVG("HR@k", func(a AtK) float64 { return a.HR })
	data.NDCG = r.curveSVG("NDCG@k", func(a AtK) float64 { return a.NDCG })
	return htmlPage.Execute(w, data)
}

var htmlPage = template.Must(template.New("report").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Ripple eval: {{.R.Dataset}}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}.plots{display:flex;gap:2em;flex-wrap:wrap}</style></head>
<body><h1>{{.R.Dataset}}: {{.R.Title}} ({{.R.Split}} split)</h1>
<p>Generated {{.Generated}}; {{.R.Counts.Evaluated}} cases evaluated; each model ranks the whole catalogue{{if .R.Counts.TestSessions}} with the session's own items kept{{else}} with the user's history excluded{{end}}; ties count against the target.</p>
{{.Table}}
<h2>Models at 10</h2>
{{.Compare}}
<div class="plots">{{.HR}}{{.NDCG}}</div>
</body></html>
`))

// markdownTable renders the Markdown report: its first table as an HTML
// table, the rest as preformatted text.
func markdownTable(md string) template.HTML {
	var b strings.Builder
	var rest []string
	inTable, done := false, false
	for _, line := range strings.Split(md, "\n") {
		if !done && strings.HasPrefix(line, "|") {
			if !inTable {
				b.WriteString("<table>")
				inTable = true
			}
			if strings.HasPrefix(line, "|---") {
				continue
			}
			b.WriteString("<tr>")
			for _, cell := range strings.Split(strings.Trim(line, "|"), "|") {
				fmt.Fprintf(&b, "<td>%s</td>", template.HTMLEscapeString(strings.TrimSpace(cell)))
			}
			b.WriteString("</tr>")
			continue
		}
		if inTable && !done {
			b.WriteString("</table>")
			done = true
		}
		if strings.HasPrefix(line, "## ") {
			continue
		}
		rest = append(rest, line)
	}
	if inTable && !done {
		b.WriteString("</table>")
	}
	fmt.Fprintf(&b, "<pre>%s</pre>", template.HTMLEscapeString(strings.TrimSpace(strings.Join(rest, "\n"))))
	return template.HTML(b.String())
}

// comparedMetric is one column of compareSVG.
type comparedMetric struct {
	title  string
	value  func(*ModelResult) (float64, bool)
	format string
}

func comparedMetrics() []comparedMetric {
	return []comparedMetric{
		{"HR@10", func(m *ModelResult) (float64, bool) { return m.HR(10), true }, "%.4f"},
		{"NDCG@10", func(m *ModelResult) (float64, bool) { return m.NDCG(10), true }, "%.4f"},
		{fmt.Sprintf("coverage@%d", CoverageK), func(m *ModelResult) (float64, bool) { return m.Coverage, true }, "%.3f"},
		{fmt.Sprintf("ILD@%d", CoverageK), func(m *ModelResult) (float64, bool) {
			if m.ILD == nil {
				return 0, false
			}
			return *m.ILD, true
		}, "%.3f"},
		{fmt.Sprintf("novelty@%d (bits)", CoverageK), func(m *ModelResult) (float64, bool) { return m.Novelty, true }, "%.2f"},
	}
}

// compareSVG draws one row per model and one column of bars per metric,
// each column scaled to its own largest value, so a model's trade-off
// (accuracy against coverage, diversity and novelty) reads across its row.
// A metric no model has (ILD without categories) gets no column.
func (r *Report) compareSVG() template.HTML {
	const label, col, gap, row, head = 230.0, 150.0, 20.0, 22.0, 24.0
	var cols []comparedMetric
	var maxes []float64
	for _, c := range comparedMetrics() {
		top, has := 0.0, false
		for i := range r.Models {
			if v, ok := c.value(&r.Models[i]); ok {
				top, has = max(top, v), true
			}
		}
		if has {
			cols = append(cols, c)
			maxes = append(maxes, top)
		}
	}
	w := label + float64(len(cols))*(col+gap)
	h := head + row*float64(len(r.Models)) + 6
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-size="11">`, w, h)
	for j, c := range cols {
		fmt.Fprintf(&b, `<text x="%g" y="14" font-size="12">%s</text>`, label+float64(j)*(col+gap), template.HTMLEscapeString(c.title))
	}
	for i := range r.Models {
		m := &r.Models[i]
		y := head + row*float64(i)
		fmt.Fprintf(&b, `<text x="0" y="%g">%s</text>`, y+row/2+4, template.HTMLEscapeString(m.Model))
		for j, c := range cols {
			x := label + float64(j)*(col+gap)
			v, ok := c.value(m)
			if !ok {
				fmt.Fprintf(&b, `<text x="%g" y="%g">—</text>`, x, y+row/2+4)
				continue
			}
			bar := 0.0
			if maxes[j] > 0 {
				bar = (col - 50) * v / maxes[j]
			}
			fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%.1f" height="%g" fill="%s"/>`, x, y+3, bar, row-6, palette[i%len(palette)])
			fmt.Fprintf(&b, `<text x="%.1f" y="%g">`+c.format+`</text>`, x+bar+4, y+row/2+4, v)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

// curveSVG plots metric against k for every model with a curve.
func (r *Report) curveSVG(title string, metric func(AtK) float64) template.HTML {
	const w, h, left, bottom, top, right = 520.0, 340.0, 55.0, 40.0, 30.0, 170.0
	maxY := 0.0
	for _, m := range r.Models {
		for _, a := range m.Curve {
			maxY = max(maxY, metric(a))
		}
	}
	if maxY == 0 {
		maxY = 1
	}
	maxY *= 1.1
	x := func(k int) float64 { return left + (w-left-right)*float64(k-1)/float64(max(Depth-1, 1)) }
	y := func(v float64) float64 { return h - bottom - (h-bottom-top)*v/maxY }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-size="11">`, w, h)
	fmt.Fprintf(&b, `<text x="%g" y="18" font-size="14">%s</text>`, left, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`, left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`, left, top, left, h-bottom)
	for _, k := range []int{1, 5, 10, 20, 30, 40, 50} {
		if k > Depth {
			continue
		}
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%d</text>`, x(k), h-bottom+15, k)
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#eee"/>`, x(k), top, x(k), h-bottom)
	}
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end">%.3f</text>`, left-4, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">k</text>`, (left+w-right)/2, h-8)
	for i, m := range r.Models {
		if len(m.Curve) == 0 {
			continue
		}
		color := palette[i%len(palette)]
		var pts strings.Builder
		for _, a := range m.Curve {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(a.K), y(metric(a)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`, color, strings.TrimSpace(pts.String()))
		ly := top + 14*float64(i)
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="3"/>`, w-right+10, ly, w-right+25, ly, color)
		fmt.Fprintf(&b, `<text x="%g" y="%g">%s</text>`, w-right+30, ly+4, template.HTMLEscapeString(m.Model))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
