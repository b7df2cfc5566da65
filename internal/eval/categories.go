package eval

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ripple-rec/ripple/internal/event"
)

// Categories is the item metadata shipped beside a dataset: what a server
// holding the same catalogue would have been sent as items.
type Categories struct {
	Source string       // the file they were read from
	Items  []event.Item // sorted by ID; every item has at least one category
	// Truncated counts items that had more than event.MaxCategories
	// distinct categories, which the server's item validation rejects; they
	// keep the most often named ones.
	Truncated int
}

// items are c's items; none for a nil c.
func (c *Categories) items() []event.Item {
	if c == nil {
		return nil
	}
	return c.Items
}

// Distinct is the number of distinct categories.
func (c *Categories) Distinct() int {
	seen := map[string]struct{}{}
	for _, it := range c.Items {
		for _, cat := range it.Categories {
			seen[cat] = struct{}{}
		}
	}
	return len(seen)
}

// LoadCategories reads the item categories shipped beside the interaction
// file at path, if any:
//   - <Name>_item2attributes.json beside <Name>.txt (the S3-Rec Amazon and
//     LastFM files): item id → attribute ids;
//   - u.item beside MovieLens's u.data: the 19 genre flags, named by u.genre
//     when it is there.
//
// It returns nil, nil when there is no such file, and an error naming the
// file when there is one it cannot read.
func LoadCategories(path string) (*Categories, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	if strings.EqualFold(base, "u.data") {
		return loadIfPresent(filepath.Join(dir, "u.item"), readMovieLensGenres)
	}
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	return loadIfPresent(filepath.Join(dir, stem+"_item2attributes.json"), readItemAttributes)
}

func loadIfPresent(path string, read func(path string, b []byte) (map[string][]string, error)) (*Categories, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	byItem, err := read(path, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c, err := newCategories(byItem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Source = path
	return c, nil
}

// newCategories turns item → category lists, repeats allowed, into
// validated items: each category once, the most often named first (ties in
// the order they were first named), since the pipeline treats the first as
// the item's primary category.
func newCategories(byItem map[string][]string) (*Categories, error) {
	c := &Categories{}
	v := event.NewValidator()
	for id, named := range byItem {
		count := map[string]int{}
		var cats []string
		for _, cat := range named {
			if count[cat] == 0 {
				cats = append(cats, cat)
			}
			count[cat]++
		}
		if len(cats) == 0 {
			continue
		}
		slices.SortStableFunc(cats, func(a, b string) int { return cmp.Compare(count[b], count[a]) })
		if len(cats) > event.MaxCategories {
			cats = cats[:event.MaxCategories]
			c.Truncated++
		}
		it := event.Item{ID: id, Categories: cats}
		if err := v.Item(&it); err != nil {
			return nil, fmt.Errorf("item %q: %w", id, err)
		}
		c.Items = append(c.Items, it)
	}
	slices.SortFunc(c.Items, func(a, b event.Item) int { return strings.Compare(a.ID, b.ID) })
	return c, nil
}

// readItemAttributes reads {"item id": [attribute id, ...], ...}.
func readItemAttributes(_ string, b []byte) (map[string][]string, error) {
	var raw map[string][]int64
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a map of item id to a list of integer attribute ids: %w", err)
	}
	out := make(map[string][]string, len(raw))
	for id, attrs := range raw {
		cats := make([]string, len(attrs))
		for i, a := range attrs {
			cats[i] = strconv.FormatInt(a, 10)
		}
		out[id] = cats
	}
	return out, nil
}

// movieLensGenres is the number of genre flags that end each u.item line.
const movieLensGenres = 19

// readMovieLensGenres reads u.item: "id|title|release|video release|IMDb
// URL|19 genre flags". Flag 0 is MovieLens's "unknown" genre: the absence
// of one, not a category.
func readMovieLensGenres(path string, b []byte) (map[string][]string, error) {
	names, err := readMovieLensGenreNames(filepath.Join(filepath.Dir(path), "u.genre"))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) < 1+movieLensGenres || f[0] == "" {
			return nil, fmt.Errorf("line %d: want an item id and %d genre flags separated by |, got %d fields", n, movieLensGenres, len(f))
		}
		var cats []string
		for g, flag := range f[len(f)-movieLensGenres:] {
			switch flag {
			case "0":
			case "1":
				if g > 0 {
					cats = append(cats, names[g])
				}
			default:
				return nil, fmt.Errorf("line %d: genre flag %d is %q, want 0 or 1", n, g, flag)
			}
		}
		out[f[0]] = cats
	}
	return out, sc.Err()
}

// readMovieLensGenreNames reads u.genre ("name|index" lines); without it
// genres are named by their index.
func readMovieLensGenreNames(path string) ([]string, error) {
	names := make([]string, movieLensGenres)
	for g := range names {
		names[g] = "genre" + strconv.Itoa(g)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return names, nil
	}
	if err != nil {
		return nil, err
	}
	seen := 0
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, idx, ok := strings.Cut(line, "|")
		g, err := strconv.Atoi(idx)
		if !ok || err != nil || g < 0 || g >= movieLensGenres || name == "" {
			return nil, fmt.Errorf("%s: line %d: want name|index with index 0..%d, got %q", path, n+1, movieLensGenres-1, line)
		}
		names[g] = name
		seen++
	}
	if seen != movieLensGenres {
		return nil, fmt.Errorf("%s: %d genres, want %d", path, seen, movieLensGenres)
	}
	return names, nil
}
