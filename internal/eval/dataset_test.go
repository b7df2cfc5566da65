package eval

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ripple-rec/ripple/internal/event"
)

func readString(t *testing.T, format, text string) *Dataset {
	t.Helper()
	d, err := Read(strings.NewReader(text), format)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func items(evs []event.Interaction) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.User + ":" + e.Item
	}
	return out
}

func TestReadOrdersByTimeStably(t *testing.T) {
	// MovieLens: user, item, rating, unix seconds. u1's events arrive out of
	// order; i2 and i3 share a timestamp and keep file order.
	d := readString(t, event.FormatMovieLens, "u1\ti1\t5\t300\nu2\ti1\t4\t100\nu1\ti2\t3\t200\nu1\ti3\t3\t200\n")
	if d.Events != 4 || d.Items != 3 || len(d.Users) != 2 || d.Users[0].User != "u1" {
		t.Fatalf("dataset %+v", d)
	}
	if got := items(d.Users[0].Events); !slices.Equal(got, []string{"u1:i2", "u1:i3", "u1:i1"}) {
		t.Fatalf("u1 = %v", got)
	}
}

func TestSplit(t *testing.T) {
	// Sequence files give position n the time SeqEpoch + n minutes, so users
	// interleave by position; equal times order by user id.
	d := readString(t, event.FormatSeq, "b 1 2 3 4\na 5 6 7\nc 8 9\n")
	tests := []struct {
		split   Split
		train   []string
		cases   []Case
		skipped int
	}{
		{
			SplitTest,
			// c has 2 events: not evaluated, all of it is training input.
			[]string{"a:5", "b:1", "c:8", "a:6", "b:2", "c:9", "b:3"},
			[]Case{{User: "b", History: []string{"1", "2", "3"}, Target: "4"}, {User: "a", History: []string{"5", "6"}, Target: "7"}},
			1,
		},
		{
			SplitValid,
			// The test item is held out too: it is later than the target.
			[]string{"a:5", "b:1", "c:8", "b:2", "c:9"},
			[]Case{{User: "b", History: []string{"1", "2"}, Target: "3"}, {User: "a", History: []string{"5"}, Target: "6"}},
			1,
		},
	}
	for _, tc := range tests {
		t.Run(string(tc.split), func(t *testing.T) {
			h, err := d.Split(tc.split)
			if err != nil {
				t.Fatal(err)
			}
			if got := items(h.Train); !slices.Equal(got, tc.train) {
				t.Errorf("train = %v, want %v", got, tc.train)
			}
			if len(h.Cases) != len(tc.cases) {
				t.Fatalf("cases = %+v, want %+v", h.Cases, tc.cases)
			}
			for i, c := range h.Cases {
				w := tc.cases[i]
				if c.User != w.User || c.Target != w.Target || !slices.Equal(c.History, w.History) {
					t.Errorf("case %d = %+v, want %+v", i, c, w)
				}
			}
			if h.Skipped != tc.skipped {
				t.Errorf("skipped = %d, want %d", h.Skipped, tc.skipped)
			}
		})
	}
	if _, err := d.Split("train"); err == nil {
		t.Error("unknown split accepted")
	}
}

func TestTargetInHistory(t *testing.T) {
	if !(&Case{History: []string{"a", "b"}, Target: "a"}).TargetInHistory() {
		t.Error("repeat not detected")
	}
	if (&Case{History: []string{"a", "b"}, Target: "c"}).TargetInHistory() {
		t.Error("false repeat")
	}
}

func TestInferFormatAndName(t *testing.T) {
	tests := []struct {
		path, format, name string
	}{
		{"../shared/datasets/amazon-seq/Toys_and_Games/Toys_and_Games.txt", event.FormatSeq, "Toys_and_Games"},
		{"../shared/datasets/ml-100k/u.data", event.FormatMovieLens, "ml-100k"},
		{"/data/ml-latest-small/ratings.csv", event.FormatMovieLens, "ml-latest-small"},
		{"exports/clicks.ndjson", event.FormatNDJSON, "clicks"},
		{"exports/clicks.csv", event.FormatCSV, "clicks"},
		{"notes.txt", "", "notes"},
	}
	for _, tc := range tests {
		f, err := InferFormat(tc.path)
		if f != tc.format || (tc.format == "") != (err != nil) {
			t.Errorf("InferFormat(%s) = %q, %v; want %q", tc.path, f, err, tc.format)
		}
		if n := DatasetName(tc.path); n != tc.name {
			t.Errorf("DatasetName(%s) = %q, want %q", tc.path, n, tc.name)
		}
	}
	if n := DatasetName(filepath.Join(t.TempDir(), "ml-1m", "u.data")); n != "ml-1m" {
		t.Errorf("absolute path: %q", n)
	}
}
