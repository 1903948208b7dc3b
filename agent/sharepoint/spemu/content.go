package spemu

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
)

// contentWords are the words generated text is made of, most frequent
// first, each at most 7 letters: every 8 bytes of generated content is one
// of them padded with spaces (or ended by a full stop or a line break), so
// any range is computed directly, and a text extractor and a full-text
// index see prose with a natural, skewed vocabulary rather than noise.
var contentWords = strings.Fields(`the of and to in a is that for it as was with be by on not he this are or his from at which but have an
they you were her she there been one all we their has would when if so no what up out who them some could can more other then into
only its time new about year after first work also well way even because people any these day most us market brand launch report
plan review budget quarter revenue client design content asset social email segment channel partner agency approve invoice region
sales growth metric target goal product team draft final summary meeting agenda minutes policy process project release update
status risk issue action owner cost price offer event webinar video image banner copy layout print survey insight trend outlook
north south east west spring summer autumn winter monday friday january march june october`)

// contentBlocks are contentWords as 8-byte blocks: padded, or ended by a
// full stop or a line break.
var contentBlocks = func() [][3][8]byte {
	out := make([][3][8]byte, len(contentWords))
	for i, w := range contentWords {
		for v, end := range []byte{' ', '.', '\n'} {
			b := [8]byte{' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}
			copy(b[:], w)
			switch end {
			case '.':
				b[len(w)] = '.'
			case '\n':
				b[7] = '\n'
			}
			out[i][v] = b
		}
	}
	return out
}()

// block returns generated block idx of the content keyed by seed.
func block(seed, idx uint64) *[8]byte {
	w := mix64(seed, idx)
	// The product of two uniform numbers favours the first words.
	k := (w & 0xffff) * ((w >> 16) & 0xffff) * uint64(len(contentBlocks)) >> 32
	v := 0
	switch (w >> 32) & 15 {
	case 0:
		v = 1
	case 1:
		v = 2
	}
	return &contentBlocks[k][v]
}

// content is a file's bytes: either explicit data, or generated on demand
// from (seed, size) so that a file of any size costs no memory.
type content struct {
	seed uint64
	size int64
	data []byte // explicit content; nil means generated
}

var errNegativeOffset = errors.New("spemu: negative offset")

// mix64 is splitmix64's finalizer over the word index, keyed by seed.
func mix64(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// ReadAt implements io.ReaderAt: any range is computed directly.
func (c content) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errNegativeOffset
	}
	if off >= c.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > c.size-off {
		n = int(c.size - off)
	}
	if c.data != nil {
		copy(p[:n], c.data[off:])
	} else {
		fillContent(c.seed, p[:n], off)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func fillContent(seed uint64, p []byte, off int64) {
	idx := uint64(off) >> 3
	i := 0
	if sh := int(off & 7); sh != 0 {
		i = copy(p, block(seed, idx)[sh:])
		idx++
	}
	for ; i+8 <= len(p); i += 8 {
		copy(p[i:i+8], block(seed, idx)[:])
		idx++
	}
	if i < len(p) {
		copy(p[i:], block(seed, idx)[:])
	}
}

// reader streams the whole content.
func (c content) reader() *io.SectionReader { return io.NewSectionReader(c, 0, c.size) }

// sha256Hex hashes the content by streaming it.
func (c content) sha256Hex() string {
	h := sha256.New()
	if c.data != nil {
		h.Write(c.data)
	} else {
		buf := make([]byte, min(c.size, 256<<10))
		for off := int64(0); off < c.size; {
			n := int(min(int64(len(buf)), c.size-off))
			fillContent(c.seed, buf[:n], off)
			h.Write(buf[:n])
			off += int64(n)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
