// Package encode turns a value into text for one place in the guest that interprets text (a
// sink): a POSIX shell word, an argument of a systemd Exec*= command line, a systemd
// Environment= assignment, a free-text unit setting, a line of an EnvironmentFile=, a line of a
// curl header file, a YAML or a JSON string. Each encoder makes the sink read back exactly the
// bytes it was given, with no expansion, substitution or splitting, or refuses the value with an
// *Error that says which sink and why (never the value: it may be a secret).
//
// The rules come from the programs that read the text, cited at each encoder: systemd.syntax(7),
// systemd.unit(5) "Specifiers", systemd.service(5) "Command lines", systemd.exec(5)
// "Environment"/"EnvironmentFile", systemd's src/basic/extract-word.c, env-file.c and
// env-util.c; POSIX sh "Quoting"; curl(1) --header; YAML 1.2 §5 and §7.3; RFC 8259.
package encode
