package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ripple-rec/ripple/internal/event"
)

// writeFiles writes name → content into a fresh directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func categoriesOf(c *Categories) map[string][]string {
	out := map[string][]string{}
	for _, it := range c.Items {
		out[it.ID] = it.Categories
	}
	return out
}

func TestLoadItemAttributes(t *testing.T) {
	// 3 names attribute 7 three times and 5 twice: 7 becomes its primary
	// category; 4 has no attribute and gets no item record.
	var many []string
	for a := range event.MaxCategories + 3 {
		many = append(many, fmt.Sprint(1000+a))
	}
	many = append(many, "1002") // named twice: kept first
	dir := writeFiles(t, map[string]string{
		"Toys.txt":                  "1 1 2 3\n",
		"Toys_item2attributes.json": `{"1": [1, 2], "2": [2], "3": [5, 7, 7, 5, 7], "4": [], "9": [` + strings.Join(many, ",") + `]}`,
	})
	c, err := LoadCategories(filepath.Join(dir, "Toys.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := categoriesOf(c)
	if len(c.Items) != 4 || !slices.Equal(got["1"], []string{"1", "2"}) || !slices.Equal(got["3"], []string{"7", "5"}) || got["4"] != nil {
		t.Fatalf("categories %v", got)
	}
	if nine := got["9"]; len(nine) != event.MaxCategories || nine[0] != "1002" || c.Truncated != 1 {
		t.Fatalf("item 9: %d categories, first %s, %d truncated", len(nine), nine[0], c.Truncated)
	}
	if c.Distinct() != 4+event.MaxCategories || c.Source != filepath.Join(dir, "Toys_item2attributes.json") {
		t.Errorf("distinct %d, source %s", c.Distinct(), c.Source)
	}
	if !slices.IsSortedFunc(c.Items, func(a, b event.Item) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("items not sorted by id")
	}
}

func TestLoadMovieLensGenres(t *testing.T) {
	flags := func(on ...int) string {
		f := make([]string, movieLensGenres)
		for i := range f {
			f[i] = "0"
			if slices.Contains(on, i) {
				f[i] = "1"
			}
		}
		return strings.Join(f, "|")
	}
	var genre strings.Builder
	for i, n := range []string{"unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
		"Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"} {
		fmt.Fprintf(&genre, "%s|%d\n", n, i)
	}
	uitem := "1|Toy Story (1995)|01-Jan-1995||http://x|" + flags(3, 4, 5) + "\n" +
		"2|A|title|with|pipes|01-Jan-1995||http://y|" + flags(1) + "\r\n" + // extra | in the title
		"267|unknown|||http://z|" + flags(0) + "\n"
	dir := writeFiles(t, map[string]string{"u.item": uitem, "u.genre": genre.String() + "\n"})
	c, err := LoadCategories(filepath.Join(dir, "u.data"))
	if err != nil {
		t.Fatal(err)
	}
	got := categoriesOf(c)
	// The "unknown" flag is no category: item 267 has none.
	if len(got) != 2 || !slices.Equal(got["1"], []string{"Animation", "Children's", "Comedy"}) || !slices.Equal(got["2"], []string{"Action"}) {
		t.Fatalf("genres %v", got)
	}
	// Without u.genre, genres are named by index.
	dir = writeFiles(t, map[string]string{"u.item": uitem})
	if c, err = LoadCategories(filepath.Join(dir, "u.data")); err != nil {
		t.Fatal(err)
	}
	if got := categoriesOf(c); !slices.Equal(got["2"], []string{"genre1"}) {
		t.Fatalf("unnamed genres %v", got)
	}
}

func TestLoadCategoriesAbsentOrMalformed(t *testing.T) {
	for _, data := range []string{"u.data", "LastFM.txt", "clicks.ndjson"} {
		c, err := LoadCategories(filepath.Join(t.TempDir(), data))
		if c != nil || err != nil {
			t.Errorf("%s without metadata: %v, %v; want nil, nil", data, c, err)
		}
	}
	good := "1|T|d||u|" + strings.Repeat("0|", movieLensGenres-1) + "1\n"
	tests := []struct {
		name  string
		files map[string]string
		data  string
		want  string // in the error
	}{
		{"not JSON", map[string]string{"S_item2attributes.json": "{1: [2]"}, "S.txt", "S_item2attributes.json: not a map"},
		{"string attribute", map[string]string{"S_item2attributes.json": `{"1": ["a"]}`}, "S.txt", "integer attribute ids"},
		{"empty item id", map[string]string{"S_item2attributes.json": `{"": [1]}`}, "S.txt", `item ""`},
		{"short u.item line", map[string]string{"u.item": good + "2|title|0|1\n"}, "u.data", "u.item: line 2: want an item id and 19 genre flags"},
		{"bad genre flag", map[string]string{"u.item": strings.Replace(good, "1\n", "2\n", 1)}, "u.data", `genre flag 18 is "2"`},
		{"bad u.genre line", map[string]string{"u.item": good, "u.genre": "Action|x\n"}, "u.data", "u.genre: line 1: want name|index"},
		{"short u.genre", map[string]string{"u.item": good, "u.genre": "unknown|0\nAction|1\n"}, "u.data", "u.genre: 2 genres, want 19"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.files[tc.data] = "1 1 2 3\n"
			format := event.FormatSeq
			if tc.data == "u.data" {
				tc.files[tc.data], format = "1\t1\t5\t100\n", event.FormatMovieLens
			}
			dir := writeFiles(t, tc.files)
			c, err := LoadCategories(filepath.Join(dir, tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadCategories = %v, %v; want an error with %q", c, err, tc.want)
			}
			if _, err := LoadFile(filepath.Join(dir, tc.data), format); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadFile = %v; want an error with %q", err, tc.want)
			}
		})
	}
}

// The shipped metadata files load whole.
func TestLoadSharedCategories(t *testing.T) {
	tests := []struct {
		rel                        string
		items, distinct, truncated int
	}{
		{"amazon-seq/LastFM/LastFM.txt", 3646, 388, 22},
		{"amazon-seq/Toys_and_Games/Toys_and_Games.txt", 11924, 1027, 0},
		{"ml-100k/u.data", 1680, 18, 0},
	}
	for _, tc := range tests {
		t.Run(tc.rel, func(t *testing.T) {
			c, err := LoadCategories(datasetPath(t, tc.rel))
			if err != nil {
				t.Fatal(err)
			}
			if c == nil {
				t.Fatal("no categories")
			}
			if len(c.Items) != tc.items || c.Distinct() != tc.distinct || c.Truncated != tc.truncated {
				t.Fatalf("%d items, %d distinct, %d truncated; want %d, %d, %d", len(c.Items), c.Distinct(), c.Truncated, tc.items, tc.distinct, tc.truncated)
			}
		})
	}
}

func TestLoadFileWithoutCategories(t *testing.T) {
	dir := writeFiles(t, map[string]string{"S.txt": "1 1 2 3\n"})
	d, err := LoadFile(filepath.Join(dir, "S.txt"), event.FormatSeq)
	if err != nil || d.Categories != nil {
		t.Fatalf("LoadFile = %+v, %v; want no categories", d, err)
	}
}
