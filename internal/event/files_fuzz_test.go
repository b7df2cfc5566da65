package event

import (
	"bytes"
	"encoding/csv"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// rewrite writes events back in format, ok false when they cannot be
// written in it (then the round trip is not meant to hold).
func rewrite(format string, events []Interaction) (out []byte, ok bool) {
	var buf bytes.Buffer
	switch format {
	case FormatNDJSON:
		for i := range events {
			b, ok := interactionJSON(&events[i])
			if !ok {
				return nil, false
			}
			buf.Write(b)
			buf.WriteByte('\n')
		}
	case FormatCSV:
		w := csv.NewWriter(&buf)
		_ = w.Write([]string{"user", "item", "type", "ts", "value", "session", "id"})
		for _, e := range events {
			ts := ""
			if e.TS != 0 {
				b, ok := appendTS(nil, e.TS)
				if !ok {
					return nil, false
				}
				ts = strings.Trim(string(b), `"`)
			}
			_ = w.Write([]string{e.User, e.Item, e.Type, ts, strconv.FormatFloat(e.Value, 'g', -1, 64), e.Session, e.ID})
		}
		w.Flush()
	case FormatMovieLens:
		buf.WriteString("userId\tmovieId\trating\ttimestamp\n")
		for _, e := range events {
			buf.WriteString(e.User + "\t" + e.Item + "\t" + strconv.FormatFloat(e.Value, 'g', -1, 64) + "\t" + strconv.FormatInt(e.TS/1000, 10) + "\n")
		}
	case FormatTaobao:
		behaviour := map[string]string{"view": "pv", "cart": "cart", "purchase": "buy"}
		for _, e := range events {
			buf.WriteString(e.User + "," + e.Item + ",c," + behaviour[e.Type] + "," + strconv.FormatInt(e.TS/1000, 10) + "\n")
		}
	case FormatYooChoose:
		buf.WriteString("SessionId\tItemId\tTime\n")
		for _, e := range events {
			if e.TS <= -1e14 || e.TS >= 1e14 { // beyond what ParseTime reads as unix seconds
				return nil, false
			}
			buf.WriteString(e.Session + "\t" + e.Item + "\t" + strconv.FormatFloat(float64(e.TS)/1000, 'f', 3, 64) + "\n")
		}
	case FormatDiginetica:
		buf.WriteString("session_id;user_id;item_id;timeframe;eventdate\n")
		for _, e := range events {
			day := e.TS - ((e.TS%DayMillis)+DayMillis)%DayMillis
			date := time.UnixMilli(day).UTC().Format(time.DateOnly)
			buf.WriteString(e.Session + ";NA;" + e.Item + ";" + strconv.FormatInt(e.TS-day, 10) + ";" + date + "\n")
		}
	case FormatSeq:
		for i, e := range events {
			if e.TS == SeqEpoch {
				if i > 0 {
					buf.WriteByte('\n')
				}
				buf.WriteString(e.User)
			}
			buf.WriteString(" " + e.Item)
		}
	}
	return buf.Bytes(), true
}

// checkFormatShape asserts what each format promises about its events.
func checkFormatShape(t *testing.T, format string, events []Interaction) {
	t.Helper()
	for i, e := range events {
		switch format {
		case FormatMovieLens:
			// Timestamps are whole unix seconds; anything else is an overflow.
			if e.Type != "rating" || e.TS%1000 != 0 || strings.Contains(e.User, "\n") {
				t.Fatalf("movielens event %d: %+v", i, e)
			}
		case FormatSeq:
			// User and item are checked apart: "\xc2" + "\xa0" joined is a
			// no-break space that neither id contains.
			if e.Type != "purchase" || e.Value != 1 || e.User == "" || e.Item == "" ||
				strings.IndexFunc(e.User, unicode.IsSpace) >= 0 || strings.IndexFunc(e.Item, unicode.IsSpace) >= 0 {
				t.Fatalf("seq event %d: %+v", i, e)
			}
			// Positions count up by a minute from the epoch within a line.
			if e.TS != SeqEpoch && (i == 0 || e.TS != events[i-1].TS+60_000 || e.User != events[i-1].User) {
				t.Fatalf("seq event %d out of sequence: %+v after %+v", i, e, events[max(i-1, 0)])
			}
		case FormatCSV:
			if e.Type == "" {
				t.Fatalf("csv event %d has no type", i)
			}
		case FormatTaobao:
			if (e.Type != "view" && e.Type != "cart" && e.Type != "purchase") || e.TS%1000 != 0 || e.User == "" || e.Item == "" {
				t.Fatalf("taobao event %d: %+v", i, e)
			}
		case FormatYooChoose, FormatDiginetica:
			// A session is the user; clicks and views are the only types.
			want := map[string]string{FormatYooChoose: "click", FormatDiginetica: "view"}[format]
			if e.Type != want || e.User != e.Session || e.User == "" || e.Item == "" {
				t.Fatalf("%s event %d: %+v", format, i, e)
			}
		}
	}
}

func FuzzReadFile(f *testing.F) {
	seeds := []struct {
		format string
		in     string
	}{
		{FormatNDJSON, eventSeeds[0] + "\n\n" + eventSeeds[1] + "\r\n   \n" + eventSeeds[3]},
		{FormatNDJSON, eventSeeds[4] + "\n" + eventSeeds[13]},
		{FormatNDJSON, "[]"},
		{FormatCSV, "user,item,type,ts,value,session,id\nu1,i1,click,1717239600,2.5,s1,e1\n"},
		{FormatCSV, "User_ID, ItemId ,EVENT_TYPE,timestamp,rating,session_id,event_id\nu1,i1,purchase,2024-06-01T11:00:00Z,4,s1,e1\n"},
		{FormatCSV, "user,item,type,ts,value\n\"u,1\",\"i \"\"x\"\"\",,,\n\"a\r\nb\",\"c\rd\",,-1.5,NaN\n"},
		{FormatCSV, "item,user\ni1,u1\ni2\n"},
		{FormatCSV, "user,item,ts\nu,i,1717239600000\n"},
		{FormatCSV, "user,item,value\nu,i,abc\n"},
		{FormatCSV, "user,item\n\"u,i\n"},
		{FormatCSV, ""},
		{FormatMovieLens, "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"},
		{FormatMovieLens, "userId,movieId,rating,timestamp\r\n1,31,2.5,1260759144\r\n1,1029,3.0,1260759179\r\n"},
		{FormatMovieLens, "1,2,3,4\nuserId,movieId,rating,timestamp\n"},
		{FormatMovieLens, "1\t2\t5\t9223372036854776\n"},
		{FormatMovieLens, "1\t2\t5\t18446745790909552\n"}, // wrapped into 2024-06-01 before the range check
		{FormatMovieLens, "1\t2\tfive\t881250949\n1\t2\n"},
		{FormatSeq, "u1 a b c\n\nu2\tx  y\n"},
		{FormatTaobao, "1,2268318,2520377,pv,1511544070\n1,2333346,2520771,fav,1511561733\r\n\n2,5,6,buy,1511572885\n"},
		{FormatTaobao, "1,2,3,click,1511544070\n"},
		{FormatTaobao, "1,2,3,pv\n"},
		{FormatYooChoose, "SessionId\tItemId\tTime\n1\t214536502\t1396860669.277\n1\t214536506\t1396860886.998\n"},
		{FormatYooChoose, "Time\tSessionId\tItemId\r\n2014-04-07T10:51:09.277Z\t1\t2\r\n"},
		{FormatYooChoose, "1\t2\t3\n"},
		{FormatDiginetica, "session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n1;NA;31331;1031018;2016-05-09"},
		{FormatDiginetica, "session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;-5;2016-05-09\n"},
		{FormatSeq, "u\u00a0a\u2028b\n"},
		{FormatSeq, "u1 a\nu2\n"},
	}
	for _, s := range seeds {
		for i, format := range Formats {
			if format == s.format {
				f.Add([]byte(s.in), uint8(i))
			}
		}
	}
	v := testValidator()
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		format := Formats[int(which)%len(Formats)]
		var events []Interaction
		err := ReadFile(bytes.NewReader(data), format, func(e *Interaction) error {
			events = append(events, *e)
			return nil
		})
		if err != nil {
			// A broken file is reported with where it broke.
			msg := err.Error()
			if !strings.HasPrefix(msg, "line ") && !strings.HasPrefix(msg, "csv header") && !errors.Is(err, ErrInvalid) {
				t.Fatalf("%s: error names no line: %v", format, err)
			}
			return
		}
		checkFormatShape(t, format, events)
		for i := range events {
			checkInteractionCodec(t, &events[i])
			if e := events[i]; v.Interaction(&e) == nil {
				checkAccepted(t, v, &e)
			}
		}
		// Whatever was read, written back in the same format, reads the same.
		out, ok := rewrite(format, events)
		if !ok {
			return
		}
		var again []Interaction
		if err := ReadFile(bytes.NewReader(out), format, func(e *Interaction) error {
			again = append(again, *e)
			return nil
		}); err != nil {
			t.Fatalf("%s: rewritten file does not read: %v\n%q", format, err, out)
		}
		if len(again) != len(events) {
			t.Fatalf("%s: %d events read back, want %d\n%q", format, len(again), len(events), out)
		}
		for i := range events {
			if !sameInteraction(&again[i], &events[i]) {
				t.Fatalf("%s: event %d changed on rewrite:\n got %+v\nwant %+v\nfile %q", format, i, again[i], events[i], out)
			}
		}
	})
}
