package guest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// The simulated internet: the few downloads the deployment needs. Everything else does not resolve.
const cudaKeyringURL = nvidiaURL + "/cuda-keyring_1.1-1_all.deb"

const ollamaInstallScript = `#!/bin/sh
# This script installs Ollama on Linux.
# It detects the current operating system architecture and installs the appropriate version of Ollama.
# (aimachine simulated guest: the installer's steps are carried out by the simulator; see guest.md §8.1)
set -eu
aimachine-sim-ollama-install "$@"
`

// fetch answers an HTTP request from inside the guest. It returns the curl exit code and message
// when no HTTP exchange happens.
func (g *Guest) fetch(req *http.Request) (*http.Response, int, string) {
	host := req.URL.Hostname()
	port := req.URL.Port()
	if port == "" {
		port = "80"
		if req.URL.Scheme == "https" {
			port = "443"
		}
	}
	pn, _ := strconv.Atoi(port)
	ip := host
	switch host {
	case "localhost", "ip6-localhost":
		ip = "127.0.0.1"
	case "0.0.0.0":
		ip = "127.0.0.1"
	}
	if net.ParseIP(ip) != nil {
		local := ip == "127.0.0.1" || ip == "::1" || ip == g.IP() || strings.HasPrefix(ip, "127.")
		if !local {
			return nil, 28, fmt.Sprintf("Failed to connect to %s port %d after 3002 ms: Timeout was reached", host, pn)
		}
		h := g.sys.handlerFor(ip, pn)
		if h == nil {
			return nil, 7, fmt.Sprintf("Failed to connect to %s port %d after 0 ms: Couldn't connect to server", host, pn)
		}
		rec := httptest.NewRecorder()
		if aborted := serveRecover(h, rec, req); aborted {
			return nil, 56, "Recv failure: Connection reset by peer"
		}
		return rec.Result(), 0, ""
	}
	switch {
	case host == "ollama.com" && req.URL.Path == "/install.sh":
		return textResponse(200, ollamaInstallScript), 0, ""
	case req.URL.String() == cudaKeyringURL:
		return textResponse(200, string(debFile("cuda-keyring", "1.1-1"))), 0, ""
	case host == "developer.download.nvidia.com":
		return textResponse(404, "<html><body><h1>404 Not Found</h1></body></html>\n"), 0, ""
	case host == "ollama.com" || host == "github.com" || host == "huggingface.co" || host == "pypi.org" || host == "archive.ubuntu.com":
		return textResponse(404, "Not Found\n"), 0, ""
	}
	return nil, 6, fmt.Sprintf("Could not resolve host: %s", host)
}

func textResponse(code int, body string) *http.Response {
	rec := httptest.NewRecorder()
	rec.WriteHeader(code)
	io.WriteString(rec, body)
	return rec.Result()
}

func init() {
	programs["curl"] = progCurl
	programs["wget"] = progWget
}

func progCurl(p *proc) int {
	args := p.args[1:]
	var rawURL, out, method, data, writeOut string
	var headers []string
	silent, showErr, fail, head, include, remoteName := false, false, false, false, false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "-o" || a == "--output":
			out = next()
		case a == "-X" || a == "--request":
			method = next()
		case a == "-H" || a == "--header":
			h := next()
			if !strings.HasPrefix(h, "@") {
				headers = append(headers, h)
				continue
			}
			// curl(1) --header @FILE: "adds a header for each line in the input file" (@- is
			// stdin); tool_getparam.c splits the file with strtok(…, "\r\n"), so empty lines vanish.
			var b []byte
			var rerr error
			if h == "@-" {
				b, _ = io.ReadAll(p.stdin)
			} else if b, rerr = p.readFile(h[1:]); rerr != nil {
				p.errorf("curl: Failed to open %s\ncurl: option -H: error encountered when reading a file\n", h[1:])
				return 26
			}
			headers = append(headers, strings.FieldsFunc(string(b), func(r rune) bool { return r == '\r' || r == '\n' })...)
		case a == "-d" || a == "--data" || a == "--data-raw" || a == "--data-binary" || a == "--json":
			data = next()
			if method == "" {
				method = "POST"
			}
			if a == "--json" {
				headers = append(headers, "Content-Type: application/json")
			}
		case a == "-w" || a == "--write-out":
			writeOut = next()
		case a == "-K" || a == "--config":
			// curl config: one option per line, "header = \"X: y\"", "url = ...", "--header X"
			src := next()
			var cfg []byte
			if src == "-" {
				cfg, _ = io.ReadAll(p.stdin)
			} else if b, err := p.readFile(src); err == nil {
				cfg = b
			} else {
				p.errorf("curl: (26) Failed to open config file %s\n", src)
				return 26
			}
			for _, line := range strings.Split(string(cfg), "\n") {
				line = strings.TrimSpace(line)
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				k, v, ok := strings.Cut(line, "=")
				if !ok {
					k, v, _ = strings.Cut(line, " ")
				}
				k = strings.TrimLeft(strings.TrimSpace(k), "-")
				v = strings.Trim(strings.TrimSpace(v), "\"")
				switch k {
				case "header", "H":
					headers = append(headers, v)
				case "url":
					rawURL = v
				case "data", "d":
					data, method = v, "POST"
				case "silent", "s":
					silent = true
				}
			}
		case a == "-m" || a == "--max-time" || a == "--connect-timeout" || a == "--retry" || a == "--retry-delay" || a == "-u" || a == "--user" || a == "-A" || a == "--user-agent":
			next()
		case a == "-s" || a == "--silent":
			silent = true
		case a == "-S" || a == "--show-error":
			showErr = true
		case a == "-f" || a == "--fail" || a == "--fail-with-body":
			fail = true
		case a == "-I" || a == "--head":
			head = true
		case a == "-i" || a == "--include":
			include = true
		case a == "-O" || a == "--remote-name":
			remoteName = true
		case strings.HasPrefix(a, "--"):
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, c := range a[1:] {
				switch c {
				case 's':
					silent = true
				case 'S':
					showErr = true
				case 'f':
					fail = true
				case 'I':
					head = true
				case 'i':
					include = true
				case 'O':
					remoteName = true
				case 'o':
					out = next()
				case 'w':
					writeOut = next()
				}
			}
		default:
			rawURL = a
		}
	}
	if rawURL == "" {
		p.errorf("curl: try 'curl --help' or 'curl --manual' for more information\n")
		return 2
	}
	if !strings.Contains(rawURL, "://") {
		rawURL = "http://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		p.errorf("curl: (3) URL rejected: Malformed input to a URL function\n")
		return 3
	}
	if method == "" {
		method = "GET"
		if head {
			method = "HEAD"
		}
	}
	req, _ := http.NewRequestWithContext(p.ctx, method, u.String(), strings.NewReader(data))
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	req.RemoteAddr = "127.0.0.1:52000"
	resp, code, msg := p.g.fetch(req)
	if resp == nil {
		if !silent || showErr {
			p.errorf("curl: (%d) %s\n", code, msg)
		}
		if writeOut != "" {
			p.printf("%s", strings.ReplaceAll(writeOut, "%{http_code}", "000"))
		}
		return code
	}
	body, _ := io.ReadAll(resp.Body)
	if fail && resp.StatusCode >= 400 {
		if !silent || showErr {
			p.errorf("curl: (22) The requested URL returned error: %d\n", resp.StatusCode)
		}
		if writeOut != "" {
			p.printf("%s", strings.ReplaceAll(writeOut, "%{http_code}", strconv.Itoa(resp.StatusCode)))
		}
		return 22
	}
	var w io.Writer = p.stdout
	if remoteName {
		out = path.Base(u.Path)
	}
	if out != "" && out != "-" {
		f, err := p.open(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			p.errorf("curl: (23) Failure writing output to destination\n")
			return 23
		}
		defer f.Close()
		w = f
	}
	if include || head {
		fmt.Fprintf(w, "HTTP/1.1 %s\r\n", resp.Status)
		for k, vs := range resp.Header {
			for _, v := range vs {
				fmt.Fprintf(w, "%s: %s\r\n", strings.ToLower(k), v)
			}
		}
		fmt.Fprintf(w, "\r\n")
	}
	if !head {
		w.Write(body)
	}
	if writeOut != "" {
		p.printf("%s", strings.NewReplacer("%{http_code}", strconv.Itoa(resp.StatusCode), `\n`, "\n").Replace(writeOut))
	}
	return 0
}

func progWget(p *proc) int {
	args := p.args[1:]
	var rawURL, out string
	quiet := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-O" || a == "--output-document":
			if i+1 < len(args) {
				out = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "-O") && len(a) > 2:
			out = a[2:]
		case a == "-q" || a == "--quiet" || a == "-nv":
			quiet = true
		case a == "-qO-" || a == "-qO":
			quiet = true
			out = "-"
			if a == "-qO" && i+1 < len(args) {
				out = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "-"):
		default:
			rawURL = a
		}
	}
	if rawURL == "" {
		p.errorf("wget: missing URL\nUsage: wget [OPTION]... [URL]...\n")
		return 1
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		p.errorf("%s: Invalid URL %s: Scheme missing\n", rawURL, rawURL)
		return 1
	}
	now := time.Now().UTC().Format("2006-01-02 15:04:05")
	if !quiet {
		p.errorf("--%s--  %s\nResolving %s (%s)... ", now, rawURL, u.Hostname(), u.Hostname())
	}
	req, _ := http.NewRequestWithContext(p.ctx, "GET", u.String(), nil)
	resp, code, _ := p.g.fetch(req)
	if resp == nil {
		if !quiet {
			p.errorf("failed: Name or service not known.\n")
		}
		p.errorf("wget: unable to resolve host address '%s'\n", u.Hostname())
		if code == 7 {
			return 4
		}
		return 4
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if !quiet {
			p.errorf("%s\nHTTP request sent, awaiting response... %s\n", u.Hostname(), resp.Status)
		}
		p.errorf("%s ERROR %d: %s.\n\n", now, resp.StatusCode, http.StatusText(resp.StatusCode))
		return 8
	}
	if out == "" {
		out = path.Base(u.Path)
		if out == "/" || out == "." {
			out = "index.html"
		}
	}
	if !quiet {
		p.errorf("%s\nConnecting to %s|%s|:443... connected.\nHTTP request sent, awaiting response... 200 OK\nLength: %d\nSaving to: ‘%s’\n\n", u.Hostname(), u.Hostname(), u.Hostname(), len(body), out)
	}
	if out == "-" {
		p.stdout.Write(body)
		return 0
	}
	if err := p.writeFile(out, body, 0o644); err != nil {
		p.errorf("%s: %s\n", out, errText(err))
		return 3
	}
	if !quiet {
		p.errorf("%s (1.2 MB/s) - ‘%s’ saved [%d/%d]\n\n", now, out, len(body), len(body))
	}
	return 0
}

// serveRecover runs a handler; a handler that aborts (http.ErrAbortHandler) is a reset connection.
func serveRecover(h http.Handler, w http.ResponseWriter, r *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			aborted = true
		}
	}()
	h.ServeHTTP(w, r)
	return false
}
