package eval

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
)

// Dataset is an interaction log grouped into per-user sequences.
type Dataset struct {
	Name   string // for reports: "Toys_and_Games", "ml-100k"
	Source string // the file it was read from
	Format string
	Users  []Sequence // in order of first appearance in the file
	// Test are the held-out sessions of a dataset its source splits into
	// training and test sessions (YooChoose, Diginetica); Users are then
	// the training sessions. Nil for the others.
	Test   []Sequence
	Items  int // distinct items: the catalogue that coverage divides by
	Events int
	// Notes say what loading dropped or prepared, for the report.
	Notes []string
	// Categories is the item metadata shipped beside the file (nil: none).
	Categories *Categories
	// ReadTime is how long reading and grouping the file took.
	ReadTime time.Duration
}

// Sequence is one user's events ordered by time; events with equal
// timestamps keep their file order.
type Sequence struct {
	User   string
	Events []event.Interaction
}

// LoadFile reads a dataset file in one of event.Formats, with the item
// categories shipped beside it (LoadCategories), and names it after the
// file. The public datasets get what their sources prescribe: Taobao's
// rows outside its documented window are dropped and its category column
// is item metadata; a YooChoose file brings the other file of its
// session-rec split; Diginetica goes through SR-GNN's preprocessing.
func LoadFile(path, format string) (*Dataset, error) {
	start := time.Now()
	var d *Dataset
	var err error
	switch format {
	case event.FormatTaobao:
		d, err = loadTaobao(path)
	case event.FormatYooChoose:
		d, err = loadYooChoose(path)
	default:
		d, err = readSessions(path, format)
	}
	if err != nil {
		return nil, err
	}
	if d.Name == "" {
		d.Name, d.Source = DatasetName(path), path
	}
	d.Format = format
	if d.Categories == nil {
		if d.Categories, err = LoadCategories(path); err != nil {
			return nil, err
		}
	}
	if format == event.FormatDiginetica {
		d = PreprocessSRGNN(d)
	}
	d.ReadTime = time.Since(start)
	return d, nil
}

// DatasetFile is the file to load for path: path itself, or, for a folder,
// the one dataset file in it whose format its name tells (for a
// session-rec YooChoose folder, the final training file).
func DatasetFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return path, err
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return "", err
	}
	var found []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || event.FormatFromName(name) == "" {
			continue
		}
		if event.FormatFromName(name) == event.FormatYooChoose && !strings.HasSuffix(name, yooChoosePairs[0].train) {
			continue // the other files of the split come with it
		}
		found = append(found, filepath.Join(path, name))
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%s: a folder must hold exactly one dataset file whose format its name tells, found %d %v: pass the file", path, len(found), found)
	}
	return found[0], nil
}

// Read reads a dataset in one of event.Formats.
func Read(r io.Reader, format string) (*Dataset, error) {
	start := time.Now()
	var evs []event.Interaction
	err := event.ReadFile(r, format, func(e *event.Interaction) error {
		if e.User == "" || e.Item == "" {
			return fmt.Errorf("event %d: %w: missing user or item", len(evs)+1, event.ErrInvalid)
		}
		evs = append(evs, *e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	d := FromInteractions(evs)
	d.Format = format
	d.ReadTime = time.Since(start)
	return d, nil
}

// FromInteractions groups events, given in file order, into a Dataset.
func FromInteractions(evs []event.Interaction) *Dataset {
	d := &Dataset{Events: len(evs)}
	byUser := map[string]int{}
	items := map[string]struct{}{}
	for _, e := range evs {
		i, ok := byUser[e.User]
		if !ok {
			i = len(d.Users)
			byUser[e.User] = i
			d.Users = append(d.Users, Sequence{User: e.User})
		}
		d.Users[i].Events = append(d.Users[i].Events, e)
		items[e.Item] = struct{}{}
	}
	for i := range d.Users {
		slices.SortStableFunc(d.Users[i].Events, func(a, b event.Interaction) int { return cmp.Compare(a.TS, b.TS) })
	}
	d.Items = len(items)
	return d
}

// Split names which held-out item a run scores against.
type Split string

const (
	// SplitTest scores the last item; the input includes the validation item,
	// as S3-Rec and SASRec evaluate.
	SplitTest Split = "test"
	// SplitValid scores the second-to-last item; the input stops before it.
	SplitValid Split = "valid"
)

// ParseSplit accepts "test" and "valid".
func ParseSplit(s string) (Split, error) {
	switch Split(s) {
	case SplitTest, SplitValid:
		return Split(s), nil
	}
	return "", fmt.Errorf("unknown split %q (accepted: test, valid)", s)
}

// MinEvents is the fewest events a user needs to be evaluated: at least one
// input event, the validation item and the test item.
const MinEvents = 3

// Case is one user's evaluation: the input the models saw and the held-out
// target.
type Case struct {
	User    string
	History []string // input items, oldest first, repeats kept
	Target  string
	// Targets, when set, are all the held-out items (stratified protocol);
	// Target is then empty.
	Targets []string
	// Input are the events behind History when they are not training
	// input (a test session): a model learns them from the case.
	Input []event.Interaction
	// IncludeSeen keeps History in the ranking: the session protocol
	// predicts the next click, which may return to an item.
	IncludeSeen bool
}

// TargetInHistory reports a repeat consumption: the user had already seen
// the target. Unless the case keeps history in the ranking, such a target
// can never be hit.
func (c *Case) TargetInHistory() bool { return slices.Contains(c.History, c.Target) }

// Holdout is a dataset split into training input and evaluation cases.
type Holdout struct {
	// Train is every user's input, in replay order: event time, then user
	// id, then position in the user's sequence.
	Train []event.Interaction
	// Cases are the evaluated users, in the dataset's user order.
	Cases []Case
	// Skipped counts users with fewer than MinEvents events. They are not
	// evaluated, but all their events are training input: they hold no
	// evaluated target, and a live system would have learnt from them too.
	// Under the session protocol it counts test sessions left with fewer
	// than 2 events.
	Skipped int
	// Sessions are the test sessions evaluated (session protocol);
	// RemovedUnknown their events of items absent from training.
	Sessions, RemovedUnknown int
}

// SplitStratified holds out, per user, a random (1-ratio) share of their
// events, at least one, from users with at least 2 (Microsoft
// Recommenders' python_stratified_split: per user, random, seeded). The
// held-out distinct items not in the user's training input are the user's
// relevant items; everything else is training input, replayed in event-time
// order.
func (d *Dataset) SplitStratified(ratio float64, seed uint64) (*Holdout, error) {
	if ratio <= 0 || ratio >= 1 {
		return nil, fmt.Errorf("ratio must be in (0, 1), got %v", ratio)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	h := &Holdout{}
	var train []event.Interaction
	for _, seq := range d.Users {
		n := len(seq.Events)
		if n < 2 {
			h.Skipped++
			train = append(train, seq.Events...)
			continue
		}
		perm := r.Perm(n)
		keep := min(max(int(math.Round(ratio*float64(n))), 1), n-1)
		inTrain := make([]bool, n)
		for _, i := range perm[:keep] {
			inTrain[i] = true
		}
		c := Case{User: seq.User}
		seen := map[string]bool{}
		for i, e := range seq.Events {
			if inTrain[i] {
				train = append(train, e)
				c.History = append(c.History, e.Item)
				seen[e.Item] = true
			}
		}
		for i, e := range seq.Events {
			if !inTrain[i] && !seen[e.Item] {
				seen[e.Item] = true
				c.Targets = append(c.Targets, e.Item)
			}
		}
		if len(c.Targets) == 0 {
			continue // every held-out item was also trained on: nothing to find
		}
		h.Cases = append(h.Cases, c)
	}
	sortForReplay(train)
	h.Train = train
	return h, nil
}

// Split holds out each evaluated user's last item (SplitTest) or last two
// items (SplitValid); everything else is training input for every model.
// As in the published protocol, one user's training input may be later in
// time than another user's target: leave-one-out splits per user, not at a
// global point in time.
func (d *Dataset) Split(s Split) (*Holdout, error) {
	held := map[Split]int{SplitTest: 1, SplitValid: 2}[s]
	if held == 0 {
		return nil, fmt.Errorf("unknown split %q", s)
	}
	type pos struct{ user, i int }
	var order []pos
	h := &Holdout{}
	for u, seq := range d.Users {
		n := len(seq.Events)
		input := n
		if n < MinEvents {
			h.Skipped++
		} else {
			input = n - held
			c := Case{User: seq.User, Target: seq.Events[input].Item, History: make([]string, input)}
			for i, e := range seq.Events[:input] {
				c.History[i] = e.Item
			}
			h.Cases = append(h.Cases, c)
		}
		for i := range input {
			order = append(order, pos{u, i})
		}
	}
	ev := func(p pos) *event.Interaction { return &d.Users[p.user].Events[p.i] }
	slices.SortFunc(order, func(a, b pos) int {
		ea, eb := ev(a), ev(b)
		if c := cmp.Compare(ea.TS, eb.TS); c != 0 {
			return c
		}
		if c := strings.Compare(ea.User, eb.User); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	h.Train = make([]event.Interaction, len(order))
	for i, p := range order {
		h.Train[i] = *ev(p)
	}
	return h, nil
}

// InferFormat guesses a dataset's format from its file name.
func InferFormat(path string) (string, error) {
	if f := event.FormatFromName(path); f != "" {
		return f, nil
	}
	return "", fmt.Errorf("cannot infer the format of %s: pass --format (%s)", path, strings.Join(event.Formats, ", "))
}

// DatasetName names a dataset after its file ("Toys_and_Games.txt" →
// "Toys_and_Games"), or after its folder when the file name is MovieLens's
// generic one ("ml-100k/u.data" → "ml-100k").
func DatasetName(path string) string {
	base := filepath.Base(path)
	switch strings.ToLower(base) {
	case "u.data", "ratings.csv", "ratings.dat":
		if abs, err := filepath.Abs(path); err == nil {
			if dir := filepath.Base(filepath.Dir(abs)); dir != string(filepath.Separator) {
				return dir
			}
		}
	}
	return strings.TrimSuffix(base, filepath.Ext(base))
}
