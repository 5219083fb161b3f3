package helixflow

// The Go code in the repository README's "Clients" section (under "#### Go") is run
// here against the real node, so it cannot go stale: its ```sh lines are run in a
// fresh module (with /path/to/helixflow replaced by this checkout), then each ```go
// block is built and run there with "your-key" replaced by the test key.

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

type codeBlock struct {
	lang, code string
}

// readmeGoBlocks returns the fenced blocks of README.md's Go client section.
func readmeGoBlocks(t *testing.T, readme string) []codeBlock {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatalf("the repository README: %v", err)
	}
	defer f.Close()
	var blocks []codeBlock
	var in bool
	var cur *codeBlock
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur != nil:
			if strings.TrimSpace(line) == "```" {
				blocks = append(blocks, *cur)
				cur = nil
			} else {
				cur.code += line + "\n"
			}
		case strings.HasPrefix(line, "#### Go"):
			in = true
		case in && (strings.HasPrefix(line, "#### ") || strings.HasPrefix(line, "### ") || strings.HasPrefix(line, "## ")):
			in = false
		case in && strings.HasPrefix(line, "```"):
			cur = &codeBlock{lang: strings.TrimSpace(strings.TrimPrefix(line, "```"))}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

func goBinary() string {
	if g := os.Getenv("HELIXFLOW_GO"); g != "" {
		return g
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func TestE2EReadmeGoExample(t *testing.T) {
	env := e2e(t)
	sdkDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(sdkDir))
	blocks := readmeGoBlocks(t, filepath.Join(root, "README.md"))
	var goBlocks, shBlocks []codeBlock
	for _, b := range blocks {
		switch b.lang {
		case "go":
			goBlocks = append(goBlocks, b)
		case "sh", "bash", "shell":
			shBlocks = append(shBlocks, b)
		default:
			t.Fatalf("README's Go section has a ```%s block this test cannot run", b.lang)
		}
	}
	if len(goBlocks) == 0 {
		t.Fatal("README.md has no ```go block under \"#### Go\"")
	}
	all := ""
	for _, b := range goBlocks {
		all += b.code
	}
	for _, want := range []string{`helixflow.NewClient("your-key")`, `client.CreateChatCompletion(ctx, request)`, `"smollm2-135m-instruct"`} {
		if !strings.Contains(all, want) {
			t.Fatalf("README's Go example lacks %s", want)
		}
	}

	goBin := goBinary()
	environ := append(os.Environ(),
		"PATH="+filepath.Dir(goBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GOPROXY=off", "GOFLAGS=-mod=mod", "HELIXFLOW_BASE_URL="+env.baseURL)
	run := func(dir string, timeout time.Duration, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, environ
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s %v in %s: %v\n%s", name, args, dir, err, out.String())
			}
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
			t.Fatalf("%s %v: no answer within %v\n%s", name, args, timeout, out.String())
		}
		return out.String()
	}
	for i, b := range goBlocks {
		dir := t.TempDir()
		run(dir, time.Minute, goBin, "mod", "init", "readme.example/block")
		for _, sh := range shBlocks {
			for _, line := range strings.Split(sh.code, "\n") {
				line = strings.TrimSpace(line)
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				run(dir, time.Minute, "sh", "-c", strings.ReplaceAll(line, "/path/to/helixflow", root))
			}
		}
		code := strings.ReplaceAll(b.code, `"your-key"`, `"`+env.key+`"`)
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		out := run(dir, 3*time.Minute, goBin, "run", ".")
		t.Logf("README go block %d printed: %s", i+1, out)
		if strings.TrimSpace(out) == "" {
			t.Fatalf("README go block %d printed nothing", i+1)
		}
	}
}
