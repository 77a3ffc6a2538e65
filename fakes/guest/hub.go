package guest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The Hugging Face Hub (huggingface.co) as the guest sees it, and the `hf` CLI of
// huggingface_hub 1.7 that the vLLM venv carries.
//
// Sources (huggingface/huggingface_hub v1.7.0):
//   - utils/_http.py hf_raise_for_status: the Hub answers a download of a gated repo without
//     an approved token with 401 and "X-Error-Code: GatedRepo", an unknown repo with 401
//     "X-Error-Code: RepoNotFound" (for anonymous callers: a private repo looks the same);
//   - cli/_errors.py: the CLI turns those into "Access denied. Model 'ID' requires approval."
//     and "Model 'ID' not found. If the repo is private, make sure you are authenticated.";
//   - cli/hf.py main: "Error: <message>" on stderr, then "Set HF_DEBUG=1 as environment
//     variable for full traceback.", exit 1;
//   - cli/download.py: on success it prints the snapshot path (stdout);
//   - _snapshot_download.py: "Fetching N files" progress bar (stderr), files go to
//     <cache>/models--ORG--NAME/blobs/<etag>, snapshots/<commit>/<file> (symlinks to the
//     blobs) and refs/<revision> (the commit); a blob being written is <etag>.incomplete;
//   - file_download.py _check_disk_space: the "Not enough free disk space" warning;
//   - constants.py: the token comes from --token, HF_TOKEN, or the file HF_TOKEN_PATH
//     (default $HF_HOME/token, HF_HOME default ~/.cache/huggingface).
//
// File sizes are the repos' safetensors sizes rounded from the parameter counts on the model
// cards × 2 bytes (bf16); configs and tokenizers are small.

type hubFile struct {
	name string
	size int64
}

type hubRepo struct {
	sha   string
	gated bool
	files []hubFile
}

// hubRepos are the repos the simulated Hub holds (public model cards; meta-llama is gated).
var hubRepos = map[string]hubRepo{}

func init() {
	add := func(id string, gated bool, params float64, shards int) {
		sum := sha256.Sum256([]byte(id))
		r := hubRepo{sha: hex.EncodeToString(sum[:])[:40], gated: gated}
		r.files = []hubFile{{"config.json", 663}, {"generation_config.json", 242}, {"tokenizer.json", 7031645}, {"tokenizer_config.json", 7305}}
		total := int64(params * 1e9 * 2)
		for i := 1; i <= shards; i++ {
			name := "model.safetensors"
			if shards > 1 {
				name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i, shards)
			}
			r.files = append(r.files, hubFile{name, total / int64(shards)})
		}
		if shards > 1 {
			r.files = append(r.files, hubFile{"model.safetensors.index.json", 35564})
		}
		hubRepos[id] = r
	}
	programs["hf"] = progHF
	add("Qwen/Qwen2.5-0.5B-Instruct", false, 0.494, 1)
	add("Qwen/Qwen2.5-1.5B-Instruct", false, 1.54, 1)
	add("Qwen/Qwen2.5-3B-Instruct", false, 3.09, 2)
	add("Qwen/Qwen2.5-7B-Instruct", false, 7.62, 4)
	add("Qwen/Qwen2.5-14B-Instruct", false, 14.7, 8)
	add("Qwen/Qwen3-0.6B", false, 0.6, 1)
	add("Qwen/Qwen3-8B", false, 8.19, 5)
	add("meta-llama/Llama-3.2-1B-Instruct", true, 1.24, 1)
	add("meta-llama/Llama-3.2-3B-Instruct", true, 3.21, 2)
	add("meta-llama/Llama-3.1-8B-Instruct", true, 8.03, 4)
}

// hubValidToken: the simulated Hub accepts user access tokens (hf_…) and treats them as
// approved for every gated repo.
var hubValidToken = regexp.MustCompile(`^hf_[A-Za-z0-9]{8,}$`)

// hubHandler serves the two Hub routes a snapshot download uses: GET
// /api/models/{id}/revision/{rev} (model info, siblings; their sizes with ?blobs=true) and
// HEAD/GET /{id}/resolve/{rev}/{file}
// (metadata headers; bodies are not served — the CLI writes sparse files of the announced size).
func hubHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		authed := hubValidToken.MatchString(auth)
		if r.Header.Get("Authorization") != "" && !authed {
			w.Header().Set("X-Error-Message", "Invalid credentials in Authorization header")
			writeJSON(w, 401, map[string]string{"error": "Invalid credentials in Authorization header"})
			return
		}
		notFound := func() {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			w.Header().Set("X-Error-Message", "Repository not found")
			writeJSON(w, 401, map[string]string{"error": "Repository not found"})
		}
		if rest, ok := strings.CutPrefix(p, "api/models/"); ok {
			id, rev, _ := strings.Cut(rest, "/revision/")
			repo, ok := hubRepos[id]
			if !ok {
				notFound()
				return
			}
			if rev != "main" && rev != repo.sha && rev != "" {
				w.Header().Set("X-Error-Code", "RevisionNotFound")
				writeJSON(w, 404, map[string]string{"error": "Invalid rev id: " + rev})
				return
			}
			// Siblings carry their names; sizes (and blob ids) only with ?blobs=true, which is what
			// huggingface_hub's model_info(files_metadata=True) sends (hf_api.py:
			// params["blobs"] = True; requests encodes True as "True").
			blobs := false
			switch r.URL.Query().Get("blobs") {
			case "true", "True", "1":
				blobs = true
			}
			var sib []any
			for _, f := range repo.files {
				e := map[string]any{"rfilename": f.name}
				if blobs {
					blob := sha1.Sum([]byte(id + "/" + f.name))
					e["size"], e["blobId"] = f.size, hex.EncodeToString(blob[:])
				}
				sib = append(sib, e)
			}
			gated := any(false)
			if repo.gated {
				gated = "manual"
			}
			writeJSON(w, 200, map[string]any{"id": id, "modelId": id, "sha": repo.sha, "gated": gated, "private": false, "siblings": sib})
			return
		}
		parts := strings.SplitN(p, "/resolve/", 2)
		if len(parts) != 2 {
			http.NotFound(w, r)
			return
		}
		repo, ok := hubRepos[parts[0]]
		if !ok {
			notFound()
			return
		}
		if repo.gated && !authed {
			w.Header().Set("X-Error-Code", "GatedRepo")
			w.Header().Set("X-Error-Message", "Access to model "+parts[0]+" is restricted. You must have access to it and be authenticated to access it. Please log in.")
			writeJSON(w, 401, map[string]string{"error": "Access to model " + parts[0] + " is restricted. You must have access to it and be authenticated to access it. Please log in."})
			return
		}
		_, file, _ := strings.Cut(parts[1], "/")
		for _, f := range repo.files {
			if f.name == file {
				etag := sha256.Sum256([]byte(parts[0] + "/" + f.name))
				w.Header().Set("X-Repo-Commit", repo.sha)
				w.Header().Set("X-Linked-Etag", `"`+hex.EncodeToString(etag[:])+`"`)
				w.Header().Set("X-Linked-Size", strconv.FormatInt(f.size, 10))
				w.WriteHeader(200)
				return
			}
		}
		w.Header().Set("X-Error-Code", "EntryNotFound")
		writeJSON(w, 404, map[string]string{"error": "Entry not found"})
	})
}

// hubCall asks the simulated Hub (in process, as the guest's network would).
func hubCall(method, p, token string) *http.Response {
	req := httptest.NewRequest(method, "https://huggingface.co/"+p, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	hubHandler().ServeHTTP(rec, req)
	return rec.Result()
}

// hfToken resolves the token the way huggingface_hub does: --token, HF_TOKEN, HF_TOKEN_PATH,
// $HF_HOME/token, ~/.cache/huggingface/token.
func hfToken(p *proc, flag string) string {
	if flag != "" {
		return flag
	}
	if t := strings.TrimSpace(p.env["HF_TOKEN"]); t != "" {
		return t
	}
	file := p.env["HF_TOKEN_PATH"]
	if file == "" {
		home := p.env["HF_HOME"]
		if home == "" {
			home = p.user.Home + "/.cache/huggingface"
		}
		file = home + "/token"
	}
	b, err := p.readFile(file)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// progHF is huggingface_hub's `hf` CLI: `hf download` and `hf version`.
func progHF(p *proc) int {
	args := p.args[1:]
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		p.printf("Usage: hf [OPTIONS] COMMAND [ARGS]...\n\n  Hugging Face Hub CLI\n\nCommands:\n  auth      Manage authentication (login, logout, etc.).\n  cache     Manage local cache directory.\n  download  Download files from the Hub.\n  version   Print information about the hf version.\n")
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		p.printf("huggingface_hub version: 1.7.0\n")
		return 0
	}
	if args[0] != "download" {
		p.errorf("Usage: hf [OPTIONS] COMMAND [ARGS]...\nTry 'hf -h' for help.\n\nError: No such command '%s'.\n", args[0])
		return 2
	}
	var repoID, rev, cacheDir, localDir, token string
	quiet := false
	usage := false
	longOpts(args[1:], func(k, a string, next func() string) bool {
		switch k {
		case "--revision":
			rev = next()
		case "--cache-dir":
			cacheDir = next()
		case "--local-dir":
			localDir = next()
		case "--token":
			token = next()
		case "--quiet":
			quiet = true
		case "--repo-type", "--include", "--exclude", "--max-workers":
			next()
		default:
			if strings.HasPrefix(a, "-") {
				p.errorf("Usage: hf download [OPTIONS] REPO_ID [FILENAMES]...\nTry 'hf download -h' for help.\n\nError: No such option: %s\n", a)
				usage = true
				return false
			}
			if repoID == "" {
				repoID = a
			}
		}
		return true
	})
	if usage {
		return 2
	}
	if repoID == "" {
		p.errorf("Usage: hf download [OPTIONS] REPO_ID [FILENAMES]...\nTry 'hf download -h' for help.\n\nError: Missing argument 'REPO_ID'.\n")
		return 2
	}
	if localDir != "" && cacheDir != "" {
		return hfError(p, "Cannot use both `--local-dir` and `--cache-dir` at the same time. Use `--cache-dir` (or set the HF_HOME environment variable) for shared caching, or `--local-dir` for a one-off download to a specific directory.")
	}
	if rev == "" {
		rev = "main"
	}
	if cacheDir == "" {
		cacheDir = p.env["HF_HUB_CACHE"]
	}
	if cacheDir == "" {
		home := p.env["HF_HOME"]
		if home == "" {
			home = p.user.Home + "/.cache/huggingface"
		}
		cacheDir = home + "/hub"
	}
	tok := hfToken(p, token)
	resp := hubCall("GET", "api/models/"+repoID+"/revision/"+rev, tok)
	if msg := hfHTTPError(resp, repoID); msg != "" {
		return hfError(p, msg)
	}
	var info struct {
		SHA      string `json:"sha"`
		Siblings []struct {
			Name string `json:"rfilename"`
		} `json:"siblings"`
	}
	json.NewDecoder(resp.Body).Decode(&info)
	repoDir := cacheDir + "/models--" + strings.ReplaceAll(repoID, "/", "--")
	if localDir != "" {
		repoDir = localDir
	}
	g := p.g
	total := int64(0)
	type planned struct {
		name, etag string
		size       int64
	}
	var files []planned
	for _, s := range info.Siblings {
		h := hubCall("HEAD", repoID+"/resolve/"+info.SHA+"/"+s.Name, tok)
		if msg := hfHTTPError(h, repoID); msg != "" {
			return hfError(p, msg)
		}
		size, _ := strconv.ParseInt(h.Header.Get("X-Linked-Size"), 10, 64)
		files = append(files, planned{s.Name, strings.Trim(h.Header.Get("X-Linked-Etag"), `"`), size})
		total += size
	}
	if err := p.mkdir(repoDir+"/blobs", 0o755, true); err != nil {
		return hfTraceback(p, fmt.Sprintf("PermissionError: [Errno 13] Permission denied: '%s'", repoDir))
	}
	p.mkdir(repoDir+"/refs", 0o755, true)
	snap := repoDir + "/snapshots/" + info.SHA
	p.mkdir(snap, 0o755, true)
	if !quiet {
		p.errorf("Fetching %d files:   0%%|          | 0/%d [00:00<?, ?it/s]", len(files), len(files))
	}
	// 100 MB/s from the Hub's CDN, plus whatever a hub-slow fault adds.
	dur := time.Duration(float64(total) / 100e6 * float64(time.Second))
	if f := g.f.hasFault(FaultHubSlow, g.id.VMID); f != nil {
		if d, err := time.ParseDuration(f.Duration); err == nil {
			dur += d
		}
	}
	var done int64
	for i, f := range files {
		blob := repoDir + "/blobs/" + f.etag
		link := snap + "/" + f.name
		if g.fs.exists(link) {
			done += f.size
			continue
		}
		if g.f.fault(FaultDiskFull, g.id.VMID, func(ft *Fault) bool { return ft.Pattern == "" || strings.HasPrefix(repoDir, ft.Pattern) }) != nil {
			p.errorf("\n%s: UserWarning: Not enough free disk space to download the file. The expected file size is: %.2f MB. The target location %s/blobs only has %.2f MB free disk space.\n  warnings.warn(\n", hfSitePackages(p)+"/huggingface_hub/file_download.py:728", float64(f.size)/1e6, repoDir, 0.0)
			pw, _ := p.open(blob+".incomplete", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if pw != nil {
				pw.Close()
			}
			return hfTraceback(p, "OSError: [Errno 28] No space left on device")
		}
		if total > 0 && g.sleep(p.ctx, time.Duration(float64(dur)*float64(f.size)/float64(total))) != nil {
			return 130
		}
		if g.f.fault(FaultHubDrop, g.id.VMID, func(ft *Fault) bool { return f.size > 1<<20 }) != nil {
			pw, err := p.open(blob+".incomplete", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err == nil {
				pw.Truncate(f.size / 3)
				pw.Close()
			}
			return hfTraceback(p, fmt.Sprintf("httpx.RemoteProtocolError: peer closed connection without sending complete message body (received %d bytes, expected %d)", f.size/3, f.size))
		}
		pw, err := p.open(blob, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return hfTraceback(p, fmt.Sprintf("PermissionError: [Errno 13] Permission denied: '%s'", blob))
		}
		pw.Truncate(f.size) // sparse: the size is real, the bytes are not stored
		pw.Close()
		g.fs.remove(blob + ".incomplete")
		if err := g.fs.symlink("../../blobs/"+f.etag, link); err != nil {
			return hfTraceback(p, "OSError: "+err.Error())
		}
		g.fs.setOwner(mustResolve(g, link), owner{uid: p.user.UID, gid: p.user.GID})
		done += f.size
		_ = i
	}
	if rev != info.SHA {
		p.writeFile(repoDir+"/refs/"+rev, []byte(info.SHA), 0o644)
	}
	if !quiet {
		p.errorf("\rFetching %d files: 100%%|██████████| %d/%d [%s<00:00, %.2fit/s]\n", len(files), len(files), len(files), "00:"+fmt.Sprintf("%02d", int(g.scale(dur).Seconds())%60), 1.0)
	}
	p.printf("%s\n", snap)
	return 0
}

func mustResolve(g *Guest, p string) string {
	gp, err := g.fs.resolve(p, false)
	if err != nil {
		return path.Clean(p)
	}
	return gp
}

// hfHTTPError maps a Hub error response to the CLI's message (cli/_errors.py), or "".
func hfHTTPError(resp *http.Response, repoID string) string {
	if resp.StatusCode < 400 {
		return ""
	}
	switch resp.Header.Get("X-Error-Code") {
	case "GatedRepo":
		return "Access denied. Model '" + repoID + "' requires approval."
	case "RepoNotFound":
		return "Model '" + repoID + "' not found. If the repo is private, make sure you are authenticated."
	case "RevisionNotFound":
		return "Revision not found in model '" + repoID + "'."
	case "EntryNotFound":
		return "File not found in model '" + repoID + "'."
	}
	msg := resp.Header.Get("X-Error-Message")
	return fmt.Sprintf("%d Client Error.\n\n%s", resp.StatusCode, msg)
}

func hfError(p *proc, msg string) int {
	p.errorf("Error: %s\n", msg)
	p.printf("Set HF_DEBUG=1 as environment variable for full traceback.\n")
	return 1
}

func hfTraceback(p *proc, last string) int {
	p.errorf("Traceback (most recent call last):\n  File \"%s\", line 8, in <module>\n    sys.exit(main())\n             ^^^^^^\n  File \"%s/huggingface_hub/cli/hf.py\", line 113, in main\n    app()\n%s\n", p.path, hfSitePackages(p), last)
	return 1
}

// hfSitePackages is the site-packages of the venv the running hf belongs to (bin/hf).
func hfSitePackages(p *proc) string { return sitePackages(path.Dir(path.Dir(p.path))) }
