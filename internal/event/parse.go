package event

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
)

// IndexError is a per-event problem inside a batch; the rest of the batch
// still counts.
type IndexError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// flexID accepts ids sent as JSON strings or integers, which clients do both.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexID(s)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*f = ""
		return nil
	}
	if _, err := strconv.ParseInt(string(b), 10, 64); err != nil {
		return fmt.Errorf("expected a string or integer id, got %s", clip(string(b)))
	}
	*f = flexID(b)
	return nil
}

// flexTS accepts RFC3339 strings or unix seconds (integer or fractional).
type flexTS int64

func (t *flexTS) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*t = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		ms, err := ParseTime(s)
		if err != nil {
			return err
		}
		*t = flexTS(ms)
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("ts must be RFC3339 or unix seconds, got %s", clip(string(b)))
	}
	if f > 1e11 || f < -1e11 {
		return fmt.Errorf("ts %s is out of range (unix seconds expected, not milliseconds)", clip(string(b)))
	}
	*t = flexTS(math.Round(f * 1000))
	return nil
}

// ParseTime parses RFC3339 (with or without fractional seconds) or a unix
// seconds string into unix milliseconds.
func ParseTime(s string) (int64, error) {
	if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return tm.UnixMilli(), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && math.Abs(f) < 1e11 {
		return int64(math.Round(f * 1000)), nil
	}
	return 0, fmt.Errorf("ts %q is neither RFC3339 nor unix seconds", clip(s))
}

type wireInteraction struct {
	ID      flexID          `json:"id"`
	Type    string          `json:"type"`
	User    flexID          `json:"user"`
	Item    flexID          `json:"item"`
	TS      flexTS          `json:"ts"`
	Value   *float64        `json:"value"`
	Session flexID          `json:"session"`
	Context json.RawMessage `json:"context"`
}

// DecodeInteraction parses one JSON object. It does not validate semantics;
// call Validator.Interaction for that.
func DecodeInteraction(b []byte, e *Interaction) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return invalid("expected a JSON object")
	}
	var w wireInteraction
	if err := json.Unmarshal(b, &w); err != nil {
		return invalid("%s", jsonMessage(err))
	}
	*e = Interaction{ID: string(w.ID), Type: w.Type, User: string(w.User), Item: string(w.Item), TS: int64(w.TS), Session: string(w.Session)}
	if w.Value != nil {
		e.Value = *w.Value
	}
	if len(w.Context) > 0 && !bytes.Equal(w.Context, []byte("null")) {
		if w.Context[0] != '{' {
			return invalid("context must be a JSON object")
		}
		e.Context = append([]byte(nil), w.Context...)
	}
	return nil
}

// Batch is the outcome of parsing a request body: valid events plus
// per-index errors.
type Batch struct {
	Events []Interaction
	// Index maps Events[i] back to its position in the request.
	Index  []int
	Errors []IndexError
	Total  int
}

func (b *Batch) add(i int, e *Interaction, err error) {
	b.Total++
	if err != nil {
		b.Errors = append(b.Errors, IndexError{Index: i, Error: strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")})
		return
	}
	b.Events = append(b.Events, *e)
	b.Index = append(b.Index, i)
}

// ParseJSONArray parses a JSON array of events (a single object is accepted
// as a batch of one). A body that is not JSON at all is an error for the
// whole request; a bad element only rejects that element.
func ParseJSONArray(body []byte, v *Validator, maxEvents int) (*Batch, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, invalid("empty body")
	}
	var raws []json.RawMessage
	if body[0] == '{' {
		raws = []json.RawMessage{body}
	} else if err := json.Unmarshal(body, &raws); err != nil {
		return nil, invalid("body must be a JSON array of events: %s", jsonMessage(err))
	}
	if len(raws) == 0 {
		return nil, invalid("empty array: no events")
	}
	if maxEvents > 0 && len(raws) > maxEvents {
		return nil, invalid("%d events in one request, limit %d", len(raws), maxEvents)
	}
	b := &Batch{Events: make([]Interaction, 0, len(raws))}
	for i, raw := range raws {
		var e Interaction
		err := DecodeInteraction(raw, &e)
		if err == nil {
			err = v.Interaction(&e)
		}
		b.add(i, &e, err)
	}
	return b, nil
}

// ParseNDJSON parses one event per line; blank lines are skipped but keep
// their index so error indices match line numbers minus one.
func ParseNDJSON(body []byte, v *Validator, maxEvents int) (*Batch, error) {
	// One slot per line, but blank lines are free: never reserve past the limit.
	n := bytes.Count(body, []byte{'\n'}) + 1
	if maxEvents > 0 {
		n = min(n, maxEvents)
	}
	b := &Batch{Events: make([]Interaction, 0, n)}
	line := 0
	for len(body) > 0 {
		var ln []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			ln, body = body[:i], body[i+1:]
		} else {
			ln, body = body, nil
		}
		idx := line
		line++
		if len(bytes.TrimSpace(ln)) == 0 {
			continue
		}
		if maxEvents > 0 && b.Total >= maxEvents {
			return nil, invalid("more than %d events in one request", maxEvents)
		}
		var e Interaction
		err := DecodeInteraction(ln, &e)
		if err == nil {
			err = v.Interaction(&e)
		}
		b.add(idx, &e, err)
	}
	if b.Total == 0 {
		return nil, invalid("empty body")
	}
	return b, nil
}

type wireItem struct {
	ID         flexID                     `json:"item"`
	Categories []string                   `json:"categories"`
	Attributes map[string]json.RawMessage `json:"attributes"`
	Hidden     bool                       `json:"hidden"`
	TS         flexTS                     `json:"ts"`
}

// DecodeItem parses item metadata. id, when non-empty, is the id from the
// URL and wins over the body's "item" field.
func DecodeItem(b []byte, id string, it *Item) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return invalid("expected a JSON object")
	}
	var w wireItem
	if err := json.Unmarshal(b, &w); err != nil {
		return invalid("%s", jsonMessage(err))
	}
	*it = Item{ID: string(w.ID), Categories: w.Categories, Hidden: w.Hidden, TS: int64(w.TS)}
	if id != "" {
		if it.ID != "" && it.ID != id {
			return invalid("item %q in body does not match %q in path", clip(it.ID), clip(id))
		}
		it.ID = id
	}
	if len(w.Attributes) > 0 {
		it.Attributes = make(map[string]string, len(w.Attributes))
		for k, raw := range w.Attributes {
			var s string
			if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
				it.Attributes[k] = s
			} else {
				it.Attributes[k] = string(raw)
			}
		}
	}
	return nil
}

// jsonMessage turns decoder errors into something a client can act on
// without leaking Go type names.
func jsonMessage(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	msg = strings.ReplaceAll(msg, "event.flexID", "id")
	msg = strings.ReplaceAll(msg, "event.flexTS", "ts")
	msg = strings.ReplaceAll(msg, "event.wireInteraction", "event")
	msg = strings.ReplaceAll(msg, "event.wireItem", "item")
	// go-json names the field as "Go struct field wireItem.hidden".
	msg = strings.ReplaceAll(msg, "Go struct field ", "field ")
	msg = strings.ReplaceAll(msg, "wireInteraction.", "")
	msg = strings.ReplaceAll(msg, "wireItem.", "")
	msg = strings.ReplaceAll(msg, "map[string]json.RawMessage", "object")
	msg = strings.ReplaceAll(msg, "[]json.RawMessage", "array")
	msg = strings.ReplaceAll(msg, "float64", "number")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}
