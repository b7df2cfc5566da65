package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/eval"
)

// runEval runs `ripple eval args...` in process and returns its stdout.
func runEval(t *testing.T, args ...string) string {
	t.Helper()
	cmd := newEvalCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	require.NoError(t, cmd.Execute(), errOut.String())
	return out.String()
}

// TestEvalCategories: the categories beside a dataset reach the report,
// and --no-categories withholds them from Ripple into a report of its own.
func TestEvalCategories(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "Tiny.txt")
	require.NoError(t, os.WriteFile(data, []byte("u1 1 2 3\nu2 2 3 4\nu3 5 6 7\nu4 6 7 8\nu5 1 5 8\nu6 2 4 6\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Tiny_item2attributes.json"), []byte(`{"1": [7], "2": [7, 8], "3": [8], "4": [9], "5": [9], "6": [7], "7": [8], "8": [9]}`), 0o644))
	reports := filepath.Join(dir, "reports")

	out := runEval(t, "--dataset", data, "--report-dir", reports, "--quiet", "--no-train", "--format", "seq")
	assert.Contains(t, out, "| coverage@10 | ILD@10 | novelty@10 |")
	assert.Contains(t, out, "- item categories: 8 items, 3 distinct categories, from Tiny_item2attributes.json; given to Ripple")
	out = runEval(t, "--dataset", data, "--report-dir", reports, "--quiet", "--no-train", "--format", "seq", "--no-categories")
	assert.Contains(t, out, "withheld from Ripple (--no-categories)")

	for stem, fed := range map[string]bool{"Tiny-loo": true, "Tiny-loo-nocat": false} {
		b, err := os.ReadFile(filepath.Join(reports, stem+".json"))
		require.NoError(t, err)
		var r eval.Report
		require.NoError(t, json.Unmarshal(b, &r))
		require.NotNil(t, r.Categories, stem)
		assert.Equal(t, fed, r.Categories.Fed, stem)
		for _, m := range r.Models {
			assert.NotNil(t, m.ILD, "%s %s: no ILD", stem, m.Model)
			assert.Positive(t, m.Novelty, "%s %s", stem, m.Model)
		}
	}
}
