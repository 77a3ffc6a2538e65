package forkgen

// Patches are every change made to upstream's code (import-path rewrites aside). Each exists
// for round trips (issue #15): x/crypto/ssh's client opens user authentication with a "none"
// request and asks whether a key is acceptable before signing with it, each after waiting for
// the previous answer, and waits for SERVICE_ACCEPT before its first request. RFC 4252 section
// 7 lets a client send the signed request at once, and servers handle messages in order, so
// with ClientConfig.LeanAuth the fork sends one signed request right behind the service
// request: 3 round trips fewer per handshake. When that key is refused, upstream's exchange
// carries on from the server's answer (no "none" request: the answer lists the methods) without
// that key, so a server's MaxAuthTries is never spent faster than upstream spends it. The code
// that builds the request is in internal/xssh/lean.go (not generated). One more patch takes
// InsecureIgnoreHostKey out: the fork is aimachine's only SSH client, and nothing in it may
// accept an unpinned host key (its tests pin keys with FixedHostKey).
var Patches = []Patch{
	{
		File: "client.go",
		Why:  "no InsecureIgnoreHostKey",
		Old: `// InsecureIgnoreHostKey returns a function that can be used for
// ClientConfig.HostKeyCallback to accept any host key. It should
// not be used for production code.
func InsecureIgnoreHostKey() HostKeyCallback {
	return func(hostname string, remote net.Addr, key PublicKey) error {
		return nil
	}
}

`,
		New: ``,
	},
	{
		File: "client.go",
		Why:  "no InsecureIgnoreHostKey (its mention)",
		Old: `The functions InsecureIgnoreHostKey or
	// FixedHostKey can be used for simplistic host key checks.`,
		New: `The function
	// FixedHostKey can be used for a simplistic host key check (aimachine fork: there is no
	// InsecureIgnoreHostKey).`,
	},
	{
		File: "client.go",
		Why:  "ClientConfig.LeanAuth",
		Old: `	// AuthCallback, if non-nil, is invoked before each authentication attempt.
	AuthCallback ClientAuthCallback
}`,
		New: `	// AuthCallback, if non-nil, is invoked before each authentication attempt.
	AuthCallback ClientAuthCallback

	// LeanAuth (aimachine fork): when the first AuthMethod is PublicKeys or
	// PublicKeysCallback and AuthCallback is nil, user authentication opens with a signed
	// request for its first key, sent right after the service request: no "none" request, no
	// query, no wait for SERVICE_ACCEPT. A refusal falls back to the usual exchange.
	LeanAuth bool
}`,
	},
	{
		File: "client_auth.go",
		Why:  "lean: state",
		Old: `	extensions := make(map[string][]byte)
`,
		New: `	extensions := make(map[string][]byte)
	leanTried, leanSent := false, false // aimachine fork: ClientConfig.LeanAuth
`,
	},
	{
		File: "client_auth.go",
		Why:  "lean: the signed request before SERVICE_ACCEPT",
		Old: `			extensions[string(name)] = value
			payload = rest
		}
		packet, err = c.transport.readPacket()
		if err != nil {
			return err
		}
	}
	var serviceAccept serviceAcceptMsg
	if err := Unmarshal(packet, &serviceAccept); err != nil {
		return err
	}
`,
		New: `			extensions[string(name)] = value
			payload = rest
		}
		// aimachine fork: EXT_INFO arrives with NEWKEYS; the signed request leaves now,
		// before SERVICE_ACCEPT comes back.
		leanTried = true
		if leanSent, err = c.leanPublicKey(config, extensions); err != nil {
			return err
		}
		packet, err = c.transport.readPacket()
		if err != nil {
			return err
		}
	}
	var serviceAccept serviceAcceptMsg
	if err := Unmarshal(packet, &serviceAccept); err != nil {
		return err
	}
	if !leanTried {
		// aimachine fork: a server without EXT_INFO: the signed request follows SERVICE_ACCEPT.
		if leanSent, err = c.leanPublicKey(config, extensions); err != nil {
			return err
		}
	}
	var firstAuth AuthMethod = new(noneAuth)
	if leanSent {
		ok, methods, err := handleAuthResponse(c.transport)
		if err != nil {
			return err
		}
		if ok == authSuccess {
			return nil
		}
		// Refused or partly accepted: the usual exchange goes on from this answer (it lists
		// the methods left, as the answer to "none" would), without the key just refused.
		firstAuth = leanAnswer{ok, methods}
		config.Auth = withoutFirstKey(config.Auth)
	}
`,
	},
	{
		File: "client_auth.go",
		Why:  "lean: the usual exchange starts from the lean answer",
		Old: `	for auth := AuthMethod(new(noneAuth)); auth != nil; {
`,
		New: `	for auth := firstAuth; auth != nil; {
`,
	},
}
