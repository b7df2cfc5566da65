package model

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// Artifact file layout (little-endian), version 1:
//
//	"RPLM" u32(version) u32(items) {u32(len) bytes}×items
//	u32(offsets) u32×offsets  u32(entries) i32×entries f32×entries
//	u32(crc32-IEEE of everything before it)
const (
	magic         = "RPLM"
	formatVersion = 1
	maxItems      = 1 << 26
	maxEntries    = 1 << 30
	maxIDLen      = 1 << 16
	prealloc      = 1 << 12
)

// ErrCorrupt means an artifact failed its checks: bad magic, a size out of
// bounds, a table that does not describe one, or a checksum mismatch.
var ErrCorrupt = errors.New("model: corrupt artifact")

type crcWriter struct {
	w   *bufio.Writer
	crc uint32
	buf [4]byte
	err error
}

func (c *crcWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
	_, c.err = c.w.Write(p)
}

func (c *crcWriter) u32(v uint32) {
	binary.LittleEndian.PutUint32(c.buf[:], v)
	c.write(c.buf[:])
}

// Encode writes t as an artifact.
func (t *ItemItem) Encode(w io.Writer) error {
	c := &crcWriter{w: bufio.NewWriterSize(w, 1<<16)}
	c.write([]byte(magic))
	c.u32(formatVersion)
	c.u32(uint32(len(t.Items)))
	for _, id := range t.Items {
		c.u32(uint32(len(id)))
		c.write([]byte(id))
	}
	c.u32(uint32(len(t.Offsets)))
	for _, o := range t.Offsets {
		c.u32(o)
	}
	c.u32(uint32(len(t.Nbrs)))
	for _, j := range t.Nbrs {
		c.u32(uint32(j))
	}
	for _, v := range t.Weights {
		c.u32(math.Float32bits(v))
	}
	if c.err != nil {
		return c.err
	}
	binary.LittleEndian.PutUint32(c.buf[:], c.crc)
	if _, err := c.w.Write(c.buf[:]); err != nil {
		return err
	}
	return c.w.Flush()
}

type crcReader struct {
	r   *bufio.Reader
	crc uint32
	buf [4]byte
	err error
}

func (c *crcReader) read(p []byte) {
	if c.err != nil {
		return
	}
	if _, err := io.ReadFull(c.r, p); err != nil {
		c.err = fmt.Errorf("%w: %v", ErrCorrupt, err)
		return
	}
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
}

func (c *crcReader) u32() uint32 {
	c.read(c.buf[:])
	if c.err != nil {
		return 0
	}
	return binary.LittleEndian.Uint32(c.buf[:])
}

// count reads a length and checks it against limit before anything is
// allocated for it.
func (c *crcReader) count(what string, limit uint32) int {
	n := c.u32()
	if c.err == nil && n > limit {
		c.err = fmt.Errorf("%w: %d %s (at most %d)", ErrCorrupt, n, what, limit)
	}
	if c.err != nil {
		return 0 // never a size to allocate
	}
	return int(n)
}

// DecodeItemItem reads an artifact written by Encode.
func DecodeItemItem(r io.Reader) (*ItemItem, error) {
	c := &crcReader{r: bufio.NewReaderSize(r, 1<<16)}
	var m [4]byte
	c.read(m[:])
	if c.err == nil && string(m[:]) != magic {
		return nil, fmt.Errorf("%w: not a model artifact", ErrCorrupt)
	}
	if v := c.u32(); c.err == nil && v != formatVersion {
		return nil, fmt.Errorf("%w: format version %d (this build reads %d)", ErrCorrupt, v, formatVersion)
	}
	// Slices grow as data arrives, never to a count read from the file
	// before the data behind it: a damaged count cannot allocate gigabytes.
	n := c.count("items", maxItems)
	items := make([]string, 0, min(n, prealloc))
	for range n {
		b := make([]byte, c.count("bytes in an item id", maxIDLen))
		c.read(b)
		if c.err != nil {
			break
		}
		items = append(items, string(b))
	}
	n = c.count("offsets", maxItems+1)
	offsets := make([]uint32, 0, min(n, prealloc))
	for i := 0; i < n && c.err == nil; i++ {
		offsets = append(offsets, c.u32())
	}
	n = c.count("entries", maxEntries)
	nbrs := make([]int32, 0, min(n, prealloc))
	for i := 0; i < n && c.err == nil; i++ {
		nbrs = append(nbrs, int32(c.u32()))
	}
	weights := make([]float32, 0, min(n, prealloc))
	for i := 0; i < n && c.err == nil; i++ {
		weights = append(weights, math.Float32frombits(c.u32()))
	}
	if c.err != nil {
		return nil, c.err
	}
	want := c.crc
	var sum [4]byte
	if _, err := io.ReadFull(c.r, sum[:]); err != nil || binary.LittleEndian.Uint32(sum[:]) != want {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	for _, w := range weights {
		if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
			return nil, fmt.Errorf("%w: weight %v", ErrCorrupt, w)
		}
	}
	t, err := NewItemItem(items, offsets, nbrs, weights)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return t, nil
}
