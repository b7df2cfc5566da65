package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/train"
)

// Protocols.
const (
	// ProtocolLOO is leave-one-out with full ranking (S3-Rec, SASRec).
	ProtocolLOO = "loo"
	// ProtocolStratified is Microsoft Recommenders' ml-100k comparison: a
	// per-user random 75/25 split, top 10, seen items removed, every
	// held-out item relevant.
	ProtocolStratified = "stratified"
	// ProtocolSession is session-based next-item prediction (session-rec's
	// evaluation, SR-GNN): every prefix of a test session predicts the
	// next item, full ranking, history kept in the ranking; HR@20 and
	// MRR@20 are the headline numbers.
	ProtocolSession = "session"
)

// Protocols are the accepted protocol names.
var Protocols = []string{ProtocolLOO, ProtocolStratified, ProtocolSession}

// Report is the outcome of one run.
type Report struct {
	Dataset   string        `json:"dataset"`
	Source    string        `json:"source,omitempty"`
	Format    string        `json:"format,omitempty"`
	Protocol  string        `json:"protocol"`
	Split     Split         `json:"split"`
	Depth     int           `json:"depth"` // items asked of each model per user
	Counts    Counts        `json:"counts"`
	Models    []ModelResult `json:"models"`
	Published []Published   `json:"published,omitempty"`
	// Categories describes the dataset's item categories; nil when it has
	// none, and then ILD is not measured.
	Categories *CategoryInfo `json:"categories,omitempty"`
	Timings    Timings       `json:"timings"`
	Training   *Training     `json:"training,omitempty"`
	// VariantTraining describes the --compare variants' training.
	VariantTraining []VariantTraining `json:"variant_training,omitempty"`
	Workers         int               `json:"workers"`
	Created         time.Time         `json:"created"`
	// Notes say what loading dropped or prepared (Dataset.Notes).
	Notes []string `json:"preprocessing,omitempty"`
}

// Counts describe the data behind the numbers.
type Counts struct {
	Users       int `json:"users"`
	Items       int `json:"items"` // the catalogue: distinct items in the dataset
	Events      int `json:"events"`
	TrainEvents int `json:"train_events"` // replayed into the engine; PopRec counts these
	Evaluated   int `json:"users_evaluated"`
	// SkippedShort users have fewer than MinEvents events.
	SkippedShort int `json:"users_skipped_short"`
	// NotEvaluated users were eligible but left out by Options.LimitUsers.
	NotEvaluated int `json:"users_not_evaluated"`
	// TargetsInHistory are repeat consumptions: no model can hit them,
	// unless the protocol keeps history in the ranking (session).
	TargetsInHistory int `json:"targets_in_history"`
	// TestSessions are the test sessions evaluated (session protocol);
	// each of their prefixes is an evaluated case, and SkippedShort counts
	// the sessions left with fewer than 2 events once RemovedUnknown
	// events, of items absent from training, were removed.
	TestSessions   int `json:"test_sessions,omitempty"`
	RemovedUnknown int `json:"test_events_unknown_item,omitempty"`
}

// ModelResult is one model's line in the report.
type ModelResult struct {
	Model string `json:"model"`
	Metrics
	// TiedTargets counts users whose target was returned with at least one
	// other item on exactly its score (ties rank the target last).
	TiedTargets int `json:"tied_targets"`
	// HistoryReturned counts history items the model returned; anything but
	// 0 is a bug in its seen filter.
	HistoryReturned int     `json:"history_returned"`
	EvalSeconds     float64 `json:"eval_s"`
	// Cold is the metrics over cold-start users alone (at most ColdEvents
	// input events); nil when there are none.
	Cold *Metrics `json:"cold_users,omitempty"`
}

// CategoryInfo describes a dataset's item categories.
type CategoryInfo struct {
	Source    string `json:"source"`
	Items     int    `json:"items"` // items with at least one category
	Distinct  int    `json:"distinct"`
	Truncated int    `json:"truncated,omitempty"` // Categories.Truncated
	// Fed says whether Ripple was given them as item metadata; false with
	// Options.NoCategories.
	Fed bool `json:"fed"`
}

// Timings are wall-clock seconds.
type Timings struct {
	Read   float64 `json:"read_s"`   // reading and grouping the file
	Replay float64 `json:"replay_s"` // splitting and replaying the training input
	Load   float64 `json:"load_s"`   // Read + Replay
	Eval   float64 `json:"eval_s"`   // every model
}

// Training describes the trained models a run evaluated: how long training
// took and what the tuner measured on the validation items (each user's last
// training event), which is all it chose by.
type Training struct {
	Seconds         float64              `json:"seconds"`
	Serving         string               `json:"serving"`
	Scheme          string               `json:"validation_scheme"` // which event per user was held out
	ValidationUsers int                  `json:"validation_users"`
	Validation      []train.SourceResult `json:"validation"`
	Components      []model.Component    `json:"components"`
	StreamWeight    float64              `json:"stream_weight"`
	Tuned           *model.StreamTuning  `json:"tuned,omitempty"`
	Skipped         []string             `json:"skipped,omitempty"`
	// Ranker is the ranker learnt from replayed validation lists (nil:
	// replay off).
	Ranker *train.RankerReport `json:"ranker,omitempty"`
}

// VariantTraining is one compared variant's training.
type VariantTraining struct {
	Name string `json:"name"`
	Training
}

func trainingInfo(res *train.Result) *Training {
	return &Training{Seconds: res.Took.Seconds(), Serving: res.Serving, Scheme: res.Scheme, ValidationUsers: res.ValidationUsers,
		Validation: res.Validation, Components: res.Set.Components, StreamWeight: res.Set.StreamWeight, Tuned: res.Set.Tuned, Skipped: res.Skipped,
		Ranker: res.Ranker}
}

// Published is a number from the literature under the same protocol.
type Published struct {
	Dataset  string  `json:"-"`
	Protocol string  `json:"-"`
	Model    string  `json:"model"`
	HR10     float64 `json:"hr@10"` // 0: not published
	NDCG10   float64 `json:"ndcg@10"`
}

// published is the table of /work/shared/datasets/README.md: the S3-Rec
// repository's full-ranking tables and the ICLRec README.
var published = []Published{
	{"Toys_and_Games", ProtocolLOO, "PopRec", 0.0113, 0.0061},
	{"Toys_and_Games", ProtocolLOO, "GRU4Rec", 0.0176, 0.0084},
	{"Toys_and_Games", ProtocolLOO, "BERT4Rec", 0.0203, 0.0099},
	{"Toys_and_Games", ProtocolLOO, "SASRec", 0.0675, 0.0374},
	{"Toys_and_Games", ProtocolLOO, "S3-Rec", 0.0700, 0.0376},
	{"Toys_and_Games", ProtocolLOO, "ICLRec", 0.0834, 0.0480},
	{"Sports_and_Outdoors", ProtocolLOO, "PopRec", 0.0094, 0.0053},
	{"Sports_and_Outdoors", ProtocolLOO, "SASRec", 0.0350, 0.0192},
	{"Sports_and_Outdoors", ProtocolLOO, "S3-Rec", 0.0385, 0.0204},
	{"Sports_and_Outdoors", ProtocolLOO, "ICLRec", 0.0437, 0.0238},
	{"LastFM", ProtocolLOO, "PopRec", 0.0440, 0.0203},
	{"LastFM", ProtocolLOO, "SASRec", 0.0688, 0.0390},
	{"LastFM", ProtocolLOO, "S3-Rec", 0.0743, 0.0427},
	// Microsoft Recommenders' ml-100k benchmark (nDCG@10 only).
	{"ml-100k", ProtocolStratified, "BPR", 0, 0.442},
	{"ml-100k", ProtocolStratified, "LightGCN", 0, 0.420},
	{"ml-100k", ProtocolStratified, "SAR", 0, 0.383},
	{"ml-100k", ProtocolStratified, "BiVAE", 0, 0.475},
}

// PublishedResults returns the published test-split numbers for dataset,
// or nil when there are none.
func PublishedResults(dataset, protocol string) []Published {
	var out []Published
	for _, p := range published {
		if p.Dataset == dataset && p.Protocol == protocol {
			out = append(out, p)
		}
	}
	return out
}

// FileStem is the report's file name without extension:
// "<dataset>-<protocol>", with "-valid" for the validation split so a
// tuning run never overwrites the test report, and "-nocat" when the
// dataset's categories were withheld so a comparison keeps both.
func (r *Report) FileStem() string {
	s := r.Dataset + "-" + r.Protocol
	if r.Split == SplitValid {
		s += "-valid"
	}
	if r.Categories != nil && !r.Categories.Fed {
		s += "-nocat"
	}
	return s
}

// Save writes dir/<FileStem>.md, .json and .html (the plots) and returns
// the first two paths.
func (r *Report) Save(dir string) (md, js string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	var mb, jb bytes.Buffer
	if err := r.WriteMarkdown(&mb); err != nil {
		return "", "", err
	}
	if err := r.WriteJSON(&jb); err != nil {
		return "", "", err
	}
	md = filepath.Join(dir, r.FileStem()+".md")
	js = filepath.Join(dir, r.FileStem()+".json")
	if err := os.WriteFile(md, mb.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(js, jb.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	var hb bytes.Buffer
	if err := r.WriteHTML(&hb); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, r.FileStem()+".html"), hb.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	return md, js, nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteMarkdown writes the metric table, the published numbers for the
// dataset when known, and the counts and timings behind them.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	split := "test split: the last item is the target, the validation item is input"
	if r.Split == SplitValid {
		split = "validation split: the second-to-last item is the target, the input stops before it"
	}
	switch r.Protocol {
	case ProtocolSession:
		fmt.Fprintf(&b, "## %s — %s\n\n", r.Dataset, r.Title())
		b.WriteString("Training sessions are the training input; each test session is revealed one event at a time and every prefix " +
			"predicts the next item (session-rec's evaluation, SR-GNN's protocol). Full ranking; the session's own items stay in the " +
			"ranking (a session may return to an item); ties count against the target; metrics average over all predictions. " +
			"HR@20 is session-rec's HitRate@20 and SR-GNN's P@20.\n\n")
	case ProtocolStratified:
		fmt.Fprintf(&b, "## %s — stratified 75/25 split, top 10\n\n", r.Dataset)
		b.WriteString("Per user, a random 75% of events (seed 42) is training input and the other items are all relevant " +
			"(Microsoft Recommenders' protocol); full ranking, training items excluded, ties count against the targets.\n\n")
	default:
		fmt.Fprintf(&b, "## %s — %s\n\n", r.Dataset, r.Title())
		fmt.Fprintf(&b, "%s; the user's history is excluded from the ranking; ties count against the target.\n\n", capitalize(split))
	}

	session := r.Protocol == ProtocolSession
	b.WriteString("| model |")
	for _, k := range Cutoffs {
		fmt.Fprintf(&b, " HR@%d |", k)
	}
	if session {
		for _, k := range Cutoffs {
			fmt.Fprintf(&b, " MRR@%d |", k)
		}
	}
	for _, k := range Cutoffs {
		fmt.Fprintf(&b, " NDCG@%d |", k)
	}
	strat := r.Protocol == ProtocolStratified
	extra := 0
	if session {
		extra = len(Cutoffs)
	}
	if strat {
		b.WriteString(" P@10 | R@10 |")
		extra = 2
	}
	fmt.Fprintf(&b, " coverage@%[1]d | ILD@%[1]d | novelty@%[1]d |\n|---|", CoverageK)
	b.WriteString(strings.Repeat("---:|", 2*len(Cutoffs)+3+extra) + "\n")
	for _, m := range r.Models {
		fmt.Fprintf(&b, "| %s |", m.Model)
		for _, k := range Cutoffs {
			fmt.Fprintf(&b, " %.4f |", m.HR(k))
		}
		if session {
			for _, k := range Cutoffs {
				fmt.Fprintf(&b, " %.4f |", m.MRR(k))
			}
		}
		for _, k := range Cutoffs {
			fmt.Fprintf(&b, " %.4f |", m.NDCG(k))
		}
		if strat {
			a := m.at(10)
			fmt.Fprintf(&b, " %.4f | %.4f |", a.Precision, a.Recall)
		}
		fmt.Fprintf(&b, " %.4f | %s | %.3f |\n", m.Coverage, ildCell(m.ILD), m.Novelty)
	}
	for _, p := range r.Published {
		fmt.Fprintf(&b, "| *published %s* |", p.Model)
		for _, k := range Cutoffs {
			b.WriteString(publishedCell(k, p.HR10))
		}
		for _, k := range Cutoffs {
			b.WriteString(publishedCell(k, p.NDCG10))
		}
		b.WriteString(strings.Repeat(" — |", 3+extra) + "\n")
	}
	b.WriteString("\n")

	c := r.Counts
	if session {
		fmt.Fprintf(&b, "- sessions: %s training, %s test sessions evaluated as %s predictions (one per prefix); "+
			"%s test events of items absent from training removed, then %s test sessions with fewer than 2 events dropped",
			thousands(c.Users), thousands(c.TestSessions), thousands(c.Evaluated+c.NotEvaluated), thousands(c.RemovedUnknown), thousands(c.SkippedShort))
		if c.NotEvaluated > 0 {
			fmt.Fprintf(&b, "; only the first %s predictions evaluated (--limit-users)", thousands(c.Evaluated))
		}
	} else {
		fmt.Fprintf(&b, "- users: %s, evaluated %s", thousands(c.Users), thousands(c.Evaluated))
	}
	if c.SkippedShort > 0 && !session {
		fmt.Fprintf(&b, ", skipped with fewer than %d events %s (their events are training input)", MinEvents, thousands(c.SkippedShort))
	}
	if c.NotEvaluated > 0 && !session {
		fmt.Fprintf(&b, ", not evaluated (--limit-users) %s", thousands(c.NotEvaluated))
	}
	fmt.Fprintf(&b, "; items: %s; events: %s, training input %s\n", thousands(c.Items), thousands(c.Events), thousands(c.TrainEvents))
	b.WriteString(categoryLine(r.Categories))
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- preprocessing: %s\n", n)
	}
	if session {
		fmt.Fprintf(&b, "- targets repeating an item of their prefix (ranked like any other item): %s\n", thousands(c.TargetsInHistory))
	} else {
		fmt.Fprintf(&b, "- targets already in the user's history (repeat consumption, a miss for every model): %s\n", thousands(c.TargetsInHistory))
	}
	b.WriteString("- targets tied with another item's score:")
	for i, m := range r.Models {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %s %s", sep, m.Model, thousands(m.TiedTargets))
	}
	b.WriteString("\n")
	if len(r.Models) > 0 && r.Models[0].Cold != nil {
		who := "cold-start users (at most %d input events, %s of them)"
		if session {
			who = "short prefixes (at most %d events, %s of them)"
		}
		fmt.Fprintf(&b, "- "+who+", NDCG@10 / HR@10:", ColdEvents, thousands(r.Models[0].Cold.Users))
		for i, m := range r.Models {
			if m.Cold == nil {
				continue
			}
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(&b, "%s %s %.4f / %.4f", sep, m.Model, m.Cold.NDCG(10), m.Cold.HR(10))
		}
		b.WriteString("\n")
	}
	for _, m := range r.Models {
		if m.HistoryReturned > 0 {
			fmt.Fprintf(&b, "- **%s returned %s history items: its seen filter is broken**\n", m.Model, thousands(m.HistoryReturned))
		}
	}
	t := r.Timings
	fmt.Fprintf(&b, "- timings: load %.2f s (read %.2f s, replay %.2f s), eval %.2f s (", t.Load, t.Read, t.Replay, t.Eval)
	for i, m := range r.Models {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %.2f s", m.Model, m.EvalSeconds)
		if m.EvalSeconds > 0 {
			fmt.Fprintf(&b, ", %s users/s", thousands(int(float64(m.Users)/m.EvalSeconds)))
		}
	}
	fmt.Fprintf(&b, ") with %d workers\n", r.Workers)
	for _, v := range r.VariantTraining {
		fmt.Fprintf(&b, "- training [%s]: %.2f s; serving %s;", v.Name, v.Seconds, v.Serving)
		for _, val := range v.Validation {
			fmt.Fprintf(&b, " %s %.4f", val.Source, val.NDCG10)
		}
		b.WriteString(rankerNote(v.Ranker))
		b.WriteString("\n")
	}
	if tr := r.Training; tr != nil {
		held := "each user's last training event"
		if session {
			held = "each training session's last event, history excluded"
		}
		if tr.Scheme == train.ValidateRandom {
			held = "one random training event per user"
		}
		fmt.Fprintf(&b, "- training: %.2f s; serving %s; tuned on %s validation items (%s):", tr.Seconds, tr.Serving, thousands(tr.ValidationUsers), held)
		for i, v := range tr.Validation {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(&b, "%s %s NDCG@10 %.4f", sep, v.Source, v.NDCG10)
		}
		b.WriteString("\n  components:")
		for i, c := range tr.Components {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(&b, "%s %s (weight %g, history decay %g)", sep, c.Name, c.Weight, c.Decay)
		}
		fmt.Fprintf(&b, ", streaming sources (weight %g)", tr.StreamWeight)
		if t := tr.Tuned; t != nil {
			fmt.Fprintf(&b, "; category weight %g, diversity %g", t.CategoryWeight, t.Diversity)
		}
		for _, sk := range tr.Skipped {
			fmt.Fprintf(&b, "; not trained: %s", sk)
		}
		b.WriteString(rankerNote(tr.Ranker))
		b.WriteString("\n")
	}
	switch {
	case len(r.Published) > 0 && strat:
		b.WriteString("- published: Microsoft Recommenders' ml-100k benchmark (nDCG@10 only); same protocol, their own random split\n")
	case len(r.Published) > 0:
		b.WriteString("- published: S3-Rec repository tables and ICLRec README, same protocol (HR/NDCG@10 only); " +
			"their PopRec counts popularity over full sequences, test item included\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Title names the protocol for headings.
func (r *Report) Title() string {
	switch r.Protocol {
	case ProtocolSession:
		return fmt.Sprintf("session-based next item, full ranking, K = %s", strings.Trim(strings.Join(strings.Fields(fmt.Sprint(Cutoffs)), ", "), "[]"))
	case ProtocolStratified:
		return "stratified 75/25 split, top 10"
	}
	return "leave-one-out, full ranking"
}

// categoryLine says what the ILD column measures and whether Ripple saw
// the categories.
func categoryLine(c *CategoryInfo) string {
	if c == nil {
		return "- item categories: none beside the dataset file, so ILD@10 is not measured; " +
			"novelty@10 is the mean −log2 of the listed items' share of training interactions\n"
	}
	use := "given to Ripple as item metadata before the training input"
	if !c.Fed {
		use = "withheld from Ripple (--no-categories), used only to measure ILD@10"
	}
	s := fmt.Sprintf("- item categories: %s items, %s distinct categories, from %s; %s", thousands(c.Items), thousands(c.Distinct), filepath.Base(c.Source), use)
	if c.Truncated > 0 {
		s += fmt.Sprintf("; %s items keep only their %d most named categories (the server's limit)", thousands(c.Truncated), event.MaxCategories)
	}
	return s + ". ILD@10: mean 1 − Jaccard of the categories over pairs in a top 10; " +
		"novelty@10: mean −log2 of the listed items' share of training interactions\n"
}

func ildCell(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.4f", *v)
}

func publishedCell(k int, v float64) string {
	if k != 10 || v == 0 {
		return " — |"
	}
	return fmt.Sprintf(" %.4f |", v)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// thousands formats n with comma separators: 167597 → "167,597".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// rankerNote describes the ranker learnt from replayed lists, if tried.
func rankerNote(r *train.RankerReport) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "; ranker from %s replayed lists that held the target", thousands(r.Lists))
	if r.Chosen != "" {
		fmt.Fprintf(&b, ": %s serves", r.Chosen)
	}
	fmt.Fprintf(&b, " (%s)", r.Reason)
	for i, s := range r.Scores {
		sep := ", "
		if i == 0 {
			sep = ": DCG@10 on held-out lists "
		}
		fmt.Fprintf(&b, "%s%s %.4f", sep, s.Ranking, s.DCG10)
	}
	return b.String()
}
