package eval

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
)

// sessionsOf builds sessions from "id:item item ..." specs, one minute per
// position from t0.
func sessionsOf(t0 int64, specs ...string) []Sequence {
	var out []Sequence
	for _, spec := range specs {
		id, items, _ := strings.Cut(spec, ":")
		s := Sequence{User: id}
		for i, it := range strings.Fields(items) {
			s.Events = append(s.Events, event.Interaction{Type: "click", User: id, Session: id, Item: it, TS: t0 + int64(i)*60_000})
		}
		out = append(out, s)
	}
	return out
}

func TestSplitSessions(t *testing.T) {
	train := sessionsOf(0, "t1:a b c", "t2:b c d")
	// x and y never occur in training: removed. s2 keeps one event and is
	// dropped; s1 revisits b, which must stay a rankable target.
	test := sessionsOf(1e6, "s1:a x b c b", "s2:y d y", "s3:c d")
	h, err := sessionDataset(train, test).SplitSessions()
	if err != nil {
		t.Fatal(err)
	}
	if h.Sessions != 2 || h.Skipped != 1 || h.RemovedUnknown != 3 || len(h.Train) != 6 {
		t.Fatalf("sessions %d, skipped %d, removed %d, train %d", h.Sessions, h.Skipped, h.RemovedUnknown, len(h.Train))
	}
	if got := items(h.Train); !slices.Equal(got, []string{"t1:a", "t2:b", "t1:b", "t2:c", "t1:c", "t2:d"}) {
		t.Errorf("train = %v", got)
	}
	want := []Case{
		{User: "s1", History: []string{"a"}, Target: "b"},
		{User: "s1", History: []string{"a", "b"}, Target: "c"},
		{User: "s1", History: []string{"a", "b", "c"}, Target: "b"},
		{User: "s3", History: []string{"c"}, Target: "d"},
	}
	if len(h.Cases) != len(want) {
		t.Fatalf("cases %+v", h.Cases)
	}
	for i, c := range h.Cases {
		w := want[i]
		if c.User != w.User || c.Target != w.Target || !slices.Equal(c.History, w.History) || !c.IncludeSeen || len(c.Input) != len(c.History) {
			t.Errorf("case %d = %+v, want %+v with its input and IncludeSeen", i, c, w)
		}
		for j, e := range c.Input {
			if e.Item != c.History[j] || e.User != c.User {
				t.Errorf("case %d input %d = %+v", i, j, e)
			}
		}
	}
	if _, err := sessionDataset(train, nil).SplitSessions(); err == nil {
		t.Error("a dataset without test sessions split into sessions")
	}
}

// Under the session protocol a repeated item is a target every model can
// hit: PopRec, S-POP, SR and the serving pipeline all rank history.
func TestSessionRankingKeepsHistory(t *testing.T) {
	train := sessionsOf(0, "t1:a b", "t2:a b", "t3:b a", "t4:c d", "t5:c d", "t6:c d")
	d := sessionDataset(train, sessionsOf(1e6, "s:a b a"))
	d.Name = "repeats"
	r, err := Run(context.Background(), d, Options{NoTrain: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Protocol != ProtocolSession || r.Counts.Evaluated != 2 || r.Counts.TargetsInHistory != 1 {
		t.Fatalf("protocol %s, counts %+v", r.Protocol, r.Counts)
	}
	for _, name := range []string{ModelServing, ModelPopRec, ModelSPop, ModelSR} {
		m := modelResult(t, r, name)
		if m.HistoryReturned != 0 {
			t.Errorf("%s: history returned %d under a protocol that keeps it", name, m.HistoryReturned)
		}
		// Both targets (b after a; a after a b) are among the training
		// items every model lists: within the top 5 for each.
		if m.HR(5) != 1 {
			t.Errorf("%s: HR@5 %.2f, want 1: a history item was left out of the ranking", name, m.HR(5))
		}
	}
	// S-POP puts the session's own items first, the most visited first.
	sp := NewSessionPop(d.Users[0].Events)
	list, _ := sp.Rank(context.Background(), &Case{History: []string{"b", "b", "a"}, IncludeSeen: true}, 3)
	if ids := scoredIDs(list); !slices.Equal(ids, []string{"b", "a"}) {
		t.Errorf("S-POP after b b a = %v, want b, a first", ids)
	}
	if _, err := Run(context.Background(), d, Options{Protocol: ProtocolLOO}); err == nil {
		t.Error("a session dataset ran under leave-one-out")
	}
}

func scoredIDs(l []features.Scored) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.ID
	}
	return out
}

func TestSessionRules(t *testing.T) {
	// a b c: a→b 1, b→c 1, a→c 1/2. a c: a→c 1. b a: b→a 1.
	train := sessionsOf(0, "1:a b c", "2:a c", "3:b a")
	var evs []event.Interaction
	for _, s := range train {
		evs = append(evs, s.Events...)
	}
	sortForReplay(evs)
	sr := NewSessionRules(evs)
	got, _ := sr.Rank(context.Background(), &Case{History: []string{"b", "a"}, IncludeSeen: true}, 10)
	if len(got) != 2 || got[0].ID != "c" || got[0].Score != 1.5 || got[1].ID != "b" || got[1].Score != 1 {
		t.Fatalf("rules after a = %+v, want c 1.5, b 1", got)
	}
	got, _ = sr.Rank(context.Background(), &Case{History: []string{"b", "a"}}, 10)
	if len(got) != 1 || got[0].ID != "c" {
		t.Fatalf("with history excluded = %+v, want c alone", got)
	}
}

func TestMRR(t *testing.T) {
	outs := []outcome{{rank: 1}, {rank: 4}, {rank: 25}, {rank: 0}}
	for _, tc := range []struct {
		k    int
		want float64
	}{{1, 0.25}, {5, (1 + 0.25) / 4}, {20, (1 + 0.25) / 4}, {50, (1 + 0.25 + 1.0/25) / 4}} {
		if got := at(outs, tc.k).MRR; math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("MRR@%d = %v, want %v", tc.k, got, tc.want)
		}
	}
}

// diginetica is a train-item-views.csv whose SR-GNN preprocessing is known:
//   - session 1 has one view: dropped before counting;
//   - items a, b, c are viewed 5 times or more, rare 2 times (by 2 and 5);
//   - session 2's views come out of order within the file: timeframe orders them;
//   - session 5 keeps one view once rare is dropped: dropped;
//   - dates: newest 2016-01-20, split 2016-01-13: sessions 6, 7 (after) are
//     test, session 8 (on the split day) is in neither, the others train.
const diginetica = `session_id;user_id;item_id;timeframe;eventdate
1;NA;a;10;2016-01-01
2;NA;b;900;2016-01-02
2;7;a;100;2016-01-02
2;7;c;500;2016-01-02
3;NA;a;1;2016-01-03
3;NA;b;2;2016-01-03
4;NA;c;1;2016-01-04
4;NA;a;2;2016-01-04
4;NA;b;3;2016-01-04
4;NA;rare;4;2016-01-04
5;NA;c;1;2016-01-05
5;NA;rare;2;2016-01-05
6;NA;a;1;2016-01-20
6;NA;c;2;2016-01-20
7;NA;b;1;2016-01-14
7;NA;c;2;2016-01-14
8;NA;a;1;2016-01-13
8;NA;b;2;2016-01-13`

func TestPreprocessSRGNN(t *testing.T) {
	d := PreprocessSRGNN(readString(t, event.FormatDiginetica, diginetica))
	seqs := func(ss []Sequence) []string {
		var out []string
		for _, s := range ss {
			var it []string
			for _, e := range s.Events {
				it = append(it, e.Item)
			}
			out = append(out, s.User+":"+strings.Join(it, " "))
		}
		return out
	}
	if got := seqs(d.Users); !slices.Equal(got, []string{"2:a c b", "3:a b", "4:c a b"}) {
		t.Errorf("train = %v", got)
	}
	if got := seqs(d.Test); !slices.Equal(got, []string{"7:b c", "6:a c"}) {
		t.Errorf("test = %v", got)
	}
	if d.Items != 3 || d.Events != 12 || len(d.Notes) != 1 {
		t.Errorf("items %d, events %d, notes %q", d.Items, d.Events, d.Notes)
	}
	for _, want := range []string{"1 sessions of length 1 dropped", "2 views of items seen fewer than 5 times dropped, then 1 sessions",
		"after 2016-01-13", "3 training and 2 test sessions, 1 sessions dated on the split day"} {
		if !strings.Contains(d.Notes[0], want) {
			t.Errorf("note %q lacks %q", d.Notes[0], want)
		}
	}
	if p := DefaultProtocol(d); p != ProtocolSession {
		t.Errorf("protocol %s", p)
	}
}

func TestLoadTaobao(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "UserBehavior.csv")
	// Row 3 is a day before the window (UTC+8), row 4 on its last second.
	const in = "1,10,100,pv,1511544070\n1,11,100,fav,1511561733\n1,12,101,pv,1511452800\n2,10,100,buy,1512316799\n2,13,102,cart,1512316800\n"
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := DatasetFile(dir)
	if err != nil || file != path {
		t.Fatalf("DatasetFile = %q, %v", file, err)
	}
	format, err := InferFormat(file)
	if err != nil || format != event.FormatTaobao {
		t.Fatalf("format %q, %v", format, err)
	}
	d, err := LoadFile(file, format)
	if err != nil {
		t.Fatal(err)
	}
	if d.Events != 3 || d.Items != 2 || len(d.Users) != 2 || DefaultProtocol(d) != ProtocolLOO {
		t.Fatalf("dataset %+v", d)
	}
	if types := []string{d.Users[0].Events[1].Type, d.Users[1].Events[0].Type}; !slices.Equal(types, []string{"cart", "purchase"}) {
		t.Errorf("fav, buy read as %v", types)
	}
	if len(d.Notes) != 1 || !strings.HasPrefix(d.Notes[0], "2 rows outside the documented window") {
		t.Errorf("notes %q", d.Notes)
	}
	c := d.Categories
	if c == nil || c.Source != path || len(c.Items) != 2 || c.Items[0].ID != "10" || !slices.Equal(c.Items[0].Categories, []string{"100"}) {
		t.Fatalf("categories %+v", c)
	}
}

func TestLoadYooChoose(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("yoochoose-clicks-x_train_full.txt", "SessionId\tItemId\tTime\n1\ta\t1.5\n1\tb\t2\n2\tb\t3\n")
	write("yoochoose-clicks-x_test.txt", "SessionId\tItemId\tTime\n3\ta\t10\n3\tb\t11\n")
	write("yoochoose-clicks-x_train_tr.txt", "SessionId\tItemId\tTime\n1\ta\t1.5\n")
	write("yoochoose-clicks-x_train_valid.txt", "SessionId\tItemId\tTime\n2\tb\t3\n2\ta\t4\n")
	file, err := DatasetFile(dir)
	if err != nil || filepath.Base(file) != "yoochoose-clicks-x_train_full.txt" {
		t.Fatalf("DatasetFile = %q, %v", file, err)
	}
	for _, tc := range []struct {
		file, name       string
		train, test, evs int
	}{
		{"yoochoose-clicks-x_train_full.txt", "yoochoose-clicks-x", 2, 1, 5},
		{"yoochoose-clicks-x_test.txt", "yoochoose-clicks-x", 2, 1, 5},
		{"yoochoose-clicks-x_train_tr.txt", "yoochoose-clicks-x-valid", 1, 1, 3},
	} {
		d, err := LoadFile(filepath.Join(dir, tc.file), event.FormatYooChoose)
		if err != nil {
			t.Fatal(err)
		}
		if d.Name != tc.name || len(d.Users) != tc.train || len(d.Test) != tc.test || d.Events != tc.evs || DefaultProtocol(d) != ProtocolSession {
			t.Errorf("%s: name %q, %d train, %d test sessions, %d events", tc.file, d.Name, len(d.Users), len(d.Test), d.Events)
		}
	}
	if _, err := LoadFile(filepath.Join(dir, "yoochoose-clicks.txt"), event.FormatYooChoose); err == nil || !strings.Contains(err.Error(), "not a session-rec YooChoose file") {
		t.Errorf("unpaired file: %v", err)
	}
}

// The real session datasets under their protocol, limited to stay quick.
func TestSessionDatasets(t *testing.T) {
	for _, tc := range []struct {
		rel                      string
		sessions, cases, removed int
	}{
		// SOURCE.txt: 3,416 test sessions, 13,568 clicks, every item known.
		{"yoochoose-100k-sessionrec", 3416, 13568 - 3416, 0},
		{"diginetica-sample-srgnn/sample_train-item-views.csv", 39, 99, 24},
	} {
		t.Run(filepath.Base(tc.rel), func(t *testing.T) {
			file, err := DatasetFile(datasetPath(t, tc.rel))
			if err != nil {
				t.Fatal(err)
			}
			format, err := InferFormat(file)
			if err != nil {
				t.Fatal(err)
			}
			d, err := LoadFile(file, format)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r, err := Run(context.Background(), d, Options{NoTrain: true, LimitUsers: 2000})
			if err != nil {
				t.Fatal(err)
			}
			c := r.Counts
			if r.Protocol != ProtocolSession || c.TestSessions != tc.sessions || c.Evaluated+c.NotEvaluated != tc.cases || c.RemovedUnknown != tc.removed {
				t.Fatalf("protocol %s, counts %+v", r.Protocol, c)
			}
			pipe, pop, sr := modelResult(t, r, ModelServing), modelResult(t, r, ModelPopRec), modelResult(t, r, ModelSR)
			t.Logf("%d cases in %v: HR@20 / MRR@20 pipeline %.4f / %.4f, SR %.4f / %.4f, PopRec %.4f / %.4f", c.Evaluated, time.Since(start),
				pipe.HR(20), pipe.MRR(20), sr.HR(20), sr.MRR(20), pop.HR(20), pop.MRR(20))
			if pipe.HR(20) <= pop.HR(20) || sr.HR(20) <= pop.HR(20) {
				t.Errorf("HR@20: pipeline %.4f, SR %.4f, not above PopRec's %.4f", pipe.HR(20), sr.HR(20), pop.HR(20))
			}
		})
	}
}

func TestTaobaoDataset(t *testing.T) {
	file, err := DatasetFile(datasetPath(t, "taobao-userbehavior-prefix"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadFile(file, event.FormatTaobao)
	if err != nil {
		t.Fatal(err)
	}
	// SOURCE.txt: 84,287 events, 814 users, 35 rows outside the window.
	if d.Events != 84287-35 || len(d.Users) != 814 || d.Notes[0] != "35 rows outside the documented window 2017-11-25..2017-12-03 (UTC+8) dropped" {
		t.Fatalf("%d events, %d users, notes %q", d.Events, len(d.Users), d.Notes)
	}
	noMF := DefaultMFParams()
	noMF.MaxScores = 0 // ALS over 55k items would take most of a minute here
	r, err := Run(context.Background(), d, Options{NoTrain: true, LimitUsers: 300, MF: &noMF})
	if err != nil {
		t.Fatal(err)
	}
	pipe, pop := modelResult(t, r, ModelServing), modelResult(t, r, ModelPopRec)
	t.Logf("HR@10 / NDCG@10: pipeline %.4f / %.4f, PopRec %.4f / %.4f; ILD@10 measured: %v", pipe.HR(10), pipe.NDCG(10), pop.HR(10), pop.NDCG(10), pipe.ILD != nil)
	if r.Protocol != ProtocolLOO || r.Categories == nil || !r.Categories.Fed || pipe.ILD == nil || pipe.HistoryReturned != 0 {
		t.Fatalf("protocol %s, categories %+v, ILD %v, history returned %d", r.Protocol, r.Categories, pipe.ILD, pipe.HistoryReturned)
	}
}
