#!/usr/bin/python3
"""Run one OpenStack Swift daemon against a private config folder.

Used by scripts/services.  Usage:

    /usr/bin/python3 swift-launch.py SWIFT_DIR /usr/bin/swift-proxy-server CONF

Why this wrapper exists:

* Swift always reads swift.conf (hash path suffix, storage policies,
  constraints) from the hard-coded /etc/swift/swift.conf; the `swift_dir`
  option only moves the rings.  We point it at SWIFT_DIR before the daemon
  loads, so that everything Swift reads lives under the project's state dir.
* Swift logs to syslog (/dev/log, else UDP to localhost:514).  No syslog runs
  here, so we drop the syslog handler and run the daemon with -v, which makes
  it log to stderr; scripts/services redirects that into the service's log.

Must run under Debian's /usr/bin/python3 (where python3-swift is installed),
not whatever python3 comes first on PATH.
"""
import logging
import runpy
import sys

if len(sys.argv) < 3:
    sys.exit("usage: swift-launch.py SWIFT_DIR DAEMON_SCRIPT [ARGS...]")

swift_dir, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]

from swift.common import constraints, storage_policy, utils  # noqa: E402

# Read swift.conf from SWIFT_DIR (validates the hash suffix) and reload what
# was already parsed from /etc/swift/swift.conf at import time.
utils.set_swift_dir(swift_dir)
storage_policy.reload_storage_policies()
constraints.reload_constraints()


class _NoSyslog(logging.NullHandler):
    """Stands in for Swift's syslog handler: accepts its arguments, logs nothing."""

    def __init__(self, *args, **kwargs):
        super().__init__()


utils.ThreadSafeSysLogHandler = _NoSyslog

# -v: log to the console (stderr), which Swift keeps open when daemonizing.
sys.argv = [script] + args + ["-v"]
runpy.run_path(script, run_name="__main__")
