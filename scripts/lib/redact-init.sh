# Sourced by scripts/book and scripts/transcript-diff.
# Host-wide `ps` listings show the recording machine's PID 1, whose command
# line says nothing about the lesson and differs on every host: redact_init
# (a filter) names it generically. Everything else is the run's real output.
host_init=$(tr '\0' ' ' </proc/1/cmdline 2>/dev/null | sed 's/ *$//') || host_init=
redact_init() {
  awk -v init="$host_init" '{
    n = length(init)
    if (n > 0 && $1 == "1" && length($0) > n && substr($0, length($0) - n + 1) == init) {
      print substr($0, 1, length($0) - n) "[the recording host'"'"'s init]"; next
    }
    print
  }'
}
