package event

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// File formats understood by ReadFile.
const (
	FormatNDJSON    = "ndjson"
	FormatCSV       = "csv"
	FormatMovieLens = "movielens"
	FormatSeq       = "seq"
)

// Formats lists the accepted --format values.
var Formats = []string{FormatNDJSON, FormatCSV, FormatMovieLens, FormatSeq}

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
		ts, err := strconv.ParseInt(strings.TrimSpace(f[3]), 10, 64)
		if err != nil || ts > 1e11 || ts < -1e11 { // unix seconds, as flexTS and ParseTime: ts*1000 must not overflow
			return fmt.Errorf("line %d: %w: timestamp %q", n, ErrInvalid, clip(f[3]))
		}
		return fn(&Interaction{Type: "rating", User: f[0], Item: f[1], Value: rating, TS: ts * 1000})
	})
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
// other .csv → csv; .seq, or .txt inside an amazon-seq folder → seq.
func FormatFromName(path string) string {
	slash := strings.ReplaceAll(path, `\`, "/")
	base := strings.ToLower(slash[strings.LastIndex(slash, "/")+1:])
	switch {
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
