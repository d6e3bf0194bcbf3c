package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The plot: one row per workload shape, one bar per test case, each bar the
// test case's average throughput divided by the row's baseline measured in
// the same run. The baseline is the stock scheduler on plain pods of the same
// nodes and pods where the run has it, else the first bar of the row.

type bar struct {
	series string
	value  float64
}

type chartRow struct {
	label, baseline string
	bars            []bar
}

// series: name in the legend, test case, and colour.
var series = []struct {
	label, testCase, colour string
}{
	{"stock scheduler, plain pods", tcPlain, "#9e9e9e"},
	{"cosched, plain pods", tcPlainCosched, "#616161"},
	{"cosched gangs", tcGang, "#1565c0"},
	{"in-tree gangs (GenericWorkload)", tcInTree, "#ef6c00"},
	{"cosched atomic (pod affinity)", tcAtomic, "#2e7d32"},
	{"cosched atomic (annotation)", tcAnnotated, "#81c784"},
	{"cosched member-by-member (pod affinity)", tcMemberByMember, "#c62828"},
}

func colourOf(testCase string) string {
	for _, s := range series {
		if s.testCase == testCase {
			return s.colour
		}
	}
	return "#000000"
}

func labelOf(testCase string) string {
	for _, s := range series {
		if s.testCase == testCase {
			return s.label
		}
	}
	return testCase
}

func (r *run) chartRows() []chartRow {
	var rows []chartRow
	add := func(label string, base *workload, baseName string, members []*workload) {
		var row chartRow
		row.label = label
		var den float64
		if base.avg() > 0 {
			den, row.baseline = base.avg(), baseName
		}
		for _, w := range members {
			if w.avg() <= 0 {
				continue
			}
			if den == 0 {
				den, row.baseline = w.avg(), labelOf(w.testCase)
			}
			row.bars = append(row.bars, bar{series: w.testCase, value: w.avg() / den})
		}
		if len(row.bars) > 0 {
			rows = append(rows, row)
		}
	}
	for _, name := range r.names(tcPlain) {
		var ws []*workload
		for _, tc := range []string{tcPlain, tcPlainCosched, tcGang, tcInTree} {
			if w := r.get(tc, name); w != nil {
				ws = append(ws, w)
			}
		}
		add(name, r.get(tcPlain, name), labelOf(tcPlain), ws)
	}
	for _, name := range r.names(tcAtomic) {
		s, _ := parseShape(name)
		var ws []*workload
		if w := r.get(tcGang, s.base); w != nil && s.base != "" {
			ws = append(ws, w)
		}
		for _, tc := range []string{tcAtomic, tcAnnotated, tcMemberByMember} {
			if w := r.get(tc, name); w != nil {
				ws = append(ws, w)
			}
		}
		add(name, r.get(tcPlain, s.base), labelOf(tcPlain), ws)
	}
	return rows
}

func renderSVG(r *run) string {
	rows := r.chartRows()
	const (
		left     = 260.0
		plotW    = 460.0
		right    = 60.0
		barH     = 14.0
		barGap   = 3.0
		rowGap   = 16.0
		top      = 56.0
		legendLH = 18.0
	)
	maxV := 1.0
	for _, row := range rows {
		for _, b := range row.bars {
			maxV = math.Max(maxV, b.value)
		}
	}
	maxV = math.Ceil(maxV*4) / 4
	x := func(v float64) float64 { return left + v/maxV*plotW }

	var body strings.Builder
	y := top
	for _, row := range rows {
		rowH := float64(len(row.bars))*(barH+barGap) - barGap
		fmt.Fprintf(&body, `<text x="%.0f" y="%.1f" text-anchor="end" font-size="12">%s</text>`+"\n", left-8, y+rowH/2-2, html.EscapeString(row.label))
		fmt.Fprintf(&body, `<text x="%.0f" y="%.1f" text-anchor="end" font-size="10" fill="#555">vs %s</text>`+"\n", left-8, y+rowH/2+11, html.EscapeString(row.baseline))
		for _, b := range row.bars {
			fmt.Fprintf(&body, `<rect x="%.0f" y="%.1f" width="%.1f" height="%.0f" fill="%s"><title>%s: %.2f</title></rect>`+"\n",
				left, y, x(b.value)-left, barH, colourOf(b.series), html.EscapeString(labelOf(b.series)), b.value)
			fmt.Fprintf(&body, `<text x="%.1f" y="%.1f" font-size="10">%.2f</text>`+"\n", x(b.value)+4, y+barH-3, b.value)
			y += barH + barGap
		}
		y += rowGap
	}
	plotBottom := y - rowGap + 4
	if len(rows) == 0 {
		fmt.Fprintf(&body, `<text x="%.0f" y="%.0f" font-size="12">No workload of this run measured throughput (the smoke sizes are too short to sample).</text>`+"\n", left, top+12)
		plotBottom = top + 24
	}

	var axis strings.Builder
	for v := 0.0; v <= maxV+1e-9; v += 0.25 {
		colour := "#e0e0e0"
		if math.Abs(v-1) < 1e-9 {
			colour = "#424242"
		}
		fmt.Fprintf(&axis, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x(v), top-6, x(v), plotBottom, colour)
		fmt.Fprintf(&axis, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.2f</text>`+"\n", x(v), plotBottom+14, v)
	}

	var legend strings.Builder
	ly := plotBottom + 36
	for _, s := range series {
		fmt.Fprintf(&legend, `<rect x="%.0f" y="%.1f" width="12" height="12" fill="%s"/>`+"\n", left, ly-10, s.colour)
		fmt.Fprintf(&legend, `<text x="%.0f" y="%.1f" font-size="11">%s</text>`+"\n", left+18, ly, html.EscapeString(s.label))
		ly += legendLH
	}
	width, height := left+plotW+right, ly+8

	var out strings.Builder
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif">`+"\n", width, height, width, height)
	fmt.Fprintf(&out, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&out, `<text x="12" y="22" font-size="14" font-weight="bold">Scheduling throughput, relative to a baseline of the same run</text>`+"\n")
	fmt.Fprintf(&out, `<text x="12" y="40" font-size="11" fill="#555">average SchedulingThroughput / baseline&apos;s; baseline: the stock scheduler on plain pods of the same nodes and pods where measured</text>`+"\n")
	out.WriteString(axis.String())
	out.WriteString(body.String())
	out.WriteString(legend.String())
	out.WriteString("</svg>\n")
	return out.String()
}
