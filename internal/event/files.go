package event

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// File formats understood by ReadFile.
const (
	FormatNDJSON    = "ndjson"
	FormatCSV       = "csv"
	FormatMovieLens = "movielens"
	FormatSeq       = "seq"
	// FormatTaobao is Taobao's UserBehavior.csv: no header,
	// user_id,item_id,category_id,behavior_type,unix_ts.
	FormatTaobao = "taobao"
	// FormatYooChoose is the session-rec framework's YooChoose split: TAB
	// separated, header SessionId ItemId Time (unix seconds, ms fraction).
	FormatYooChoose = "yoochoose"
	// FormatDiginetica is Diginetica's train-item-views.csv: ';' separated,
	// header session_id;user_id;item_id;timeframe;eventdate.
	FormatDiginetica = "diginetica"
)

// Formats lists the accepted --format values.
var Formats = []string{FormatNDJSON, FormatCSV, FormatMovieLens, FormatSeq, FormatTaobao, FormatYooChoose, FormatDiginetica}

// SeqEpoch is the event time given to position 0 of a sequence file, which
// records order but no timestamps; each later position is one minute later.
const SeqEpoch = int64(1577836800000) // 2020-01-01T00:00:00Z

// ReadFile streams interactions from r in the given format. Lines that fail
// to parse stop the read with an error naming the line: a dataset with a
// broken line is a dataset to look at, not to half-load.
func ReadFile(r io.Reader, format string, fn func(*Interaction) error) error {
	switch format {
	case FormatNDJSON:
		return readLines(r, func(n int, line string) error {
			if strings.TrimSpace(line) == "" {
				return nil
			}
			var e Interaction
			if err := DecodeInteraction([]byte(line), &e); err != nil {
				return fmt.Errorf("line %d: %w", n, err)
			}
			return fn(&e)
		})
	case FormatSeq:
		return readLines(r, func(n int, line string) error {
			f := strings.Fields(line)
			if len(f) == 0 {
				return nil
			}
			if len(f) < 2 {
				return fmt.Errorf("line %d: %w: expected \"user item item...\"", n, ErrInvalid)
			}
			for i, it := range f[1:] {
				e := Interaction{Type: "purchase", User: f[0], Item: it, TS: SeqEpoch + int64(i)*60000, Value: 1}
				if err := fn(&e); err != nil {
					return err
				}
			}
			return nil
		})
	case FormatMovieLens:
		return readMovieLens(r, fn)
	case FormatCSV:
		return readCSV(r, fn)
	case FormatTaobao:
		return ReadTaobao(r, func(e *Interaction, _ string) error { return fn(e) })
	case FormatYooChoose:
		return readYooChoose(r, fn)
	case FormatDiginetica:
		return readDiginetica(r, fn)
	}
	return fmt.Errorf("unknown format %q (accepted: %s)", format, strings.Join(Formats, ", "))
}

func readLines(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// readMovieLens reads u.data (tab separated, no header) and ratings.csv
// (comma separated with a userId,movieId,rating,timestamp header).
func readMovieLens(r io.Reader, fn func(*Interaction) error) error {
	return readLines(r, func(n int, line string) error {
		if line == "" || (n == 1 && strings.HasPrefix(line, "userId")) {
			return nil
		}
		sep := "\t"
		if !strings.Contains(line, sep) {
			sep = ","
		}
		f := strings.Split(line, sep)
		if len(f) < 4 {
			return fmt.Errorf("line %d: %w: expected user, item, rating, timestamp", n, ErrInvalid)
		}
		rating, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return fmt.Errorf("line %d: %w: rating %q", n, ErrInvalid, clip(f[2]))
		}
		ts, err := unixSeconds(n, f[3])
		if err != nil {
			return err
		}
		return fn(&Interaction{Type: "rating", User: f[0], Item: f[1], Value: rating, TS: ts})
	})
}

// unixSeconds parses whole unix seconds into milliseconds; n names the line
// in the error.
func unixSeconds(n int, s string) (int64, error) {
	ts, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || ts > 1e11 || ts < -1e11 { // as flexTS and ParseTime: ts*1000 must not overflow
		return 0, fmt.Errorf("line %d: %w: timestamp %q", n, ErrInvalid, clip(s))
	}
	return ts * 1000, nil
}

// TaobaoTypes maps Taobao's behaviour types to Ripple's. Ripple has no
// "favourite": a fav saves an item for later without buying it, the same
// intent as a cart, so it counts as one (and the two are not told apart).
var TaobaoTypes = map[string]string{"pv": "view", "cart": "cart", "fav": "cart", "buy": "purchase"}

// ReadTaobao reads Taobao's UserBehavior.csv (no header;
// user_id,item_id,category_id,behavior_type,unix_ts), handing fn each
// interaction with its item's category, which is item metadata rather than
// part of the event.
func ReadTaobao(r io.Reader, fn func(e *Interaction, category string) error) error {
	return readLines(r, func(n int, line string) error {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			return nil
		}
		f := strings.Split(line, ",")
		if len(f) != 5 {
			return fmt.Errorf("line %d: %w: expected user_id,item_id,category_id,behavior_type,unix_ts, got %d fields", n, ErrInvalid, len(f))
		}
		if f[0] == "" || f[1] == "" {
			return fmt.Errorf("line %d: %w: empty user or item id", n, ErrInvalid)
		}
		typ, ok := TaobaoTypes[f[3]]
		if !ok {
			return fmt.Errorf("line %d: %w: behavior_type %q (expected pv, cart, fav or buy)", n, ErrInvalid, clip(f[3]))
		}
		ts, err := unixSeconds(n, f[4])
		if err != nil {
			return err
		}
		return fn(&Interaction{Type: typ, User: f[0], Item: f[1], TS: ts}, f[2])
	})
}

// readYooChoose reads the session-rec framework's YooChoose files. Each
// session is a user: session-based protocols know nothing else about who
// clicked.
func readYooChoose(r io.Reader, fn func(*Interaction) error) error {
	return readHeaded(r, "\t", []string{"SessionId", "ItemId", "Time"}, func(n int, f []string) error {
		ts, err := ParseTime(f[2])
		if err != nil {
			return fmt.Errorf("line %d: %w: Time %q", n, ErrInvalid, clip(f[2]))
		}
		return fn(&Interaction{Type: "click", User: f[0], Session: f[0], Item: f[1], TS: ts})
	})
}

// DayMillis is one day in milliseconds.
const DayMillis = 24 * 60 * 60 * 1000

// readDiginetica reads Diginetica's train-item-views.csv. Each session is a
// user (user_id is mostly NA and session protocols ignore it); an event's
// time is its eventdate (UTC midnight) plus its timeframe, the milliseconds
// since the session started, which orders a session's views.
func readDiginetica(r io.Reader, fn func(*Interaction) error) error {
	return readHeaded(r, ";", []string{"session_id", "item_id", "timeframe", "eventdate"}, func(n int, f []string) error {
		offset, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || offset < 0 || offset >= DayMillis {
			return fmt.Errorf("line %d: %w: timeframe %q (expected milliseconds within a day)", n, ErrInvalid, clip(f[2]))
		}
		day, err := time.Parse(time.DateOnly, f[3])
		if err != nil {
			return fmt.Errorf("line %d: %w: eventdate %q (expected YYYY-MM-DD)", n, ErrInvalid, clip(f[3]))
		}
		return fn(&Interaction{Type: "view", User: f[0], Session: f[0], Item: f[1], TS: day.UnixMilli() + offset})
	})
}

// readHeaded reads sep-separated lines whose first line is a header naming
// at least the columns in names; fn gets each data line's fields in the
// order of names, the ids among them (the first two) non-empty.
func readHeaded(r io.Reader, sep string, names []string, fn func(n int, f []string) error) error {
	var col []int
	out := make([]string, len(names))
	err := readLines(r, func(n int, line string) error {
		line = strings.TrimSuffix(line, "\r")
		if n == 1 {
			header := strings.Split(line, sep)
			for _, name := range names {
				i := slices.Index(header, name)
				if i < 0 {
					return fmt.Errorf("line 1: %w: header %q has no %s column (expected %s)", ErrInvalid, clip(line), name, strings.Join(names, sep))
				}
				col = append(col, i)
			}
			return nil
		}
		if line == "" {
			return nil
		}
		f := strings.Split(line, sep)
		for i, c := range col {
			if c >= len(f) {
				return fmt.Errorf("line %d: %w: %d fields, expected %s", n, ErrInvalid, len(f), strings.Join(names, sep))
			}
			out[i] = f[c]
		}
		if out[0] == "" || out[1] == "" {
			return fmt.Errorf("line %d: %w: empty %s or %s", n, ErrInvalid, names[0], names[1])
		}
		return fn(n, out)
	})
	if err == nil && col == nil {
		return fmt.Errorf("line 1: %w: empty file, expected a header %s", ErrInvalid, strings.Join(names, sep))
	}
	return err
}

var csvColumns = map[string]string{
	"user": "user", "user_id": "user", "userid": "user",
	"item": "item", "item_id": "item", "itemid": "item",
	"type": "type", "event": "type", "event_type": "type",
	"ts": "ts", "timestamp": "ts", "time": "ts",
	"value": "value", "rating": "value",
	"session": "session", "session_id": "session", "sessionid": "session",
	"id": "id", "event_id": "id",
}

// readCSV reads a CSV file with a header naming at least user and item.
// A missing type column means "view".
func readCSV(r io.Reader, fn func(*Interaction) error) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("csv header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		if name, ok := csvColumns[strings.ToLower(strings.TrimSpace(h))]; ok {
			col[name] = i
		}
	}
	if _, ok := col["user"]; !ok {
		return fmt.Errorf("%w: csv header has no user column", ErrInvalid)
	}
	if _, ok := col["item"]; !ok {
		return fmt.Errorf("%w: csv header has no item column", ErrInvalid)
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	line := 1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line++
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		e := Interaction{ID: get(rec, "id"), Type: get(rec, "type"), User: get(rec, "user"), Item: get(rec, "item"), Session: get(rec, "session")}
		if e.Type == "" {
			e.Type = "view"
		}
		if s := get(rec, "ts"); s != "" {
			if e.TS, err = ParseTime(s); err != nil {
				return fmt.Errorf("line %d: %w: %v", line, ErrInvalid, err)
			}
		}
		if s := get(rec, "value"); s != "" {
			if e.Value, err = strconv.ParseFloat(s, 64); err != nil {
				return fmt.Errorf("line %d: %w: value %q", line, ErrInvalid, clip(s))
			}
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
}

// FormatFromName guesses a file's format from its name, or returns "":
// .ndjson/.jsonl → ndjson; u.data, ratings.csv, ratings.dat → movielens;
// UserBehavior*.csv → taobao; yoochoose-clicks* → yoochoose;
// *train-item-views.csv → diginetica; other .csv → csv; .seq, or .txt
// inside an amazon-seq folder → seq.
func FormatFromName(path string) string {
	slash := strings.ReplaceAll(path, `\`, "/")
	base := strings.ToLower(slash[strings.LastIndex(slash, "/")+1:])
	switch {
	case strings.HasPrefix(base, "userbehavior") && strings.HasSuffix(base, ".csv"):
		return FormatTaobao
	case strings.HasPrefix(base, "yoochoose-clicks") && (strings.HasSuffix(base, ".txt") || strings.HasSuffix(base, ".tsv")):
		return FormatYooChoose
	case strings.HasSuffix(base, "train-item-views.csv"):
		return FormatDiginetica
	case strings.HasSuffix(base, ".ndjson"), strings.HasSuffix(base, ".jsonl"):
		return FormatNDJSON
	case base == "u.data", base == "ratings.csv", base == "ratings.dat":
		return FormatMovieLens
	case strings.HasSuffix(base, ".csv"):
		return FormatCSV
	case strings.HasSuffix(base, ".seq"), strings.HasSuffix(base, ".txt") && strings.Contains(slash, "amazon-seq/"):
		return FormatSeq
	}
	return ""
}
