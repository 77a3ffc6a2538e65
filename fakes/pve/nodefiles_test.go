package pve

import (
	"reflect"
	"strings"
	"testing"
)

// TestSetStorageContentPluginTypes pins `pvesm set STORAGE --content LIST` against
// pve-storage: the content each plugin supports is plugindata()'s first `content` element
// (src/PVE/Storage/DirPlugin.pm, LvmThinPlugin.pm, LVMPlugin.pm, ZFSPoolPlugin.pm,
// NFSPlugin.pm, PBSPlugin.pm); Plugin.pm decode_value warns about and drops an unsupported
// type, dies "storage does not support content type 'none'" when nothing is left on a plugin
// without 'none', and "unable to combine 'none' with other content types"; Plugin.pm
// verify_content refuses an unknown type in the parameter check; API2/Storage/Config.pm
// update runs under lock_storage_config(..., "update storage failed") (Storage.pm), which
// prefixes the handler's errors; Storage.pm storage_config: "storage 'X' does not exist".
func TestSetStorageContentPluginTypes(t *testing.T) {
	tp := DefaultTopology()
	for _, sp := range []StorageSpec{
		{Name: "vg", Type: "lvm", Content: []string{"images"}, TotalBytes: 1 << 40},
		{Name: "tank", Type: "zfspool", Content: []string{"images"}, TotalBytes: 1 << 40},
		{Name: "share", Type: "nfs", Content: []string{"images"}, TotalBytes: 1 << 40},
		{Name: "pbs", Type: "pbs", Content: []string{"backup"}, TotalBytes: 1 << 40},
	} {
		tp.Storages = append(tp.Storages, sp)
	}
	for _, tc := range []struct {
		storage, content string
		warnings         []string
		err              string
		want             []string // content after the call (unchanged when err)
	}{
		// DirPlugin.pm: dir supports every type, 'none' included.
		{storage: "local", content: "iso,vztmpl,backup,import,snippets,images,rootdir", want: []string{"iso", "vztmpl", "backup", "import", "snippets", "images", "rootdir"}},
		{storage: "local", content: "none", want: []string{"none"}},
		{storage: "local", content: "none,iso", err: "update storage failed: unable to combine 'none' with other content types", want: []string{"iso", "vztmpl", "backup", "import", "snippets"}},
		// LvmThinPlugin.pm: { images => 1, rootdir => 1 }.
		{storage: "local-lvm", content: "snippets", warnings: []string{"storage does not support content type 'snippets'"},
			err: "update storage failed: storage does not support content type 'none'", want: []string{"images", "rootdir"}},
		{storage: "local-lvm", content: "images,snippets", warnings: []string{"storage does not support content type 'snippets'"}, want: []string{"images"}},
		{storage: "local-lvm", content: "none", warnings: []string{"storage does not support content type 'none'"},
			err: "update storage failed: storage does not support content type 'none'", want: []string{"images", "rootdir"}},
		// LVMPlugin.pm, ZFSPoolPlugin.pm: { images => 1, rootdir => 1 }.
		{storage: "vg", content: "iso", warnings: []string{"storage does not support content type 'iso'"},
			err: "update storage failed: storage does not support content type 'none'", want: []string{"images"}},
		{storage: "tank", content: "rootdir,images", want: []string{"rootdir", "images"}},
		// NFSPlugin.pm: file types but no 'none'.
		{storage: "share", content: "snippets,iso", want: []string{"snippets", "iso"}},
		{storage: "share", content: "none", warnings: []string{"storage does not support content type 'none'"},
			err: "update storage failed: storage does not support content type 'none'", want: []string{"images"}},
		// PBSPlugin.pm: { backup => 1, none => 1 }.
		{storage: "pbs", content: "images", warnings: []string{"storage does not support content type 'images'"}, want: []string{}},
		// verify_content (parameter check, before the handler): unknown type.
		{storage: "local", content: "bogus", err: "400 Parameter verification failed.\ncontent: invalid format - invalid content type 'bogus'", want: []string{"iso", "vztmpl", "backup", "import", "snippets"}},
		// storage_config.
		{storage: "nosuch", content: "images", err: "update storage failed: storage 'nosuch' does not exist"},
	} {
		s := New(WithTopology(tp))
		warnings, err := s.SetStorageContent(tc.storage, strings.Split(tc.content, ","))
		name := tc.storage + " --content " + tc.content
		if !reflect.DeepEqual(warnings, tc.warnings) {
			t.Errorf("%s: warnings %q, want %q", name, warnings, tc.warnings)
		}
		if got := errString(err); got != tc.err {
			t.Errorf("%s: error %q, want %q", name, got, tc.err)
		}
		if ss := s.st.storage(tc.storage); ss != nil {
			got := ss.spec.Content
			if got == nil {
				got = []string{}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: content %q, want %q", name, got, tc.want)
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestVolumePath pins `pvesm path VOLID` errors: Plugin.pm parse_volume_id (format
// pve-volume-id, checked by JSONSchema.pm check_prop: "invalid format - ") and Storage.pm
// storage_config.
func TestVolumePath(t *testing.T) {
	s := New()
	for _, tc := range []struct{ volid, err string }{
		{"local:snippets/user.yaml", ""},
		{"nocolon", "400 Parameter verification failed.\nvolume: invalid format - unable to parse volume ID 'nocolon'"},
		{"1bad:iso/x.iso", "400 Parameter verification failed.\nvolume: invalid format - unable to parse volume ID '1bad:iso/x.iso'"},
		{"nosuch:iso/x.iso", "storage 'nosuch' does not exist"},
	} {
		p, err := s.VolumePath(tc.volid)
		if got := errString(err); got != tc.err {
			t.Errorf("%s: error %q, want %q", tc.volid, got, tc.err)
		}
		if tc.err == "" && !strings.HasSuffix(p, "/snippets/user.yaml") {
			t.Errorf("%s: path %q", tc.volid, p)
		}
	}
}
