package helixflow

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// ProgressFunc is told how many bytes of an upload have been sent so far and the total
// (-1 when unknown). It is called from the goroutine sending the request.
type ProgressFunc func(sent, total int64)

// upload is a body to send: its reader, size (-1: unknown) and what closes it.
type upload struct {
	r     io.Reader
	size  int64
	close func() error
}

func uploadBytes(b []byte) *upload {
	return &upload{r: bytes.NewReader(b), size: int64(len(b)), close: func() error { return nil }}
}

func uploadFile(call, path string) (*upload, error) {
	if path == "" {
		return nil, argError(call, "path", "is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("helixflow: %s: %w", call, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("helixflow: %s: %w", call, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, argError(call, "path", fmt.Sprintf("%q is a directory", path))
	}
	return &upload{r: f, size: st.Size(), close: f.Close}, nil
}

func uploadReader(call string, r io.Reader, size int64) (*upload, error) {
	if r == nil {
		return nil, argError(call, "reader", "is required")
	}
	if size < 0 {
		size = -1
	}
	return &upload{r: r, size: size, close: func() error { return nil }}, nil
}

// withProgress wraps u's reader so that progress hears of every read.
func (u *upload) withProgress(progress ProgressFunc) io.Reader {
	if progress == nil {
		return u.r
	}
	return &progressReader{r: u.r, total: u.size, progress: progress}
}

type progressReader struct {
	r        io.Reader
	sent     int64
	total    int64
	progress ProgressFunc
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.sent += int64(n)
		p.progress(p.sent, p.total)
	}
	return n, err
}
