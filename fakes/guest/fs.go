package guest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// vfs is a guest's filesystem: guest paths are mapped under a host directory (root). Symlinks are
// stored as real symlinks holding the guest target and are always resolved here, component by
// component, so no operation can leave the root. Ownership is simulated (the host process cannot
// chown), modes are real.
type vfs struct {
	root string

	mu     sync.Mutex
	owners map[string]owner // guest path -> owner; inherited by descendants without an entry
}

type owner struct{ uid, gid int }

func newVFS(root string) *vfs {
	return &vfs{root: root, owners: map[string]owner{}}
}

var errLoop = errors.New("too many levels of symbolic links")

// clean makes p absolute (relative to dir) and clean.
func cleanPath(dir, p string) string {
	if !strings.HasPrefix(p, "/") {
		p = path.Join(dir, p)
	}
	return path.Clean("/" + p)
}

// resolve returns the canonical guest path of p (symlinks resolved; the last one only if follow).
func (v *vfs) resolve(p string, follow bool) (string, error) {
	p = path.Clean("/" + p)
	for hops := 0; hops < 40; hops++ {
		comps := strings.Split(strings.TrimPrefix(p, "/"), "/")
		cur := "/"
		restart := false
		for i, c := range comps {
			if c == "" {
				continue
			}
			next := path.Join(cur, c)
			last := i == len(comps)-1
			if last && !follow {
				cur = next
				break
			}
			hp := filepath.Join(v.root, next)
			fi, err := os.Lstat(hp)
			if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				cur = next
				continue
			}
			target, err := os.Readlink(hp)
			if err != nil {
				return "", err
			}
			rest := strings.Join(comps[i+1:], "/")
			if strings.HasPrefix(target, "/") {
				p = path.Clean(target + "/" + rest)
			} else {
				p = path.Clean(cur + "/" + target + "/" + rest)
			}
			restart = true
			break
		}
		if !restart {
			return cur, nil
		}
	}
	return "", errLoop
}

// host maps a guest path to the host path (following symlinks, the last one if follow).
func (v *vfs) host(p string, follow bool) (string, string, error) {
	gp, err := v.resolve(p, follow)
	if err != nil {
		return "", "", err
	}
	return filepath.Join(v.root, gp), gp, nil
}

func (v *vfs) setOwner(gp string, o owner) {
	v.mu.Lock()
	v.owners[gp] = o
	v.mu.Unlock()
}

// setOwnerTree sets the owner of gp and everything below it.
func (v *vfs) setOwnerTree(gp string, o owner) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.owners {
		if strings.HasPrefix(k, gp+"/") {
			delete(v.owners, k)
		}
	}
	v.owners[gp] = o
}

func (v *vfs) ownerOf(gp string) owner {
	v.mu.Lock()
	defer v.mu.Unlock()
	for p := gp; ; p = path.Dir(p) {
		if o, ok := v.owners[p]; ok {
			return o
		}
		if p == "/" {
			return owner{}
		}
	}
}

func (v *vfs) forget(gp string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.owners {
		if k == gp || strings.HasPrefix(k, gp+"/") {
			delete(v.owners, k)
		}
	}
}

// access checks mode bits for a user (root passes everything but exec without any x bit).
func (v *vfs) access(u *user, gp string, fi fs.FileInfo, want fs.FileMode) bool {
	if u.UID == 0 {
		if want == 1 && !fi.IsDir() {
			return fi.Mode().Perm()&0o111 != 0
		}
		return true
	}
	o := v.ownerOf(gp)
	perm := fi.Mode().Perm()
	switch {
	case o.uid == u.UID:
		return perm&(want<<6) != 0
	case u.inGroup(o.gid):
		return perm&(want<<3) != 0
	default:
		return perm&want != 0
	}
}

func pathErr(op, p string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

// checkDirs verifies the user may traverse every parent of gp.
func (v *vfs) checkTraverse(u *user, gp string) error {
	if u.UID == 0 {
		return nil
	}
	for d := path.Dir(gp); ; d = path.Dir(d) {
		fi, err := os.Stat(filepath.Join(v.root, d))
		if err == nil && fi.IsDir() && !v.access(u, d, fi, 1) {
			return syscall.EACCES
		}
		if d == "/" {
			return nil
		}
	}
}

// open opens a guest file for a user, creating it (owned by the user) with O_CREATE.
func (v *vfs) open(u *user, p string, flag int, perm fs.FileMode) (*os.File, error) {
	if path.Clean(p) == "/dev/null" {
		return os.OpenFile(os.DevNull, flag&^(os.O_CREATE|os.O_TRUNC|os.O_EXCL), 0)
	}
	hp, gp, err := v.host(p, true)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	if err := v.checkTraverse(u, gp); err != nil {
		return nil, pathErr("open", p, err)
	}
	fi, statErr := os.Stat(hp)
	write := flag&(os.O_WRONLY|os.O_RDWR|os.O_APPEND|os.O_TRUNC) != 0
	if statErr == nil {
		if fi.IsDir() && write {
			return nil, pathErr("open", p, syscall.EISDIR)
		}
		if write && !v.access(u, gp, fi, 2) {
			return nil, pathErr("open", p, syscall.EACCES)
		}
		if flag&(os.O_WRONLY) == 0 && !v.access(u, gp, fi, 4) {
			return nil, pathErr("open", p, syscall.EACCES)
		}
	} else if flag&os.O_CREATE != 0 {
		dfi, err := os.Stat(filepath.Dir(hp))
		if err != nil {
			return nil, pathErr("open", p, syscall.ENOENT)
		}
		if !v.access(u, path.Dir(gp), dfi, 2) {
			return nil, pathErr("open", p, syscall.EACCES)
		}
	}
	f, err := os.OpenFile(hp, flag, perm)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	if statErr != nil {
		v.setOwner(gp, owner{u.UID, u.GID})
	}
	return f, nil
}

// stat stats a guest path.
func (v *vfs) stat(p string, follow bool) (fs.FileInfo, error) {
	hp, _, err := v.host(p, follow)
	if err != nil {
		return nil, pathErr("stat", p, err)
	}
	var fi fs.FileInfo
	if follow {
		fi, err = os.Stat(hp)
	} else {
		fi, err = os.Lstat(hp)
	}
	if err != nil {
		return nil, pathErr("stat", p, err)
	}
	return fi, nil
}

func (v *vfs) exists(p string) bool {
	_, err := v.stat(p, true)
	return err == nil
}

func (v *vfs) isDir(p string) bool {
	fi, err := v.stat(p, true)
	return err == nil && fi.IsDir()
}

// readFile reads a guest file regardless of permissions (the simulator's own view).
func (v *vfs) readFile(p string) ([]byte, error) {
	hp, _, err := v.host(p, true)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	b, err := os.ReadFile(hp)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	return b, nil
}

func (v *vfs) readString(p string) string {
	b, _ := v.readFile(p)
	return string(b)
}

// writeFile writes a guest file as the simulator (parents created, owned by o).
func (v *vfs) writeFile(p string, data []byte, mode fs.FileMode, o owner) error {
	if err := v.mkdirAll(path.Dir(p), 0o755, owner{}); err != nil {
		return err
	}
	hp, gp, err := v.host(p, true)
	if err != nil {
		return pathErr("open", p, err)
	}
	if err := os.WriteFile(hp, data, mode); err != nil {
		return pathErr("open", p, err)
	}
	if err := os.Chmod(hp, mode); err != nil {
		return pathErr("chmod", p, err)
	}
	v.setOwner(gp, o)
	return nil
}

func (v *vfs) appendFile(p string, data []byte) error {
	hp, _, err := v.host(p, true)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(hp, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(data)
	return err
}

// mkdirAll creates a directory and its parents as the simulator; new dirs get owner o.
func (v *vfs) mkdirAll(p string, mode fs.FileMode, o owner) error {
	gp, err := v.resolve(p, true)
	if err != nil {
		return pathErr("mkdir", p, err)
	}
	if gp == "/" {
		return nil
	}
	if v.isDir(gp) {
		return nil
	}
	if err := v.mkdirAll(path.Dir(gp), 0o755, o); err != nil {
		return err
	}
	hp := filepath.Join(v.root, gp)
	if err := os.Mkdir(hp, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return pathErr("mkdir", p, err)
	}
	os.Chmod(hp, mode)
	v.setOwner(gp, o)
	return nil
}

func (v *vfs) symlink(target, p string) error {
	if err := v.mkdirAll(path.Dir(p), 0o755, owner{}); err != nil {
		return err
	}
	hp, _, err := v.host(p, false)
	if err != nil {
		return err
	}
	os.Remove(hp)
	return os.Symlink(target, hp)
}

func (v *vfs) remove(p string) error {
	hp, gp, err := v.host(p, false)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(hp); err != nil {
		return err
	}
	v.forget(gp)
	return nil
}

func (v *vfs) readDir(p string) ([]fs.DirEntry, error) {
	hp, _, err := v.host(p, true)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	ents, err := os.ReadDir(hp)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	return ents, nil
}

// glob lists guest paths in dir whose base name matches pattern.
func (v *vfs) glob(dir, pattern string) []string {
	ents, err := v.readDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if ok, _ := path.Match(pattern, e.Name()); ok {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	return out
}

// user is a guest account.
type user struct {
	Name   string
	UID    int
	GID    int
	Home   string
	Shell  string
	Groups []int
}

func (u *user) inGroup(gid int) bool {
	if u.GID == gid {
		return true
	}
	for _, g := range u.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// lookupUser reads /etc/passwd and /etc/group of the guest.
func (v *vfs) lookupUser(name string) (*user, error) {
	for _, line := range strings.Split(v.readString("/etc/passwd"), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 7 {
			continue
		}
		if f[0] != name && !(strings.HasPrefix(name, "#") && f[2] == name[1:]) {
			continue
		}
		uid, _ := strconv.Atoi(f[2])
		gid, _ := strconv.Atoi(f[3])
		u := &user{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]}
		for _, g := range v.groups() {
			for _, m := range g.members {
				if m == u.Name {
					u.Groups = append(u.Groups, g.gid)
				}
			}
		}
		return u, nil
	}
	return nil, fmt.Errorf("no such user %q", name)
}

func (v *vfs) userByUID(uid int) string {
	for _, line := range strings.Split(v.readString("/etc/passwd"), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[2] == strconv.Itoa(uid) {
			return f[0]
		}
	}
	return strconv.Itoa(uid)
}

type group struct {
	name    string
	gid     int
	members []string
}

func (v *vfs) groups() []group {
	var out []group
	for _, line := range strings.Split(v.readString("/etc/group"), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		gid, _ := strconv.Atoi(f[2])
		var m []string
		if f[3] != "" {
			m = strings.Split(f[3], ",")
		}
		out = append(out, group{f[0], gid, m})
	}
	return out
}

func (v *vfs) groupByName(name string) (group, bool) {
	for _, g := range v.groups() {
		if g.name == name || strconv.Itoa(g.gid) == name {
			return g, true
		}
	}
	return group{}, false
}

func (v *vfs) groupName(gid int) string {
	for _, g := range v.groups() {
		if g.gid == gid {
			return g.name
		}
	}
	return strconv.Itoa(gid)
}

// addUser appends a passwd entry (and a personal group when gid < 0); returns the uid.
func (v *vfs) addUser(name string, system bool, home, shell string, gid int) (*user, error) {
	if u, err := v.lookupUser(name); err == nil {
		return u, fmt.Errorf("user '%s' already exists", name)
	}
	uid := 1000
	if system {
		uid = 999
	}
	used := map[int]bool{}
	for _, line := range strings.Split(v.readString("/etc/passwd"), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 {
			n, _ := strconv.Atoi(f[2])
			used[n] = true
		}
	}
	for used[uid] {
		if system {
			uid--
		} else {
			uid++
		}
	}
	if gid < 0 {
		gid = uid
		if _, ok := v.groupByName(name); !ok {
			v.appendFile("/etc/group", []byte(fmt.Sprintf("%s:x:%d:\n", name, gid)))
		}
	}
	v.appendFile("/etc/passwd", []byte(fmt.Sprintf("%s:x:%d:%d::%s:%s\n", name, uid, gid, home, shell)))
	return v.lookupUser(name)
}

// addToGroup adds a member to a group in /etc/group.
func (v *vfs) addToGroup(name, grp string) bool {
	lines := strings.Split(v.readString("/etc/group"), "\n")
	found := false
	for i, line := range lines {
		f := strings.Split(line, ":")
		if len(f) < 4 || f[0] != grp {
			continue
		}
		found = true
		m := []string{}
		if f[3] != "" {
			m = strings.Split(f[3], ",")
		}
		for _, x := range m {
			if x == name {
				return true
			}
		}
		f[3] = strings.Join(append(m, name), ",")
		lines[i] = strings.Join(f, ":")
	}
	if found {
		hp, _, _ := v.host("/etc/group", true)
		os.WriteFile(hp, []byte(strings.Join(lines, "\n")), 0o644)
	}
	return found
}

func chmodHost(hp string, m fs.FileMode) error { return os.Chmod(hp, m) }
