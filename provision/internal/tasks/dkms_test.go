package tasks

import (
	"reflect"
	"testing"
)

func TestUnfinishedDriverPackages(t *testing.T) {
	// dpkg-query -W --showformat='${Package}\t${Status}\t${Version}\n' output after a failed
	// DKMS postinst (guest.md §10.2) and after an interrupted unpack.
	out := "nvidia-headless-no-dkms-595-server-open\tinstall ok installed\t595.84-0ubuntu0.24.04.1\n" +
		"nvidia-dkms-595-server-open\tinstall ok half-configured\t595.84-0ubuntu0.24.04.1\n" +
		"nvidia-kernel-source-595-server-open\tinstall ok unpacked\t595.84-0ubuntu0.24.04.1\n" +
		"libnvidia-compute-595-server\tinstall reinstreq half-installed\t595.84-0ubuntu0.24.04.1\n" +
		"nvidia-utils-595-server\tunknown ok not-installed\t\n" +
		"nvidia-driver-580\tdeinstall ok config-files\t580.173.02-0ubuntu0.24.04.1\n" +
		"build-essential\tinstall ok unpacked\t12.10ubuntu1\n"
	got := packageNames(unfinishedDriverPackages(ParseDpkg(out)))
	want := []string{"libnvidia-compute-595-server", "nvidia-dkms-595-server-open", "nvidia-kernel-source-595-server-open"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("unfinished %v, want %v (build-essential is not an NVIDIA package)", got, want)
	}
	for status, want := range map[string]bool{
		"install ok installed": false, "install ok half-configured": true, "install ok unpacked": true,
		"install ok triggers-pending": true, "unknown ok not-installed": false, "deinstall ok config-files": false,
		"install reinstreq half-installed": true, "": false,
	} {
		if got := (Package{Status: status}).Unfinished(); got != want {
			t.Errorf("Unfinished(%q) = %v, want %v", status, got, want)
		}
	}
}

func TestSplitSections(t *testing.T) {
	out := "nvidia-dkms-595-open\tinstall ok half-configured\t595.84\n::kernel\n6.8.0-88-generic\n::modinfo\nmodinfo: ERROR: Module nvidia not found.\n::dkms\nnvidia/595.84: added\n::makelog\n$ tail -n 30 /var/lib/dkms/nvidia/595.84/build/make.log\nmake: *** [Makefile:82: modules] Error 2\n"
	s := splitSections(out, "dpkg", []string{"kernel", "modinfo", "dkms", "makelog"})
	if s["kernel"] != "6.8.0-88-generic\n" || s["dkms"] != "nvidia/595.84: added\n" || s["dpkg"] == "" ||
		s["makelog"] != "$ tail -n 30 /var/lib/dkms/nvidia/595.84/build/make.log\nmake: *** [Makefile:82: modules] Error 2\n" {
		t.Fatalf("sections: %q", s)
	}
}

func TestIsDKMSFailure(t *testing.T) {
	for out, want := range map[string]bool{
		"Error! Bad return status for module build on kernel: 6.8.0-36-generic (x86_64)\nConsult /var/lib/dkms/nvidia/580.173.02/build/make.log for more information.":                  true,
		"dpkg: error processing package nvidia-dkms-580-open (--configure):\n installed nvidia-dkms-580-open package post-installation script subprocess returned error exit status 10": true,
		"E: Failed to fetch http://archive.ubuntu.com/ubuntu/pool/x.deb  404  Not Found":                                                                                                false,
		"E: Could not get lock /var/lib/dpkg/lock-frontend": false,
	} {
		if got := isDKMSFailure(out); got != want {
			t.Errorf("isDKMSFailure(%q) = %v, want %v", out, got, want)
		}
	}
}
