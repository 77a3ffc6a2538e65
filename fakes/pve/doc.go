// Package pve is a fake Proxmox VE API (pveproxy's /api2/json, and /api2/extjs, the web UI's format)
// that go-proxmox v0.8.2, Telmate's proxmox-api-go and web-UI-shaped requests cannot tell from a real node: in-memory cluster state, async tasks with real UPIDs, PVE's JSON typing, reason
// phrases and error texts, a guest hook for simulated VMs, and a control API under /_sim for faults
// and request counters. PARITY.md lists what each endpoint models.
//
// Every request is looked up in the published API (apischema: the PVE 9.1.3 API viewer's schema) and
// its parameters verified like pve-common JSONSchema.pm does (jsonschema) before any handler runs: a
// path PVE does not have answers 501 `Method '…' not implemented`; an operation PVE has and this fake
// does not model answers NotModelledStatus with a reason starting NotModelledPrefix, a text no real
// PVE sends. Storage volume names follow pve-storage's parse_volname (volname.go).
//
// In-process use:
//
//	s := pve.New(pve.WithAuthDelay(0), pve.WithTimeScale(0), pve.WithGuestFactory(pve.NewStaticGuestFactory()))
//	ts := s.StartTLS() // HTTP/1.1 only; trust s.CertPool() or pin s.Fingerprint()
//	defer ts.Close()
//	c := proxmox.NewClient(ts.URL+"/api2/json", proxmox.WithAPIToken(pve.DefaultTokenID, pve.DefaultTokenSecret), ...)
//
// A binary wraps it with s.NewHTTPServer(addr).ServeTLS(listener, "", ""). The control API (/_sim/...)
// has no authentication: serve it on loopback only.
package pve
