package event

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func readAll(format, in string) ([]Interaction, error) {
	var out []Interaction
	err := ReadFile(strings.NewReader(in), format, func(e *Interaction) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

func TestReadFile(t *testing.T) {
	const t0 = int64(1717239600000) // 2024-06-01T11:00:00Z
	tests := []struct {
		name    string
		format  string
		in      string
		want    []Interaction
		wantErr string
	}{
		// --- ndjson ---
		{
			name: "ndjson", format: FormatNDJSON,
			in: `{"id":"a","type":"view","user":"u1","item":"i1","ts":1717239600}` + "\n\n" +
				`{"type":"click","user":2,"item":"i2","ts":"2024-06-01T11:00:00Z","value":1.5}` + "\r\n   \n",
			want: []Interaction{
				{ID: "a", Type: "view", User: "u1", Item: "i1", TS: t0},
				{Type: "click", User: "2", Item: "i2", TS: t0, Value: 1.5},
			},
		},
		{name: "ndjson bad line names it", format: FormatNDJSON, in: `{"user":"u"}` + "\n\n" + `{"user":` + "\n", wantErr: "line 3:"},
		{name: "ndjson ms ts names line", format: FormatNDJSON, in: `{"ts":1717239600000}`, wantErr: "line 1:"},
		{name: "ndjson empty", format: FormatNDJSON, in: "", want: nil},
		// --- csv ---
		{
			name: "csv canonical header", format: FormatCSV,
			in:   "user,item,type,ts,value,session,id\nu1,i1,click,1717239600,2.5,s1,e1\n",
			want: []Interaction{{ID: "e1", Type: "click", User: "u1", Item: "i1", TS: t0, Value: 2.5, Session: "s1"}},
		},
		{
			name: "csv header aliases", format: FormatCSV,
			in:   "User_ID, ItemId ,EVENT_TYPE,timestamp,rating,session_id,event_id\nu1,i1,purchase,2024-06-01T11:00:00Z,4,s1,e1\n",
			want: []Interaction{{ID: "e1", Type: "purchase", User: "u1", Item: "i1", TS: t0, Value: 4, Session: "s1"}},
		},
		{
			name: "csv more aliases, extra columns ignored", format: FormatCSV,
			in:   "price,userid,item_id,event,time,sessionid\n9.99,u1,i1,cart,1717239600.5,s\n",
			want: []Interaction{{Type: "cart", User: "u1", Item: "i1", TS: t0 + 500, Session: "s"}},
		},
		{
			name: "csv column order free, type defaults to view", format: FormatCSV,
			in:   "item,user\ni1,u1\ni2,u2\n",
			want: []Interaction{{Type: "view", User: "u1", Item: "i1"}, {Type: "view", User: "u2", Item: "i2"}},
		},
		{
			name: "csv quoted fields and empty values", format: FormatCSV,
			in:   "user,item,type,ts,value\n\"u,1\",\"i \"\"x\"\"\",,,\n",
			want: []Interaction{{Type: "view", User: "u,1", Item: `i "x"`}},
		},
		{
			name: "csv short rows", format: FormatCSV,
			in:   "user,item,type\nu1,i1\n",
			want: []Interaction{{Type: "view", User: "u1", Item: "i1"}},
		},
		{name: "csv no user column", format: FormatCSV, in: "customer,item\nu,i\n", wantErr: "no user column"},
		{name: "csv no item column", format: FormatCSV, in: "user,product\nu,i\n", wantErr: "no item column"},
		{name: "csv empty", format: FormatCSV, in: "", wantErr: "csv header"},
		{name: "csv bad ts names line", format: FormatCSV, in: "user,item,ts\nu,i,1717239600\nu,i,noon\n", wantErr: "line 3:"},
		{name: "csv ms ts rejected", format: FormatCSV, in: "user,item,ts\nu,i,1717239600000\n", wantErr: "line 2:"},
		{name: "csv bad value names line", format: FormatCSV, in: "user,item,value\nu,i,abc\n", wantErr: `line 2: invalid event: value "abc"`},
		{name: "csv bad quoting", format: FormatCSV, in: "user,item\n\"u,i\n", wantErr: "line 2:"},
		// --- movielens ---
		{
			name: "movielens u.data", format: FormatMovieLens,
			in: "196\t242\t3\t881250949\n186\t302\t3\t891717742\n",
			want: []Interaction{
				{Type: "rating", User: "196", Item: "242", Value: 3, TS: 881250949000},
				{Type: "rating", User: "186", Item: "302", Value: 3, TS: 891717742000},
			},
		},
		{
			name: "movielens ratings.csv", format: FormatMovieLens,
			in: "userId,movieId,rating,timestamp\r\n1,31,2.5,1260759144\r\n1,1029,3.0,1260759179\r\n",
			want: []Interaction{
				{Type: "rating", User: "1", Item: "31", Value: 2.5, TS: 1260759144000},
				{Type: "rating", User: "1", Item: "1029", Value: 3, TS: 1260759179000},
			},
		},
		{
			name: "movielens blank lines skipped", format: FormatMovieLens,
			in:   "\n1\t2\t5\t881250949\n\n",
			want: []Interaction{{Type: "rating", User: "1", Item: "2", Value: 5, TS: 881250949000}},
		},
		{name: "movielens header only on line 1", format: FormatMovieLens, in: "1,2,3,4\nuserId,movieId,rating,timestamp\n", wantErr: "line 2:"},
		{name: "movielens too few fields", format: FormatMovieLens, in: "1\t2\t5\t881250949\n1\t2\t5\n", wantErr: "line 2: invalid event: expected user, item, rating, timestamp"},
		{name: "movielens bad rating", format: FormatMovieLens, in: "1\t2\tfive\t881250949\n", wantErr: `line 1: invalid event: rating "five"`},
		{name: "movielens bad timestamp", format: FormatMovieLens, in: "1,2,5,yesterday\n", wantErr: `timestamp "yesterday"`},
		// --- seq ---
		{
			name: "seq", format: FormatSeq,
			in: "u1 a b c\n\nu2\tx  y\n",
			want: []Interaction{
				{Type: "purchase", User: "u1", Item: "a", TS: SeqEpoch, Value: 1},
				{Type: "purchase", User: "u1", Item: "b", TS: SeqEpoch + 60000, Value: 1},
				{Type: "purchase", User: "u1", Item: "c", TS: SeqEpoch + 120000, Value: 1},
				{Type: "purchase", User: "u2", Item: "x", TS: SeqEpoch, Value: 1},
				{Type: "purchase", User: "u2", Item: "y", TS: SeqEpoch + 60000, Value: 1},
			},
		},
		{name: "seq user without items", format: FormatSeq, in: "u1 a\nu2\n", wantErr: "line 2: invalid event"},
		// --- taobao ---
		{
			name: "taobao, behaviours mapped, blank and CRLF lines", format: FormatTaobao,
			in: "1,2268318,2520377,pv,1511544070\r\n\n1,2333346,2520771,fav,1511561733\n2,7,8,cart,1511561734\n2,7,8,buy,1511561735\n",
			want: []Interaction{
				{Type: "view", User: "1", Item: "2268318", TS: 1511544070000},
				{Type: "cart", User: "1", Item: "2333346", TS: 1511561733000},
				{Type: "cart", User: "2", Item: "7", TS: 1511561734000},
				{Type: "purchase", User: "2", Item: "7", TS: 1511561735000},
			},
		},
		{name: "taobao unknown behaviour names line", format: FormatTaobao, in: "1,2,3,pv,1511544070\n1,2,3,click,1511544070\n", wantErr: `line 2: invalid event: behavior_type "click" (expected pv, cart, fav or buy)`},
		{name: "taobao header is not data", format: FormatTaobao, in: "user_id,item_id,category_id,behavior_type,timestamp\n", wantErr: `line 1: invalid event: behavior_type "behavior_type"`},
		{name: "taobao too few fields", format: FormatTaobao, in: "1,2,3,pv\n", wantErr: "line 1: invalid event: expected user_id,item_id,category_id,behavior_type,unix_ts, got 4 fields"},
		{name: "taobao empty item", format: FormatTaobao, in: "1,,3,pv,1511544070\n", wantErr: "line 1: invalid event: empty user or item id"},
		{name: "taobao bad timestamp", format: FormatTaobao, in: "1,2,3,pv,1511544070.5\n", wantErr: `line 1: invalid event: timestamp "1511544070.5"`},
		// --- yoochoose ---
		{
			name: "yoochoose session-rec file", format: FormatYooChoose,
			in: "SessionId\tItemId\tTime\n1\t214536502\t1396860669.277\n\n1\t214536506\t1396860886\r\n",
			want: []Interaction{
				{Type: "click", User: "1", Session: "1", Item: "214536502", TS: 1396860669277},
				{Type: "click", User: "1", Session: "1", Item: "214536506", TS: 1396860886000},
			},
		},
		{
			name: "yoochoose columns found by name", format: FormatYooChoose,
			in:   "Time\tSessionId\tItemId\tCategory\n1396860669.277\ts\ti\t0\n",
			want: []Interaction{{Type: "click", User: "s", Session: "s", Item: "i", TS: 1396860669277}},
		},
		{name: "yoochoose no header", format: FormatYooChoose, in: "1\t214536502\t1396860669.277\n", wantErr: `line 1: invalid event: header "1\t214536502\t1396860669.277" has no SessionId column`},
		{name: "yoochoose empty", format: FormatYooChoose, in: "", wantErr: "line 1: invalid event: empty file, expected a header SessionId"},
		{name: "yoochoose short line", format: FormatYooChoose, in: "SessionId\tItemId\tTime\n1\t2\t3\n1\t2\n", wantErr: "line 3: invalid event: 2 fields"},
		{name: "yoochoose bad time", format: FormatYooChoose, in: "SessionId\tItemId\tTime\n1\t2\tnoon\n", wantErr: `line 2: invalid event: Time "noon"`},
		{name: "yoochoose empty item", format: FormatYooChoose, in: "SessionId\tItemId\tTime\n1\t\t3\n", wantErr: "line 2: invalid event: empty SessionId or ItemId"},
		// --- diginetica ---
		{
			name: "diginetica, no trailing newline", format: FormatDiginetica,
			in: "session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\r\n2;5;31331;0;2016-05-10",
			want: []Interaction{
				{Type: "view", User: "1", Session: "1", Item: "81766", TS: 1462752000000 + 526309},
				{Type: "view", User: "2", Session: "2", Item: "31331", TS: 1462752000000 + DayMillis},
			},
		},
		{name: "diginetica no header", format: FormatDiginetica, in: "1;NA;81766;526309;2016-05-09\n", wantErr: "line 1: invalid event: header"},
		{name: "diginetica bad timeframe", format: FormatDiginetica, in: "session_id;user_id;item_id;timeframe;eventdate\n1;NA;2;-1;2016-05-09\n", wantErr: `line 2: invalid event: timeframe "-1"`},
		{name: "diginetica bad date", format: FormatDiginetica, in: "session_id;user_id;item_id;timeframe;eventdate\n1;NA;2;1;09/05/2016\n", wantErr: `line 2: invalid event: eventdate "09/05/2016"`},
		// --- unknown ---
		{name: "unknown format", format: "parquet", in: "", wantErr: `unknown format "parquet" (accepted: ndjson, csv, movielens, seq, taobao, yoochoose, diginetica)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(tc.format, tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestReadFileSeqPositions(t *testing.T) {
	items := make([]string, 1000)
	for i := range items {
		items[i] = "i" + strings.Repeat("x", i%7)
	}
	got, err := readAll(FormatSeq, "u "+strings.Join(items, " "))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(items) {
		t.Fatalf("%d events, want %d", len(got), len(items))
	}
	for i, e := range got {
		if want := SeqEpoch + int64(i)*60_000; e.TS != want {
			t.Fatalf("position %d: ts %d, want %d", i, e.TS, want)
		}
	}
}

// Validation errors should be recognisable as such across formats, and the
// callback's error stops the read unchanged.
func TestReadFileErrors(t *testing.T) {
	inputs := map[string]string{
		FormatNDJSON:     `{"user":"u","item":"i"}` + "\n" + `{"user":"u","item":"j"}`,
		FormatCSV:        "user,item\nu,i\nu,j\n",
		FormatMovieLens:  "1\t2\t3\t4\n1\t3\t3\t4\n",
		FormatSeq:        "u i j\n",
		FormatTaobao:     "u,i,c,pv,1\nu,j,c,pv,2\n",
		FormatYooChoose:  "SessionId\tItemId\tTime\ns\ti\t1\ns\tj\t2\n",
		FormatDiginetica: "session_id;user_id;item_id;timeframe;eventdate\ns;NA;i;1;2016-01-01\ns;NA;j;2;2016-01-01\n",
	}
	stop := errors.New("stop")
	for format, in := range inputs {
		t.Run(format, func(t *testing.T) {
			n := 0
			err := ReadFile(strings.NewReader(in), format, func(*Interaction) error {
				n++
				return stop
			})
			if !errors.Is(err, stop) || n != 1 {
				t.Fatalf("err = %v after %d calls, want the callback's error after 1", err, n)
			}
		})
	}
	bad := map[string]string{
		FormatNDJSON:     "[]",
		FormatCSV:        "user,item,ts\nu,i,x\n",
		FormatMovieLens:  "1\t2\n",
		FormatSeq:        "u\n",
		FormatTaobao:     "u,i\n",
		FormatYooChoose:  "SessionId\tItemId\n",
		FormatDiginetica: "session_id;item_id;timeframe;eventdate\ns;i;x;2016-01-01\n",
	}
	for format, in := range bad {
		if _, err := readAll(format, in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", format, err)
		}
	}
}

// Lines longer than bufio's default 64 KiB still parse.
func TestReadFileLongLine(t *testing.T) {
	ctx := `{"k":"` + strings.Repeat("x", 200_000) + `"}`
	got, err := readAll(FormatNDJSON, `{"user":"u","item":"i","context":`+ctx+"}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0].Context) != ctx {
		t.Fatalf("long line not read intact")
	}
}

func TestFormatFromName(t *testing.T) {
	tests := map[string]string{
		"events.ndjson":                        FormatNDJSON,
		"/data/Events.JSONL":                   FormatNDJSON,
		"ml-100k/u.data":                       FormatMovieLens,
		`C:\ml-latest\ratings.csv`:             FormatMovieLens,
		"RATINGS.CSV":                          FormatMovieLens,
		"clicks.csv":                           FormatCSV,
		"dir.csv/clicks.tsv":                   "",
		"sessions.txt":                         "",
		"sessions.seq":                         FormatSeq,
		"amazon-seq/Toys/Toys.txt":             FormatSeq,
		"u.data.bak":                           "",
		"noext":                                "",
		"":                                     "",
		"dir/":                                 "",
		"taobao/UserBehavior.prefix.clean.csv": FormatTaobao,
		"UserBehavior.csv":                     FormatTaobao,
		"rsc15/yoochoose-clicks-100k_test.txt": FormatYooChoose,
		"yoochoose-clicks-100k_train_full.txt": FormatYooChoose,
		"yoochoose-clicks.dat":                 "",
		"diginetica-sample-srgnn/sample_train-item-views.csv": FormatDiginetica,
		"train-item-views.csv":                                FormatDiginetica,
	}
	for name, want := range tests {
		if got := FormatFromName(name); got != want {
			t.Errorf("FormatFromName(%q) = %q, want %q", name, got, want)
		}
	}
}
