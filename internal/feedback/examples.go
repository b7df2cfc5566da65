package feedback

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ripple-rec/ripple/internal/atomicfile"
	"github.com/ripple-rec/ripple/internal/model"
)

// Example is one served list that was engaged with: what a learned ranker
// trains on. It names no user and no item: the vectors are what the ranker
// reads, and an example outlives any erasure request unchanged because
// there is nothing in it to erase.
type Example struct {
	At    int64  `json:"at"` // when it was served, Unix ms
	Model string `json:"model"`
	// Items are in served order: Items[i] was at position i+1.
	Items []Shown `json:"items"`
}

// Shown is one served item of an example.
type Shown struct {
	// Label is the strongest engagement with it (Label), 0 for none.
	Label float64                        `json:"label"`
	X     [model.NumRankFeatures]float64 `json:"x"`
}

// Label grades an engagement type: purchase 3, cart 2, anything else that
// counts as engagement (click) 1.
func Label(typ string) float64 {
	switch typ {
	case "purchase":
		return 3
	case "cart":
		return 2
	}
	return 1
}

// maxOpenFactor bounds the lists waiting for their window to end, as a
// multiple of the lists the users map can hold: past it the oldest close
// early (their examples carry the engagement seen so far).
const maxOpenFactor = 2

// closeLocked ends l's window: an engaged list with vectors becomes an
// example.
func (t *Tracker) closeLocked(l *list) {
	if l.closed || l.vecs == nil {
		l.closed = true
		return
	}
	l.closed = true
	if !slices.ContainsFunc(l.labels, func(v float64) bool { return v > 0 }) {
		return // nothing engaged: no order between its items to learn
	}
	ex := Example{At: l.at.UnixMilli(), Model: l.model, Items: make([]Shown, len(l.items))}
	for i := range l.items {
		ex.Items[i] = Shown{Label: l.labels[i], X: l.vecs[i]}
	}
	t.pending = append(t.pending, ex)
}

func (t *Tracker) closeAllLocked(u *userLists) {
	for _, l := range u.lists {
		t.closeLocked(l)
	}
}

// sweepLocked closes the lists whose window has ended (and the oldest,
// when too many are open).
func (t *Tracker) sweepLocked(now time.Time) {
	limit := maxOpenFactor * t.opts.MaxUsers * t.opts.PerUser
	n := 0
	for n < len(t.open) && (now.Sub(t.open[n].at) > t.opts.Window || len(t.open)-n > limit) {
		t.closeLocked(t.open[n])
		n++
	}
	if n > 0 {
		clear(t.open[:n])
		t.open = t.open[n:]
	}
}

func (t *Tracker) takeLocked() []Example {
	exs := t.pending
	t.pending = nil
	return exs
}

// send stores examples outside the tracker's lock.
func (t *Tracker) send(exs []Example) {
	if len(exs) == 0 || t.opts.Examples == nil {
		return
	}
	err := t.opts.Examples.Append(exs)
	if err == nil {
		t.m.examples.Add(float64(len(exs)))
	} else {
		t.m.exampleErrors.Add(float64(len(exs)))
		if t.sinkErr != nil {
			t.sinkErr(err)
		}
	}
}

// Close sends every open list that was engaged with, as if its window had
// ended: on shutdown, so a restart loses no example already earned.
func (t *Tracker) Close() {
	t.mu.Lock()
	for _, l := range t.open {
		t.closeLocked(l)
	}
	t.open = nil
	exs := t.takeLocked()
	t.mu.Unlock()
	t.send(exs)
}

// OnExampleError is called with each failure to store examples (they are
// dropped: a ranker's training data is not worth blocking serving for).
func (t *Tracker) OnExampleError(fn func(error)) { t.sinkErr = fn }

// ExampleLog stores examples as JSON lines in numbered segment files in a
// directory, dropping the oldest segments beyond a size bound: a ranker
// learns from recent behaviour, and the log never fills the disk.
type ExampleLog struct {
	dir      string
	maxBytes int64
	segBytes int64
	mu       sync.Mutex
	f        *os.File
	seq      int
	size     int64 // of the open segment
	buf      bytes.Buffer
}

const examplePrefix, exampleSuffix = "examples-", ".ndjson"

// OpenExampleLog opens (creating) dir for appending; maxBytes bounds the
// whole log (at least 1 MiB).
func OpenExampleLog(dir string, maxBytes int64) (*ExampleLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	maxBytes = max(maxBytes, 1<<20)
	l := &ExampleLog{dir: dir, maxBytes: maxBytes, segBytes: maxBytes / 8}
	segs, err := segments(dir)
	if err != nil {
		return nil, err
	}
	if len(segs) > 0 {
		l.seq = segs[len(segs)-1]
	}
	return l, l.rotate()
}

// segments lists dir's segment numbers, oldest first.
func segments(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, examplePrefix) || !strings.HasSuffix(name, exampleSuffix) {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, examplePrefix), exampleSuffix)); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func segmentName(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("%s%08d%s", examplePrefix, n, exampleSuffix))
}

// rotate starts a new segment and drops the oldest beyond the bound.
func (l *ExampleLog) rotate() error {
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			return err
		}
	}
	l.seq++
	f, err := os.OpenFile(segmentName(l.dir, l.seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.f = nil
		return err
	}
	l.f, l.size = f, 0
	segs, err := segments(l.dir)
	if err != nil {
		return err
	}
	// Every closed segment is at most segBytes (plus one batch): keep as
	// many as fit beside the open one.
	keep := max(int(l.maxBytes/l.segBytes)-1, 1)
	for len(segs) > keep+1 {
		_ = os.Remove(segmentName(l.dir, segs[0]))
		segs = segs[1:]
	}
	return nil
}

// Append writes exs, one line each, in one write.
func (l *ExampleLog) Append(exs []Example) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	l.buf.Reset()
	enc := json.NewEncoder(&l.buf)
	for i := range exs {
		if err := enc.Encode(&exs[i]); err != nil {
			return err
		}
	}
	n, err := l.f.Write(l.buf.Bytes())
	l.size += int64(n)
	if err != nil {
		return err
	}
	if l.size >= l.segBytes {
		return l.rotate()
	}
	return nil
}

// Close closes the open segment.
func (l *ExampleLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ReadExamples calls fn with every example in dir, oldest first. A line
// that does not decode (a write torn by a crash) is skipped and counted;
// a missing directory holds no examples.
func ReadExamples(dir string, fn func(*Example) error) (skipped int, err error) {
	segs, err := segments(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, n := range segs {
		f, err := os.Open(segmentName(dir, n))
		if errors.Is(err, os.ErrNotExist) {
			continue // dropped by a writer meanwhile
		}
		if err != nil {
			return skipped, err
		}
		s, err := readSegment(f, fn)
		f.Close()
		skipped += s
		if err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

func readSegment(r io.Reader, fn func(*Example) error) (skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ex Example
		if json.Unmarshal(sc.Bytes(), &ex) != nil || len(ex.Items) == 0 {
			skipped++
			continue
		}
		if err := fn(&ex); err != nil {
			return skipped, err
		}
	}
	return skipped, sc.Err()
}

// itemStat is one line of the item statistics file.
type itemStat struct {
	Item        string  `json:"item"`
	Impressions float64 `json:"impressions"`
	Engagements float64 `json:"engagements"`
}

// SaveItems replaces path with every item's impressions and engagements
// (atomicfile.Write): the engagement rates the ranker's ctr feature and
// the exploration slot read survive a restart.
// Items are catalogue ids with counts over all users: nothing in it is
// personal.
func (t *Tracker) SaveItems(path string) error {
	t.mu.Lock()
	stats := make([]itemStat, 0, len(t.items))
	for id, c := range t.items {
		stats = append(stats, itemStat{id, c[0], c[1]})
	}
	t.mu.Unlock()
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for i := range stats {
			if err := enc.Encode(&stats[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// LoadItems adds the item statistics SaveItems wrote to path; a missing
// file holds none, and lines that do not decode are skipped and counted.
func (t *Tracker) LoadItems(path string) (skipped int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	t.mu.Lock()
	defer t.mu.Unlock()
	for sc.Scan() {
		var s itemStat
		if json.Unmarshal(sc.Bytes(), &s) != nil || s.Item == "" || !(s.Impressions >= 0) || !(s.Engagements >= 0) {
			skipped++
			continue
		}
		c := t.itemLocked(s.Item)
		c[0] += s.Impressions
		c[1] += s.Engagements
	}
	return skipped, sc.Err()
}
