package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ripple-rec/ripple/internal/atomicfile"
)

// Manifest describes one promoted blend: the component artifacts it reads
// and how it weighs them. It is the blend@N.json file of the registry.
type Manifest struct {
	Name       string      `json:"name"` // blend@N
	Version    int         `json:"version"`
	Created    time.Time   `json:"created"`
	Components []Component `json:"components"` // Version names each artifact file
	// StreamWeight scales the streaming sources against the components.
	StreamWeight float64 `json:"stream_weight"`
	// Tuned is what the category signal was set to with it (nil: the
	// server's configuration).
	Tuned *StreamTuning `json:"tuned,omitempty"`
	// Ranker reorders the blend's best candidates (nil: the blend's order
	// serves).
	Ranker *Ranker         `json:"ranker,omitempty"`
	Items  int             `json:"items"`
	Info   json.RawMessage `json:"info,omitempty"` // what the trainer reports: validation, timings
}

// Registry keeps model versions in a directory:
//
//	<name>@<N>.rmdl   one component artifact (transition@7.rmdl)
//	blend@<N>.json    a manifest naming its components' artifacts
//	CURRENT           the name of the blend that serves
//
// Every file is written to a temporary name, synced and renamed, and CURRENT
// is replaced last, so a crash at any point leaves the previous version
// serving. Current is one atomic load: a swap never pauses a request.
type Registry struct {
	dir  string
	keep int
	mu   sync.Mutex // serialises Promote
	cur  atomic.Pointer[Set]
	man  atomic.Pointer[Manifest]
}

const currentFile = "CURRENT"

var blendName = regexp.MustCompile(`^blend@([0-9]+)\.json$`)

// OpenRegistry opens (creating) dir and loads the serving blend, if any.
// When CURRENT's blend cannot be read, the newest readable older one serves
// and the error is returned beside the registry, so the caller can report
// it: a corrupt artifact never stops a node from starting.
func OpenRegistry(dir string, keep int) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &Registry{dir: dir, keep: max(keep, 1)}
	name, err := os.ReadFile(filepath.Join(dir, currentFile))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("model: registry %s: %w", dir, err)
	}
	cur := strings.TrimSpace(string(name))
	set, man, loadErr := r.load(cur)
	if loadErr == nil {
		r.cur.Store(set)
		r.man.Store(man)
		return r, nil
	}
	versions, _ := r.versions()
	for i := len(versions) - 1; i >= 0; i-- {
		old := "blend@" + strconv.Itoa(versions[i])
		if old == cur {
			continue
		}
		if set, man, err := r.load(old); err == nil {
			r.cur.Store(set)
			r.man.Store(man)
			return r, fmt.Errorf("model: %s unreadable (%v); serving %s", cur, loadErr, old)
		}
	}
	return r, fmt.Errorf("model: %s unreadable (%v); no older version readable either", cur, loadErr)
}

// Current is the serving set, nil when none was promoted.
func (r *Registry) Current() *Set { return r.cur.Load() }

// CurrentManifest describes Current.
func (r *Registry) CurrentManifest() *Manifest { return r.man.Load() }

// Promote writes set's components as new artifacts and a manifest carrying
// info, makes it the serving blend, and prunes versions beyond keep. The
// set is renamed blend@N and its components name@N.
func (r *Registry) Promote(set *Set, info any) (*Manifest, error) {
	if !set.Tuned.Valid() {
		return nil, fmt.Errorf("model: tuned streaming settings %+v out of range", *set.Tuned)
	}
	if err := set.Ranker.Valid(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	versions, err := r.versions()
	if err != nil {
		return nil, err
	}
	v := 1
	if len(versions) > 0 {
		v = versions[len(versions)-1] + 1
	}
	man := &Manifest{Name: "blend@" + strconv.Itoa(v), Version: v, Created: time.Now().UTC(), Items: len(set.Items),
		StreamWeight: set.StreamWeight, Tuned: set.Tuned, Ranker: set.Ranker}
	if info != nil {
		if man.Info, err = json.Marshal(info); err != nil {
			return nil, err
		}
	}
	comps := slices.Clone(set.Components)
	for i := range comps {
		comps[i].Version = comps[i].Name + "@" + strconv.Itoa(v)
		t := comps[i].Table
		if err := r.writeFile(comps[i].Version+".rmdl", func(w io.Writer) error { return t.Encode(w) }); err != nil {
			return nil, err
		}
	}
	man.Components = comps
	js, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := r.writeFile(man.Name+".json", func(w io.Writer) error { _, err := w.Write(js); return err }); err != nil {
		return nil, err
	}
	if err := r.writeFile(currentFile, func(w io.Writer) error { _, err := io.WriteString(w, man.Name+"\n"); return err }); err != nil {
		return nil, err
	}
	next := NewSet(man.Name, set.Items, comps)
	next.StreamWeight, next.Tuned, next.Ranker = set.StreamWeight, set.Tuned, set.Ranker
	r.cur.Store(next)
	r.man.Store(man)
	r.prune(append(versions, v))
	return man, nil
}

// ErrBadName means a name that is not blend@N.
var ErrBadName = errors.New("model: not a blend name (blend@N)")

// Activate makes the kept blend name serve again (a rollback, or a roll
// forward after one): its artifacts are read and checked first, and
// CURRENT is replaced only when they load.
func (r *Registry) Activate(name string) (*Manifest, error) {
	if !blendName.MatchString(name + ".json") {
		return nil, fmt.Errorf("%w: %q", ErrBadName, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	set, man, err := r.load(name)
	if err != nil {
		return nil, err
	}
	if err := r.writeFile(currentFile, func(w io.Writer) error { _, err := io.WriteString(w, name+"\n"); return err }); err != nil {
		return nil, err
	}
	r.cur.Store(set)
	r.man.Store(man)
	return man, nil
}

// writeFile writes name atomically (atomicfile.Write).
func (r *Registry) writeFile(name string, write func(io.Writer) error) error {
	if err := atomicfile.Write(filepath.Join(r.dir, name), 0o600, write); err != nil {
		return fmt.Errorf("model: write %s: %w", name, err)
	}
	return nil
}

// versions lists the blend versions on disk, ascending.
func (r *Registry) versions() ([]int, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, err
	}
	var vs []int
	for _, e := range ents {
		if m := blendName.FindStringSubmatch(e.Name()); m != nil {
			if v, err := strconv.Atoi(m[1]); err == nil {
				vs = append(vs, v)
			}
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// Manifests lists the kept blends, newest first.
func (r *Registry) Manifests() ([]Manifest, error) {
	vs, err := r.versions()
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for i := len(vs) - 1; i >= 0; i-- {
		if m, err := r.readManifest("blend@" + strconv.Itoa(vs[i])); err == nil {
			out = append(out, *m)
		}
	}
	return out, nil
}

func (r *Registry) readManifest(name string) (*Manifest, error) {
	js, err := os.ReadFile(filepath.Join(r.dir, name+".json"))
	if err != nil {
		return nil, err
	}
	var man Manifest
	if err := json.Unmarshal(js, &man); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return &man, nil
}

// load reads a blend and its artifacts; every component must index the
// same items in the same order.
func (r *Registry) load(name string) (*Set, *Manifest, error) {
	man, err := r.readManifest(name)
	if err != nil {
		return nil, nil, err
	}
	var items []string
	comps := slices.Clone(man.Components)
	for i := range comps {
		if strings.ContainsAny(comps[i].Version, `/\`) {
			return nil, nil, fmt.Errorf("%w: artifact name %q", ErrCorrupt, comps[i].Version)
		}
		f, err := os.Open(filepath.Join(r.dir, comps[i].Version+".rmdl"))
		if err != nil {
			return nil, nil, err
		}
		t, err := DecodeItemItem(f)
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", comps[i].Version, err)
		}
		if i == 0 {
			items = t.Items
		} else if !slices.Equal(items, t.Items) {
			return nil, nil, fmt.Errorf("%w: %s indexes other items than %s", ErrCorrupt, comps[i].Version, comps[0].Version)
		}
		comps[i].Table = t
	}
	if math.IsNaN(man.StreamWeight) || man.StreamWeight < 0 {
		return nil, nil, fmt.Errorf("%w: %s: stream weight %v", ErrCorrupt, name, man.StreamWeight)
	}
	if !man.Tuned.Valid() {
		return nil, nil, fmt.Errorf("%w: %s: tuned streaming settings %+v", ErrCorrupt, name, *man.Tuned)
	}
	if err := man.Ranker.Valid(); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, name, err)
	}
	set := NewSet(man.Name, items, comps)
	set.StreamWeight, set.Tuned, set.Ranker = man.StreamWeight, man.Tuned, man.Ranker
	return set, man, nil
}

// prune removes blends older than the newest keep, and artifacts no kept
// blend names. The serving blend is always among the newest.
func (r *Registry) prune(versions []int) {
	if len(versions) <= r.keep {
		return
	}
	live := map[string]bool{}
	for _, v := range versions[len(versions)-r.keep:] {
		if m, err := r.readManifest("blend@" + strconv.Itoa(v)); err == nil {
			for _, c := range m.Components {
				live[c.Version+".rmdl"] = true
			}
		}
	}
	for _, v := range versions[:len(versions)-r.keep] {
		_ = os.Remove(filepath.Join(r.dir, "blend@"+strconv.Itoa(v)+".json"))
	}
	ents, _ := os.ReadDir(r.dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".rmdl") && !live[e.Name()] {
			_ = os.Remove(filepath.Join(r.dir, e.Name()))
		}
	}
}
