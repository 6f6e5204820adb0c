#!/usr/bin/env bash
# The README's other way in, checked on every CI run: zc.buildout in a new
# virtualenv, `buildout` on this checkout, then `bin/test`.  An upstream
# release that breaks buildout.cfg (a new conflict like pyramid's
# setuptools<82, issue #11) fails CI the day it comes out.
#
#   .ci/buildout.sh             buildout, then the whole bin/test
#   .ci/buildout.sh -m MODULE   buildout, then bin/test with these options
#
# .ci/run calls it with PostgreSQL's exports (.ci/postgres.sh), which
# test_relstorage.py needs under CI.  Exits non-zero if pip, buildout or a
# test fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=.buildout-venv     # ignored by git, like buildout's bin/ eggs/ parts/

# New on a clean checkout, so zc.buildout and the setuptools it runs with
# are the newest releases, as for a user following the README.
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade zc.buildout

# Not -N (newest=false): buildout takes the newest release of every egg
# buildout.cfg does not pin, which is the point of running it here.
start=$SECONDS
"$VENV/bin/buildout" </dev/null
echo "buildout.sh: buildout took $((SECONDS - start)) s"

start=$SECONDS
bin/test "$@" </dev/null
echo "buildout.sh: bin/test took $((SECONDS - start)) s"
