package pve

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DownloadSource is a file that download-url can fetch. The simulator never dials out: a URL
// that no source names fails like an unreachable host.
type DownloadSource struct {
	URL string
	// Data is the file's content; its size and checksums are computed from it.
	Data string
	// Size and SHA256 declare a file too large to hold (the 580 MiB noble image): the fake
	// streams nothing and takes SHA256 as the digest it computed (only sha256 can be checked).
	Size   uint64
	SHA256 string
	// Format is what the image is (qcow2, raw ...; default qcow2), as file_size_info finds it.
	Format string
	// Status is the HTTP status the server answers (0 = 200); anything else fails the download.
	Status int
}

func (d DownloadSource) size() uint64 {
	if d.Data != "" {
		return uint64(len(d.Data))
	}
	return d.Size
}

// digest computes the checksum of the source's bytes with algo ("" when it cannot).
func (d DownloadSource) digest(algo string) string {
	if d.Data == "" {
		if algo == "sha256" {
			return strings.ToLower(d.SHA256)
		}
		return ""
	}
	var h hash.Hash
	switch algo {
	case "md5":
		h = md5.New()
	case "sha1":
		h = sha1.New()
	case "sha224":
		h = sha256.New224()
	case "sha256":
		h = sha256.New()
	case "sha384":
		h = sha512.New384()
	case "sha512":
		h = sha512.New()
	default:
		return ""
	}
	h.Write([]byte(d.Data))
	return hex.EncodeToString(h.Sum(nil))
}

// Extensions per content type (pve-storage src/PVE/Storage.pm $ISO_EXT_RE_0, $VZTMPL_EXT_RE_1,
// $UPLOAD_IMPORT_EXT_RE_1 and $SAFE_CHAR_CLASS_RE). Import took only .ova from commit 40df25d
// "api: allow ova upload/download" (libpve-storage-perl 8.2.8, PVE 8.3) and .qcow2/.raw/.vmdk
// from 76f695f "import: allow upload of guest images files into import storage" (8.3.6, PVE 8.4).
var (
	reISOExt       = regexp.MustCompile(`(?i)[^/]+\.(?:iso|img)$`)
	reVztmplExt    = regexp.MustCompile(`(?i)[^/]+\.(?:tar|tar\.(?:gz|xz|zst|bz2))$`)
	reImportExt84  = regexp.MustCompile(`^[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$`)
	reImportExtOVA = regexp.MustCompile(`^[a-zA-Z0-9\-.+=_]+\.(ova)$`)
	reNormalize    = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)
)

// normalizeFilename is PVE::Storage::normalize_content_filename.
func normalizeFilename(f string) string {
	f = strings.TrimRight(f, "\n")
	if i := strings.LastIndexAny(f, `/\`); i >= 0 {
		f = f[i+1:]
	}
	return reNormalize.ReplaceAllString(f, "_")
}

// handleDownloadURL: POST /nodes/{node}/storage/{storage}/download-url (pve-storage
// src/PVE/API2/Storage/Status.pm download_url): permission check 'and' Datastore.AllocateTemplate
// on /storage/{storage}, 'or' Sys.Audit+Sys.Modify on / or Sys.AccessNetwork on /nodes/{node};
// then, synchronously: storage enabled on the node, file based, configured for the content,
// file name extension for the content; then a `download` worker (id = the file name) runs
// PVE::Tools::download_file_from_url (pve-common src/PVE/Tools.pm): wget --progress=dot:giga
// into DEST.tmp_dwnl.PID, checksum, rename. A mismatch or a failed wget removes the temporary
// file and leaves no volume.
func handleDownloadURL(s *Server, c *call) (any, error) {
	node, storage := c.vars["node"], c.vars["storage"]
	if !s.permitted(c.id, "/storage/"+storage, "Datastore.AllocateTemplate") {
		return nil, errPerm("/storage/"+storage, "Datastore.AllocateTemplate")
	}
	if !(s.permitted(c.id, "/", "Sys.Audit") && s.permitted(c.id, "/", "Sys.Modify")) && !s.permitted(c.id, "/nodes/"+node, "Sys.AccessNetwork") {
		return nil, &apiError{Code: 403, Msg: "Permission check failed\n"}
	}
	rawURL := c.p.get("url")
	if !strings.HasPrefix(rawURL, "http://") && !strings.HasPrefix(rawURL, "https://") {
		return nil, errParam("url", "value does not match the regex pattern")
	}
	// 'requires' (pve-common src/PVE/JSONSchema.pm check_object)
	if c.p.has("checksum") != c.p.has("checksum-algorithm") {
		if c.p.has("checksum") {
			return nil, errParam("checksum-algorithm", "missing property required by 'checksum'")
		}
		return nil, errParam("checksum", "missing property required by 'checksum-algorithm'")
	}
	content := c.p.get("content")
	if content == "import" && !s.versionAtLeast(8, 3) {
		return nil, errParam("content", "value 'import' does not have a value in the enumeration 'iso, vztmpl'")
	}

	s.mu.Lock()
	ss, err := s.storageOn(node, storage)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if ss.spec.Type != "dir" && ss.spec.Type != "nfs" && ss.spec.Type != "cifs" && ss.spec.Type != "cephfs" && ss.spec.Type != "btrfs" {
		s.mu.Unlock()
		return nil, errDie("can't upload to storage type '%s', not a file based storage!", ss.spec.Type)
	}
	if !ss.hasContent(content) {
		s.mu.Unlock()
		return nil, errDie("storage '%s' is not configured for content-type '%s'", storage, content)
	}
	s.mu.Unlock()

	filename := normalizeFilename(c.p.get("filename"))
	switch content {
	case "iso":
		if !reISOExt.MatchString(filename) {
			return nil, errParam("filename", "wrong file extension")
		}
	case "vztmpl":
		if !reVztmplExt.MatchString(filename) {
			return nil, errParam("filename", "wrong file extension")
		}
	case "import":
		re := reImportExt84
		if !s.versionAtLeast(8, 4) {
			re = reImportExtOVA
		}
		if !re.MatchString(filename) {
			return nil, errParam("filename", "invalid filename or wrong extension")
		}
	}
	dir := map[string]string{"iso": "iso", "vztmpl": "vztmpl", "import": "import"}[content]
	volid := storage + ":" + dir + "/" + filename
	dest := volumePath(ss, volid)
	algo, want := c.p.get("checksum-algorithm"), strings.ToLower(c.p.get("checksum"))

	return s.startTask(node, "download", filename, c.id, func(tc *taskCtx) error {
		tc.logf("downloading %s to %s", rawURL, dest)
		s.mu.Lock()
		existing := ss.volume(volid)
		var src *DownloadSource
		for i := range s.st.sources {
			if s.st.sources[i].URL == rawURL {
				src = &s.st.sources[i]
			}
		}
		s.mu.Unlock()
		if existing != nil {
			if algo == "" {
				return errf("refusing to override existing file '%s'", dest)
			}
			got := ""
			if algo == "sha256" {
				got = strings.ToLower(existing.SHA256)
			}
			if got == want {
				tc.logf("calculating checksum of existing file...OK, got correct file already, no need to download")
				return nil
			}
			tc.logf("calculating checksum of existing file...")
			return errf("checksum mismatch: got '%s' != expect '%s', aborting", got, want)
		}
		tmp := fmt.Sprintf("%s.tmp_dwnl.%d", dest, tc.t.pid)
		wget := fmt.Sprintf("wget --progress=dot:giga -O %s %s", tmp, rawURL)
		tc.logf("--%s--  %s", time.Now().UTC().Format("2006-01-02 15:04:05"), rawURL)
		host := rawURL
		if u, err := url.Parse(rawURL); err == nil {
			host = u.Hostname()
		}
		if src == nil {
			tc.logf("Resolving %s (%s)... failed: Name or service not known.", host, host)
			tc.logf("wget: unable to resolve host address '%s'", host)
			return errf("download failed: command '%s' failed: exit code 4", wget)
		}
		if src.Status != 0 && src.Status != 200 {
			tc.logf("HTTP request sent, awaiting response... %d %s", src.Status, httpStatusText(src.Status))
			tc.logf("%s ERROR %d: %s.", time.Now().UTC().Format("2006-01-02 15:04:05"), src.Status, httpStatusText(src.Status))
			return errf("download failed: command '%s' failed: exit code 8", wget)
		}
		size := src.size()
		tc.logf("HTTP request sent, awaiting response... 200 OK")
		tc.logf("Length: %d (%s) [application/octet-stream]", size, humanMiB(size))
		tc.logf("Saving to: '%s'", tmp)
		// dot:giga: one dot per MiB, 32 MiB per line
		const line = 32 << 20
		for done := uint64(0); done < size; done += line {
			if !tc.sleep(time.Second) {
				return errInterrupted
			}
			chunk := min(size-done, line)
			dots := int((chunk + (1<<20 - 1)) >> 20)
			var b strings.Builder
			for i := 0; i < dots; i++ {
				if i > 0 && i%8 == 0 {
					b.WriteByte(' ')
				}
				b.WriteByte('.')
			}
			tc.logf("%7dK %-35s %3d%% 32.0M %ds", done>>10, b.String(), int((done+chunk)*100/max(size, 1)), int((size-done-chunk)/(32<<20)))
		}
		tc.logf("%s (32.0 MB/s) - '%s' saved [%d/%d]", time.Now().UTC().Format("2006-01-02 15:04:05"), tmp, size, size)
		tc.logf("")
		var got string
		if algo != "" {
			got = src.digest(algo)
			if got != want {
				tc.logf("calculating checksum...")
				return errf("checksum mismatch: got '%s' != expect '%s'", got, want)
			}
			tc.logf("calculating checksum...OK, checksum verified")
		}
		format := src.Format
		if format == "" {
			format = "qcow2"
		}
		if content == "iso" {
			format = "iso"
		}
		s.mu.Lock()
		ss.volumes = append(ss.volumes, &VolumeSpec{VolID: volid, Format: format, Size: size, SHA256: src.digest("sha256")})
		s.mu.Unlock()
		tc.logf("download of '%s' to '%s' finished", rawURL, dest)
		return nil
	}), nil
}

func humanMiB(n uint64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%dM", n>>20)
	}
	return fmt.Sprintf("%dK", n>>10)
}

func httpStatusText(code int) string {
	switch code {
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 500:
		return "Internal Server Error"
	}
	return "Error"
}

// AddDownloadSource registers a file download-url can fetch (kept until Reset).
func (s *Server) AddDownloadSource(d DownloadSource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.sources = append(s.st.sources, d)
}
