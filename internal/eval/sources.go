package eval

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
)

// This file holds what is particular to one public dataset: where its files
// are, the rows its documentation says to drop, and the preprocessing the
// papers that use it applied. What is common to all of them is in
// dataset.go.

// Taobao UserBehavior's documented window: 2017-11-25 to 2017-12-03, days
// in China Standard Time (UTC+8), where the shop is.
var (
	taobaoStart = time.Date(2017, 11, 25, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)).UnixMilli()
	taobaoEnd   = time.Date(2017, 12, 4, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)).UnixMilli()
)

// loadTaobao reads UserBehavior.csv, drops the rows outside the documented
// window (noise the official file is known to have) and keeps each item's
// category_id as its category, the item metadata a shop would send.
func loadTaobao(path string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var evs []event.Interaction
	byItem := map[string][]string{}
	outside := 0
	err = event.ReadTaobao(f, func(e *event.Interaction, category string) error {
		if e.TS < taobaoStart || e.TS >= taobaoEnd {
			outside++
			return nil
		}
		evs = append(evs, *e)
		if category != "" {
			byItem[e.Item] = append(byItem[e.Item], category)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d := FromInteractions(evs)
	d.Notes = append(d.Notes, fmt.Sprintf("%s rows outside the documented window 2017-11-25..2017-12-03 (UTC+8) dropped", thousands(outside)))
	if d.Categories, err = newCategories(byItem); err != nil {
		return nil, fmt.Errorf("%s: category_id: %w", path, err)
	}
	d.Categories.Source = path
	return d, nil
}

// yooChoosePairs are the session-rec framework's file pairs: the final
// train/test split and the same split applied inside train_full for
// tuning. The dataset is named after the prefix the pair shares.
var yooChoosePairs = []struct{ train, test, name string }{
	{"_train_full.txt", "_test.txt", ""},
	{"_train_tr.txt", "_train_valid.txt", "-valid"},
}

// loadYooChoose reads a session-rec YooChoose split given either of its
// files: the training sessions become Users, the test sessions Test.
func loadYooChoose(path string) (*Dataset, error) {
	dir, base := filepath.Split(path)
	for _, p := range yooChoosePairs {
		var stem string
		switch {
		case strings.HasSuffix(base, p.train):
			stem = strings.TrimSuffix(base, p.train)
		case strings.HasSuffix(base, p.test):
			stem = strings.TrimSuffix(base, p.test)
		default:
			continue
		}
		train, err := readSessions(filepath.Join(dir, stem+p.train), event.FormatYooChoose)
		if err != nil {
			return nil, err
		}
		test, err := readSessions(filepath.Join(dir, stem+p.test), event.FormatYooChoose)
		if err != nil {
			return nil, err
		}
		d := sessionDataset(train.Users, test.Users)
		d.Name, d.Source = stem+p.name, filepath.Join(dir, stem+p.train)
		d.Notes = append(d.Notes, fmt.Sprintf("session-rec split: %s training sessions from %s, %s test sessions from %s",
			thousands(len(d.Users)), stem+p.train, thousands(len(d.Test)), stem+p.test))
		return d, nil
	}
	var want []string
	for _, p := range yooChoosePairs {
		want = append(want, "*"+p.train, "*"+p.test)
	}
	return nil, fmt.Errorf("%s: not a session-rec YooChoose file (expected one of %s)", path, strings.Join(want, ", "))
}

func readSessions(path, format string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, err := Read(f, format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// sessionDataset is a dataset split by its source into training and test
// sessions.
func sessionDataset(train, test []Sequence) *Dataset {
	d := &Dataset{Users: train, Test: test}
	items := map[string]struct{}{}
	for _, seqs := range [][]Sequence{train, test} {
		for _, s := range seqs {
			d.Events += len(s.Events)
			for _, e := range s.Events {
				items[e.Item] = struct{}{}
			}
		}
	}
	d.Items = len(items)
	return d
}

// SR-GNN's preprocessing of Diginetica (datasets/preprocess.py of
// CRIPAC-DIG/SR-GNN): the thresholds it applies.
const (
	srgnnMinItemCount = 5 // views an item needs, counted once over sessions of length ≥ 2
	srgnnTestDays     = 7 // the last week of session dates is the test set
)

// PreprocessSRGNN applies SR-GNN's Diginetica preprocessing to sessions
// read from train-item-views.csv (Users, each a session ordered by time):
//  1. drop sessions of length 1;
//  2. count each item's views over the remaining sessions, once, and drop
//     the views of items seen fewer than 5 times, then sessions left with
//     fewer than 2 views (one pass, as the script does: no iteration to a
//     fixed point);
//  3. a session's date is its eventdate; sessions dated after the newest
//     date minus 7 days are test sessions, those before are training
//     sessions, and sessions dated exactly on the split day are in neither
//     (the script's two strict comparisons).
//
// Test items absent from training are removed later, by the session
// protocol (SplitSessions), as for every session dataset.
func PreprocessSRGNN(d *Dataset) *Dataset {
	var long []Sequence
	for _, s := range d.Users {
		if len(s.Events) > 1 {
			long = append(long, s)
		}
	}
	count := map[string]int{}
	for _, s := range long {
		for _, e := range s.Events {
			count[e.Item]++
		}
	}
	var kept []Sequence
	rare := 0
	for _, s := range long {
		var evs []event.Interaction
		for _, e := range s.Events {
			if count[e.Item] >= srgnnMinItemCount {
				evs = append(evs, e)
			} else {
				rare++
			}
		}
		if len(evs) >= 2 {
			kept = append(kept, Sequence{User: s.User, Events: evs})
		}
	}
	day := func(s Sequence) int64 {
		ts := s.Events[len(s.Events)-1].TS
		return ts - ((ts%event.DayMillis)+event.DayMillis)%event.DayMillis
	}
	var newest int64
	for i, s := range kept {
		if i == 0 || day(s) > newest {
			newest = day(s)
		}
	}
	split := newest - srgnnTestDays*event.DayMillis
	var train, test []Sequence
	onSplit := 0
	for _, s := range kept {
		switch dd := day(s); {
		case dd < split:
			train = append(train, s)
		case dd > split:
			test = append(test, s)
		default:
			onSplit++
		}
	}
	// Training replays by event time; sessions are listed by date, as the
	// script sorts them, ties in file order.
	byDay := func(a, b Sequence) int { return cmp.Compare(day(a), day(b)) }
	slices.SortStableFunc(train, byDay)
	slices.SortStableFunc(test, byDay)
	out := sessionDataset(train, test)
	out.Name, out.Source, out.Format, out.Categories, out.ReadTime = d.Name, d.Source, d.Format, d.Categories, d.ReadTime
	out.Notes = append(slices.Clone(d.Notes), fmt.Sprintf("SR-GNN preprocessing of %s views in %s sessions: %s sessions of length 1 dropped; "+
		"%s views of items seen fewer than %d times dropped, then %s sessions left with fewer than 2 views; "+
		"test = sessions dated after %s (newest date %s minus %d days): %s training and %s test sessions, %s sessions dated on the split day in neither",
		thousands(d.Events), thousands(len(d.Users)), thousands(len(d.Users)-len(long)),
		thousands(rare), srgnnMinItemCount, thousands(len(long)-len(kept)),
		time.UnixMilli(split).UTC().Format(time.DateOnly), time.UnixMilli(newest).UTC().Format(time.DateOnly), srgnnTestDays,
		thousands(len(train)), thousands(len(test)), thousands(onSplit)))
	return out
}
