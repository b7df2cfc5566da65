package event

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Kind says what a log record carries.
type Kind uint8

const (
	KindInteraction Kind = 1
	KindItem        Kind = 2
	KindUser        Kind = 3
	KindErase       Kind = 4
	// KindRedacted replaces, in place, a record whose subject was erased:
	// offsets stay dense and the content is gone.
	KindRedacted Kind = 5
)

// Subject is the user a record is about ("" for item records), the key
// erasure redacts by.
func (r *Record) Subject() string {
	switch r.Kind {
	case KindInteraction:
		return r.Interaction.User
	case KindUser, KindErase:
		return r.User.ID
	}
	return ""
}

// Consent attributes of a KindUser record: "true" or "false". A user
// without them has the deployment's default consent.
const (
	AttrConsentPersonalization = "consent.personalization"
	AttrConsentStorage         = "consent.storage"
)

// Consent is what a user allowed.
type Consent struct {
	// Personalization: the user's history may shape what they are shown,
	// and their events may feed features other users see.
	Personalization bool `json:"personalization"`
	// Storage: the user's events may be stored at all.
	Storage bool `json:"storage"`
}

// FullConsent is the default for users who set nothing.
var FullConsent = Consent{Personalization: true, Storage: true}

// Attributes encodes c as KindUser attributes.
func (c Consent) Attributes() map[string]string {
	return map[string]string{AttrConsentPersonalization: fmt.Sprint(c.Personalization), AttrConsentStorage: fmt.Sprint(c.Storage)}
}

// ConsentOf reads the consent attributes of a user record over base.
func ConsentOf(attrs map[string]string, base Consent) Consent {
	if v, ok := attrs[AttrConsentPersonalization]; ok {
		base.Personalization = v == "true"
	}
	if v, ok := attrs[AttrConsentStorage]; ok {
		base.Storage = v == "true"
	}
	return base
}

// Interaction is one user–item event. Timestamps are unix milliseconds of
// event time: windows and decays are driven by them, never by arrival time.
type Interaction struct {
	ID      string
	Type    string
	User    string
	Item    string
	TS      int64
	Value   float64
	Session string
	// Context is the client's raw JSON object, kept opaque and size-limited.
	Context []byte
}

// Item is catalogue metadata. Hidden items are never recommended.
type Item struct {
	ID         string
	Categories []string
	Attributes map[string]string
	Hidden     bool
	TS         int64
}

// User is user metadata; consent flags live here.
type User struct {
	ID         string
	Attributes map[string]string
	TS         int64
}

// Record is one entry of the event log.
type Record struct {
	Kind        Kind
	Interaction Interaction
	Item        Item
	User        User
}

// Limits bound every field so a single request cannot blow up memory.
const (
	MaxIDLen      = 256
	MaxTypeLen    = 64
	MaxContextLen = 4096
	MaxCategories = 64
	MaxAttributes = 64
	MaxAttrLen    = 1024
	MaxValue      = 1e9
)

// DefaultTypes are the interaction types every deployment accepts.
var DefaultTypes = []string{"view", "click", "cart", "purchase", "rating"}

// Validator checks interactions against the configured types and a sane
// event-time range.
type Validator struct {
	Types map[string]bool
	// MaxFuture is how far ahead of the server clock an event may be stamped.
	MaxFuture time.Duration
	// Now returns the server clock; nil means time.Now.
	Now func() time.Time
}

// minTS is 1990-01-01: older timestamps are almost always unit mistakes.
const minTS = int64(631152000000)

// NewValidator accepts the default types plus extra.
func NewValidator(extra ...string) *Validator {
	v := &Validator{Types: map[string]bool{}, MaxFuture: time.Hour}
	for _, t := range DefaultTypes {
		v.Types[t] = true
	}
	for _, t := range extra {
		v.Types[t] = true
	}
	return v
}

func (v *Validator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// ErrInvalid marks validation failures (as opposed to I/O errors).
var ErrInvalid = errors.New("invalid event")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Interaction validates e in place; a zero TS is stamped with the server clock.
func (v *Validator) Interaction(e *Interaction) error {
	if err := checkInteraction(e, v); err != nil {
		return err
	}
	now := v.now()
	if e.TS == 0 {
		e.TS = now.UnixMilli()
	}
	if err := checkTS(e.TS); err != nil {
		return err
	}
	if max := now.Add(v.MaxFuture).UnixMilli(); e.TS > max {
		return invalid("ts %s is more than %s in the future", time.UnixMilli(e.TS).UTC().Format(time.RFC3339), v.MaxFuture)
	}
	return nil
}

// checkInteraction checks every field of e but its timestamp; with v, the
// type must be one v accepts, without, only bounded.
func checkInteraction(e *Interaction, v *Validator) error {
	if err := checkID("user", e.User, true); err != nil {
		return err
	}
	if err := checkID("item", e.Item, true); err != nil {
		return err
	}
	if err := checkID("id", e.ID, false); err != nil {
		return err
	}
	if err := checkID("session", e.Session, false); err != nil {
		return err
	}
	switch {
	case e.Type == "":
		return invalid("missing field \"type\"")
	case v != nil && !v.Types[e.Type]:
		return invalid("unknown type %q (accepted: %s)", clip(e.Type), v.typeList())
	case len(e.Type) > MaxTypeLen:
		return invalid("type is %d bytes, limit %d", len(e.Type), MaxTypeLen)
	}
	if math.IsNaN(e.Value) || math.IsInf(e.Value, 0) {
		return invalid("value must be a finite number")
	}
	if math.Abs(e.Value) > MaxValue {
		// Values feed sums and decayed weights: an absurd one would turn
		// shared aggregates (trending, co-visitation) into Inf or NaN.
		return invalid("value %g is out of range (|value| <= %g)", e.Value, float64(MaxValue))
	}
	if len(e.Context) > MaxContextLen {
		return invalid("context is %d bytes, limit %d", len(e.Context), MaxContextLen)
	}
	return nil
}

func checkTS(ts int64) error {
	if ts < minTS {
		return invalid("ts %s is before 1990-01-01 (seconds vs milliseconds?)", time.UnixMilli(ts).UTC().Format(time.RFC3339))
	}
	return nil
}

// Item validates item metadata; a zero TS is stamped with the server clock.
func (v *Validator) Item(it *Item) error {
	if err := checkItem(it); err != nil {
		return err
	}
	if it.TS == 0 {
		it.TS = v.now().UnixMilli()
	}
	return nil
}

func checkItem(it *Item) error {
	if err := checkID("item", it.ID, true); err != nil {
		return err
	}
	if len(it.Categories) > MaxCategories {
		return invalid("%d categories, limit %d", len(it.Categories), MaxCategories)
	}
	for _, c := range it.Categories {
		if err := checkID("category", c, true); err != nil {
			return err
		}
	}
	if len(it.Attributes) > MaxAttributes {
		return invalid("%d attributes, limit %d", len(it.Attributes), MaxAttributes)
	}
	for k, val := range it.Attributes {
		if k == "" || len(k) > MaxTypeLen {
			return invalid("attribute name must be 1..%d bytes", MaxTypeLen)
		}
		if len(val) > MaxAttrLen {
			return invalid("attribute %q is %d bytes, limit %d", k, len(val), MaxAttrLen)
		}
	}
	return nil
}

// Check validates a record read from the log against what every record
// Ripple writes obeys, whatever its configuration and clock: ids present
// and bounded, a finite value in range, a bounded context, a timestamp after
// 1990. A broker log other producers can write to may hold records the API
// never saw; its applier turns away what fails here rather than let it into
// shared aggregates. The API's Validator checks more (configured types,
// ts against the server clock), but those verdicts could change between two
// reads of one record, and a replay must judge it as the first read did.
func (r *Record) Check() error {
	switch r.Kind {
	case KindInteraction:
		if err := checkInteraction(&r.Interaction, nil); err != nil {
			return err
		}
		return checkTS(r.Interaction.TS)
	case KindItem:
		return checkItem(&r.Item)
	case KindUser, KindErase:
		// Only what the API checks of a user id in a path: an erasure
		// must never be turned away.
		if r.User.ID == "" || len(r.User.ID) > MaxIDLen {
			return invalid("user id must be 1..%d bytes", MaxIDLen)
		}
	}
	return nil
}

func (v *Validator) typeList() string {
	s := ""
	for _, t := range DefaultTypes {
		s += t + ","
	}
	for t := range v.Types {
		if !slices.Contains(DefaultTypes, t) {
			s += t + ","
		}
	}
	return s[:len(s)-1]
}

func checkID(field, s string, required bool) error {
	if s == "" {
		if required {
			return invalid("missing field %q", field)
		}
		return nil
	}
	if len(s) > MaxIDLen {
		return invalid("%s is %d bytes, limit %d", field, len(s), MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return invalid("%s contains a control character", field)
		}
	}
	return nil
}

// clip keeps error messages bounded when echoing client input.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
